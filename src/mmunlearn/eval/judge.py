"""The factuality judge (spec §6): an LLM rates each generated answer against the ground truth on 1-10.

Any OpenAI-compatible chat-completions endpoint works (OpenAI, a local vLLM or llama.cpp server): the official
``openai`` client with ``judge.base_url``. Requests are sent concurrently (``max_concurrency``); 429, 5xx,
timeouts and dropped connections are retried with exponential backoff (the client's own, honouring
Retry-After) up to ``max_retries``. Every response is cached on disk keyed by the model and a hash of the full
request, written atomically as it arrives, so a rerun or a crash never pays twice.

The API key is read from the environment variable named by ``judge.api_key_env`` and handed to the client
only: it is never logged or written. Without it, factuality is "not scored" (no number), and says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..data.schema import MODALITIES
from ..io import write_json_atomic

log = logging.getLogger(__name__)

SYSTEM = "You are an expert at evaluating the factuality of answers."
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


def parse_score(text: str, parser: str = "strict") -> tuple[int | None, str | None]:
    """(score, justification). ``original``: eval_gpt.py's rule, the first line containing "Factuality Score",
    the text after its last ":" without commas, ``int()``. ``strict``: the JSON object if the reply holds one,
    else the number after "Factuality Score":, and only 1-10. Anything else: (None, ...) = unscored."""
    justification = next((ln.split(":", 1)[-1].strip(' "},') for ln in text.splitlines()
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
    if match:
        try:
            obj = json.loads(match.group(0))
            score = obj.get("Factuality Score")
            if isinstance(score, str) and score.strip().isdigit():
                score = int(score.strip())
            if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 10:
                return score, obj.get("Justification", justification)
            return None, justification
        except (ValueError, AttributeError):
            pass
    m = re.search(r'Factuality Score"?\s*:\s*"?(\d+)\b', text)
    score = int(m.group(1)) if m else None
    return (score if score is not None and 1 <= score <= 10 else None), justification


class Judge:
    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.cache = Path(cfg.cache_dir) / re.sub(r"[^A-Za-z0-9._-]", "_", cfg.model)
        self._client = None

    def api_key(self) -> str | None:
        return os.environ.get(self.cfg.api_key_env) or None

    def request(self, prompt: str) -> dict:
        body = {"model": self.cfg.model, "max_tokens": self.cfg.max_tokens,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]}
        if self.cfg.temperature is not None:
            body["temperature"] = self.cfg.temperature
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

    def complete(self, body: dict) -> str:
        """The judge's reply to one request: from the cache, else from the endpoint (then cached)."""
        path = self.cache_path(body)
        if path.is_file():
            return json.loads(path.read_text())["content"]
        reply = self.client().chat.completions.create(**body)
        content = reply.choices[0].message.content or ""
        write_json_atomic(path, {"model": body["model"], "content": content})
        return content

    def score_all(self, records: list[dict]) -> tuple[list[dict], dict]:
        """Score every generation record; returns per-sample judgements and counts (requests made, cached)."""
        bodies = [self.request(judge_prompt(r)) for r in records]
        cached = sum(self.cache_path(b).is_file() for b in bodies)
        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrency) as pool:
            replies = list(pool.map(self.complete, bodies))
        out = []
        for r, reply in zip(records, replies):
            score, why = parse_score(reply, self.cfg.score_parser)
            out.append({"prompt_id": r["prompt_id"], "input_modality": r["input_modality"], "factuality": score,
                        "justification": why, "judge_output": reply})
        return out, {"items": len(records), "from_cache": cached, "requested": len(records) - cached}


def factuality(samples: list[dict], cfg: JudgeConfig) -> tuple[list[dict], list[dict], str]:
    """Per-sample judgements, metric rows per input modality, and the status ("scored" or why not)."""
    gen = [s for s in samples if s.get("task") == "generation"]
    judge = Judge(cfg)
    if judge.api_key() is None:
        status = f"not scored: no API key in ${cfg.api_key_env}"
        log.warning("factuality %s", status)
        return [], [{"input_modality": m, "task": "generation", "metric": "factuality", "value": None, "n": 0,
                     "unscored": sum(s["input_modality"] == m for s in gen)} for m in MODALITIES], status
    judged, counts = judge.score_all(gen)
    log.info("judge %s at %s: %d items, %d from the cache", cfg.model, cfg.base_url, counts["items"],
             counts["from_cache"])
    rows = []
    for m in MODALITIES:
        scores = [j["factuality"] for j in judged if j["input_modality"] == m]
        valid = [s for s in scores if s is not None]
        unscored = [j["prompt_id"] for j in judged if j["input_modality"] == m and j["factuality"] is None]
        if unscored:
            log.warning("%s: %d judge replies had no parseable score (not counted): %s", m, len(unscored),
                        ", ".join(unscored[:10]))
        rows.append({"input_modality": m, "task": "generation", "metric": "factuality",
                     "value": sum(valid) / len(valid) if valid else None, "n": len(valid),
                     "unscored": len(scores) - len(valid)})
    return judged, rows, "scored"
