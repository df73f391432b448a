"""The factuality judge (spec §6): an LLM rates each generated answer against the ground truth on 1-10.

Any OpenAI-compatible chat-completions endpoint works (OpenAI, a local vLLM or llama.cpp server): the official
``openai`` client with ``judge.base_url``. Requests are sent concurrently (``max_concurrency``); 429, 5xx,
timeouts and dropped connections are retried with exponential backoff (the client's own, honouring
Retry-After) up to ``max_retries``. Every response is cached on disk keyed by the model and a hash of the full
request, written atomically as it arrives, so a rerun or a crash never pays twice.

The key and reruns. The API key is read from the environment variable named by ``judge.api_key_env`` and
handed to the client only: it is never logged or written. Whether one is set (never its value) is a param of
the judge rule, so setting a key later reruns the judge jobs, and so does unsetting it. Without a key the judge
still serves the replies its cache holds and sends nothing: a result is scored iff every reply is cached, else
it is "not scored: no API key in $X (N of M replies not cached)", never a number. So a key set later scores what
was not scored (asking only for the missing replies), and a key unset later keeps every score already paid for.

Replies. With ``json_mode`` (the default; the strict parser only, so the original's settings send the
original's request) the request asks for a JSON object (``response_format={"type": "json_object"}``, and the
system message says "JSON", which OpenAI requires). An endpoint that rejects it (a 400 naming response_format)
is asked the same request again without it, and no request of the run sends it again. The cache key is the
request as configured, so a rerun finds those replies too. The strict parser reads a JSON object (fenced or
not) or a labelled score in free text with its markdown emphasis removed ("**Factuality Score:** 6/10",
"Score: 8", "Factuality Score - 7"); a reply it cannot read as exactly one integer in 1-10 (two different scores,
"8.5", "6-8", "11", "between 6 and 8") is unscored and counted, never guessed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..io import write_json_atomic

log = logging.getLogger(__name__)

SYSTEM = "You are an expert at evaluating the factuality of answers."
JSON_HINT = " Reply with a JSON object."  # JSON mode only: OpenAI refuses it unless the messages say "JSON"
# Our wording of the original's rubric (spec §6, which paraphrases eval_gpt.py).
RUBRIC = """You will be given a question about a person, the answer a model generated, and the ground truth.
Rate the factuality of the generated answer against the ground truth on a scale from 1 to 10:
- 10-9: fully correct, or the same meaning in other words;
- 8-7: mostly correct, with minor omissions;
- 6-5: partially correct, with a noticeable error or missing information;
- 4-3: major errors or crucial elements missing;
- 2-1: nonsensical, wrong or irrelevant.
Extra detail does not raise the score; irrelevant detail (e.g. personal information when only appearance is
asked) lowers it.

Task type: {task_type}
Image ID: {image_id}
Question: {question}
Generated answer: {answer}
Ground truth: {ground_truth}

Return exactly: {{"Factuality Score": <1-10>, "Justification": "<one sentence>"}}"""


@dataclass(frozen=True)
class JudgeConfig:
    model: str = "gpt-4o-mini-2024-07-18"  # the snapshot eval_gpt.py's alias "gpt-4o-mini" meant in 2024
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = 0.0  # None: the API default (the original sets none, spec §6)
    max_tokens: int = 700
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5
    score_parser: str = "strict"  # or "original"
    json_mode: bool = True  # ask for a JSON reply (strict parser only); dropped if the endpoint rejects it
    cache_dir: str = "results/judge_cache"

    @classmethod
    def from_config(cls, cfg: dict) -> "JudgeConfig":
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise KeyError(f"config: unknown judge key(s) {sorted(unknown)}")
        return cls(**cfg)


def judge_prompt(record: dict) -> str:
    return RUBRIC.format(task_type="Generation", image_id=record["profile_id"], question=record["question"],
                         answer=record["parsed"], ground_truth=record["gold"])


# A labelled score in free text once emphasis and quotes are gone: "Factuality Score: 8", "Score - 8",
# "Factuality (1-10): 8/10", "Score: 8 out of 10". What would make the number ambiguous is captured with it
# (a decimal, a range "6-8" / "6 to 8", a scale other than 10) so that the reply is left unscored.
LABELLED_SCORE = re.compile(
    r"\b(?:factuality(?:\s+score)?|score)(?:\s*\([^)]*\))?\s*[:=\-–—]\s*(?P<n>\d+(?:\.\d+)?)"
    r"(?P<range>\s*(?:-|–|to)\s*\d+)?(?:\s*(?:/|out\s+of)\s*(?P<scale>\d+))?", re.IGNORECASE)
MARKUP = re.compile(r'[*_`"]')  # markdown emphasis (**, __, *), code ticks and JSON quotes


def parse_score(text: str, parser: str = "strict") -> tuple[int | None, str | None]:
    """(score, justification). ``original``: eval_gpt.py's rule, the first line containing "Factuality Score",
    the text after its last ":" without commas, ``int()``. ``strict``: the "Factuality Score" of the JSON object
    if the reply holds one (fenced or not) and it is a number, else the labelled scores of the text (module
    docstring); exactly one integer in 1-10, else (None, ...) = unscored."""
    justification = next((ln.split(":", 1)[-1].strip(' "},*_') for ln in text.splitlines()
                          if "Justification" in ln), None)
    if parser == "original":
        line = next((ln for ln in text.splitlines() if "Factuality Score" in ln), None)
        try:
            return int(line.split(":")[-1].strip().replace(",", "")), justification
        except (AttributeError, ValueError):
            return None, justification
    if parser != "strict":
        raise ValueError(f"judge.score_parser must be strict or original, got '{parser}'")
    match = re.search(r"\{.*\}", text, re.DOTALL)
    try:
        obj = json.loads(match.group(0)) if match else {}
    except ValueError:
        obj = {}  # not JSON after all: the text rules read it
    obj = obj if isinstance(obj, dict) else {}
    justification = obj.get("Justification", justification)
    score = obj.get("Factuality Score")
    if score is not None and not isinstance(score, str):  # a JSON number decides; a string ("8/10") is text
        valid = isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 10
        return (score if valid else None), justification
    scores = set()
    for m in LABELLED_SCORE.finditer(MARKUP.sub("", text)):
        if "." in m["n"] or m["range"] or m["scale"] not in (None, "10"):
            return None, justification
        scores.add(int(m["n"]))
    score = scores.pop() if len(scores) == 1 else None  # none, or two different ones: unscored
    return (score if score is not None and 1 <= score <= 10 else None), justification


class Judge:
    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.cache = Path(cfg.cache_dir) / re.sub(r"[^A-Za-z0-9._-]", "_", cfg.model)
        self._client = None
        # The original's parser reads one line of the reply: a one-line JSON object would defeat it.
        self.json_mode = cfg.json_mode and cfg.score_parser == "strict"
        self._json_mode_rejected = threading.Event()  # the endpoint refused response_format: not sent again

    def api_key(self) -> str | None:
        return os.environ.get(self.cfg.api_key_env) or None

    def request(self, prompt: str, system: str = SYSTEM) -> dict:
        """The request as configured; it is also the cache key."""
        body = {"model": self.cfg.model, "max_tokens": self.cfg.max_tokens,
                "messages": [{"role": "system", "content": system + (JSON_HINT if self.json_mode else "")},
                             {"role": "user", "content": prompt}]}
        if self.cfg.temperature is not None:
            body["temperature"] = self.cfg.temperature
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def cache_path(self, body: dict) -> Path:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return self.cache / digest[:2] / f"{digest}.json"

    def client(self):
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(api_key=self.api_key(), base_url=self.cfg.base_url, timeout=self.cfg.timeout_s,
                                  max_retries=self.cfg.max_retries)
        return self._client

    def send(self, body: dict) -> tuple[str, bool]:
        """The endpoint's reply to ``body``, and whether it was sent with ``response_format``."""
        from openai import BadRequestError

        create = self.client().chat.completions.create
        if "response_format" in body and not self._json_mode_rejected.is_set():
            try:
                return create(**body).choices[0].message.content or "", True
            except BadRequestError as exc:
                if "response_format" not in str(exc):
                    raise
                if not self._json_mode_rejected.is_set():
                    log.warning("%s rejects JSON mode (%s): this run asks without response_format",
                                self.cfg.base_url, exc)
                self._json_mode_rejected.set()
        plain = {k: v for k, v in body.items() if k != "response_format"}
        return create(**plain).choices[0].message.content or "", False

    def complete(self, body: dict) -> str:
        """The judge's reply to one request: from the cache, else from the endpoint (then cached)."""
        path = self.cache_path(body)
        if path.is_file():
            return json.loads(path.read_text())["content"]
        content, json_mode = self.send(body)
        write_json_atomic(path, {"model": body["model"], "content": content, "json_mode": json_mode})
        return content

    def unanswerable(self, bodies: list[dict], what: str) -> str | None:
        """Why ``bodies`` cannot be answered (no key, and some replies not in the cache: the cache alone answers
        without a key), or None when they can; logged either way, under ``what``."""
        uncached = sum(not self.cache_path(b).is_file() for b in bodies)
        if uncached and self.api_key() is None:
            status = (f"not scored: no API key in ${self.cfg.api_key_env} "
                      f"({uncached} of {len(bodies)} replies not cached)")
            log.warning("%s %s", what, status)
            return status
        log.info("%s: judge %s at %s: %d requests, %d from the cache%s", what, self.cfg.model, self.cfg.base_url,
                 len(bodies), len(bodies) - uncached, "" if uncached else " (nothing to send)")
        return None

    def complete_all(self, bodies: list[dict], keep_going: bool = False) -> list[str | None]:
        """Every reply, concurrently. ``keep_going``: a request that still fails after its retries gives None
        (logged, not cached, so a forced rerun asks it again) instead of failing the job."""
        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrency) as pool:
            return list(pool.map(self._complete_or_none if keep_going else self.complete, bodies))

    def _complete_or_none(self, body: dict) -> str | None:
        from openai import OpenAIError

        try:
            return self.complete(body)
        except OpenAIError as exc:
            log.warning("%s: a request failed after %d retries (%s): not scored", self.cfg.base_url,
                        self.cfg.max_retries, type(exc).__name__)
            return None


def _rows(gen: list[dict], scores: list[int | None]) -> list[dict]:
    """Mean factuality per input modality; an item without a score is counted as unscored, never as a number."""
    rows = []
    for m in sorted({s["input_modality"] for s in gen}):
        mine = [score for s, score in zip(gen, scores) if s["input_modality"] == m]
        valid = [score for score in mine if score is not None]
        rows.append({"input_modality": m, "task": "generation", "metric": "factuality",
                     "value": sum(valid) / len(valid) if valid else None, "n": len(valid),
                     "unscored": len(mine) - len(valid)})
    return rows


def factuality(samples: list[dict], cfg: JudgeConfig) -> tuple[list[dict], list[dict], str]:
    """Per-sample judgements, metric rows per input modality, and the status ("scored" or why not)."""
    gen = [s for s in samples if s.get("task") == "generation"]
    judge = Judge(cfg)
    bodies = [judge.request(judge_prompt(r)) for r in gen]
    status = judge.unanswerable(bodies, "factuality")
    if status:
        return [], _rows(gen, [None] * len(gen)), status
    judged = []
    for r, reply in zip(gen, judge.complete_all(bodies)):
        score, why = parse_score(reply, cfg.score_parser)
        judged.append({"prompt_id": r["prompt_id"], "input_modality": r["input_modality"], "factuality": score,
                       "justification": why, "judge_output": reply})
    unscored = [j["prompt_id"] for j in judged if j["factuality"] is None]
    if unscored:
        log.warning("%d judge replies had no parseable score (not counted): %s", len(unscored),
                    ", ".join(unscored[:10]))
    return judged, _rows(gen, [j["factuality"] for j in judged]), "scored"
