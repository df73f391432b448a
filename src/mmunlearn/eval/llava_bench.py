"""LLaVA-Bench (in-the-wild) reviews (issue 17): the reviewer prompt, the two-score reply, and the relative score.

Protocol: LLaVA's ``llava/eval/eval_gpt_review_bench.py`` (``parse_score``; the prompt assembled in its main
loop) and ``llava/eval/summarize_gpt_review.py``, at haotian-liu/LLaVA 181a2f8. For every question the reviewer
sees the image's caption as context, the question, the *reference* answer as assistant 1 and ours as assistant 2,
then the category's rule; it replies with two scores on its first line. Per category and overall, the score is
mean(ours) / mean(reference) x 100.

Where we depart from it, and why:
- A reply whose first line is not two numbers is **not scored** and counted. The reference records it as
  (-1, -1) and averages it in, so a run where every call failed reports 100.0.
- The first line may separate the two scores by spaces and/or a comma ("8, 9"): the reference splits on single
  spaces after turning commas into spaces, so it rejects "8, 9" (two spaces) although the reviewer clearly gave
  two scores; so are spaces around the line. Every first line the reference reads as two scores in 0-10 we read
  as the same two scores (Python's "1_0" digit grouping aside).
- Scores outside 0-10 are not scored (the rules ask for 1-10; the reference would average an "80 90").
- The rules (the per-category instructions) are ours, in our words (``DEFAULT_RULES``); ``judge.llava_bench_rules``
  may point at LLaVA's own ``rule.json`` (same structure: ``llava_bench_<category>`` -> role, prompt) for numbers
  comparable with published ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

from .judge import Judge, JudgeConfig

log = logging.getLogger(__name__)

CATEGORIES = ("conv", "detail", "complex")


def metric_name(category: str = "all") -> str:
    """summary.csv's metric for a category's relative score ("all": the overall one)."""
    return "relative_score" if category == "all" else f"relative_score_{category}"


METRICS = tuple(metric_name(c) for c in ("all", *CATEGORIES))
SYSTEM_PROMPT = "You are a careful reviewer who rates how good an answer is."

_SCALE = ("Give each assistant one overall score from 1 (useless or wrong) to 10 (fully correct, relevant and "
          "as detailed as the question needs). On the first line write only the two scores, assistant 1 first, "
          "separated by a space. From the second line on, explain your scores; do not let the order in which the "
          "answers were shown influence them.")
DEFAULT_RULES = {
    f"llava_bench_{category}": {
        "role": "Assistant",
        "prompt": (f"Two AI assistants answered the user's question above about an image. You cannot see the image; "
                   f"the context describes it in a few sentences. {focus} {_SCALE}"),
    }
    for category, focus in (
        ("conv", "Judge whether each answer is correct about what the image shows and answers what was asked."),
        ("detail", "The user asked for a description: judge how accurate and complete each description is, and "
                   "penalise details the context does not support."),
        ("complex", "The question needs reasoning about the image: judge whether each answer's reasoning is "
                    "sound and its conclusion follows from what the image shows."),
    )
}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"  # what Python's float() reads, as the reference uses
_TWO_SCORES = re.compile(rf"^\s*({_NUMBER})\s*(?:,\s*|\s+)({_NUMBER})\s*$")


def load_rules(path: str | Path | None) -> dict[str, dict[str, str]]:
    """Our rules, or a rules file in LLaVA's ``rule.json`` shape; every category must have a role and a prompt."""
    if path is None:
        return DEFAULT_RULES
    try:
        rules = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the LLaVA-Bench rules ({exc})") from None
    for category in CATEGORIES:
        rule = rules.get(f"llava_bench_{category}") if isinstance(rules, dict) else None
        if not isinstance(rule, dict) or not all(isinstance(rule.get(k), str) for k in ("role", "prompt")):
            raise ValueError(f"{path}: 'llava_bench_{category}' needs a 'role' and a 'prompt' string")
    return rules


def review_prompt(caption: list[str] | str, question: str, reference: str, answer: str, category: str,
                  rules: dict[str, dict[str, str]]) -> str:
    """The reviewer's user message, laid out as LLaVA's reviewer sees it (so that its ``rule.json`` fits). The
    caption: LLaVA's context file holds a list of sentences (one per line); the Hugging Face copy
    (lmms-lab/llava-bench-in-the-wild) one string."""
    rule = rules.get(f"llava_bench_{category}")
    if rule is None:
        raise ValueError(f"LLaVA-Bench category '{category}' has no rule (llava_bench_{category})")
    role = rule["role"]
    context = caption if isinstance(caption, str) else "\n".join(caption)
    return (f"[Context]\n{context}\n\n[Question]\n{question}\n\n"
            f"[{role} 1]\n{reference}\n\n[End of {role} 1]\n\n"
            f"[{role} 2]\n{answer}\n\n[End of {role} 2]\n\n"
            f"[System]\n{rule['prompt']}\n\n")


def parse_review(reply: str) -> tuple[float, float] | None:
    """(reference's score, ours) from the first line, or None (not scored)."""
    m = _TWO_SCORES.match(reply.split("\n", 1)[0])
    if not m:
        return None
    scores = float(m[1]), float(m[2])
    return scores if all(0 <= s <= 10 for s in scores) else None


def relative_scores(reviews: list[tuple[str, tuple[float, float] | None]]) -> dict[str, dict]:
    """[(category, scores or None)] -> per category and "all": {score: mean(ours) / mean(reference) x 100,
    reference, model (the mean scores), n (scored), unscored}; score None where nothing was scored or the
    reference's mean is 0."""
    groups: dict[str, list] = {}
    for category, scores in reviews:
        for name in (category, "all"):
            groups.setdefault(name, []).append(scores)
    out = {}
    for name, items in sorted(groups.items()):
        scored = [s for s in items if s is not None]
        ref = sum(s[0] for s in scored) / len(scored) if scored else None
        mine = sum(s[1] for s in scored) / len(scored) if scored else None
        out[name] = {"score": mine / ref * 100 if scored and ref else None, "reference": ref, "model": mine,
                     "n": len(scored), "unscored": len(items) - len(scored)}
    return out


def parse_row(row: dict, where: str = "LLaVA-Bench") -> dict:
    """A row of lmms-lab/llava-bench-in-the-wild (60 questions on 24 images) as the task uses it: id, category,
    question, caption, the reference answer (GPT-4's, the reviewer's assistant 1) and the image. A malformed row
    is an error naming its id and field."""
    item_id = row.get("question_id", "?")
    for key in ("question_id", "question", "caption", "gpt_answer", "category", "image"):
        if row.get(key) in (None, ""):
            raise ValueError(f"{where}: row {item_id}: no '{key}'")
    if row["category"] not in CATEGORIES:
        raise ValueError(f"{where}: row {item_id}: category '{row['category']}' is not one of {', '.join(CATEGORIES)}")
    return {"id": str(item_id), "category": row["category"], "question": row["question"], "caption": row["caption"],
            "reference": row["gpt_answer"], "image": row["image"]}


def reviewer_config(judge_cfg: dict, bench_cfg: dict) -> JudgeConfig:
    """The factuality judge's endpoint, key, cache and retries, with the reviewer's own model (``judge_model``;
    LLaVA's script asks GPT-4) and reply length; free text, not JSON mode (the first line holds the scores)."""
    cfg = JudgeConfig.from_config(dict(judge_cfg))
    return dataclasses.replace(cfg, model=bench_cfg.get("judge_model") or cfg.model, json_mode=False,
                               max_tokens=bench_cfg.get("review_max_tokens", 1024))


def _rows(reviews: list[tuple[str, tuple[float, float] | None]], modality: str) -> list[dict]:
    """summary rows: ``relative_score`` overall and ``relative_score_<category>`` (x100, LLaVA's convention)."""
    rows = []
    for name, r in relative_scores(reviews).items():
        rows.append({"input_modality": modality, "task": "llava_bench",
                     "metric": metric_name(name), "value": r["score"],
                     "n": r["n"], "unscored": r["unscored"]})
    return rows


def review(samples: list[dict], cfg: JudgeConfig, rules: dict) -> tuple[list[dict], list[dict], str]:
    """Per-question reviews, the relative scores, and the status ("scored", or why not). A request that fails
    after its retries, or a reply whose first line is not two scores, is not scored and counted (``review``: None
    for a failed request); with no key and no cached reply nothing is."""
    answers = [s for s in samples if s.get("task") == "llava_bench" and "not_scored" not in s]
    modality = answers[0]["input_modality"] if answers else "image_text"
    judge = Judge(cfg)
    bodies = [judge.request(review_prompt(s["caption"], s["question"], s["gold"], s["parsed"], s["category"],
                                          rules), system=SYSTEM_PROMPT) for s in answers]
    status = judge.unanswerable(bodies, "LLaVA-Bench review")
    if status:
        return [], _rows([(s["category"], None) for s in answers], modality), status
    records = []
    # a reply that fails after its retries is not scored and counted, like one that cannot be parsed
    for s, reply in zip(answers, judge.complete_all(bodies, keep_going=True)):
        scores = None if reply is None else parse_review(reply)
        numbers = {} if scores is None else {
            "reviewer_reference": scores[0], "reviewer_model": scores[1],
            f"reviewer_reference_{s['category']}": scores[0], f"reviewer_model_{s['category']}": scores[1]}
        records.append({"prompt_id": s["prompt_id"], "profile_id": s["profile_id"], "question_id": s["question_id"],
                        "task": "llava_bench", "input_modality": s["input_modality"], "category": s["category"],
                        "scores": scores, "score": numbers, "review": reply})
    unscored = [r["question_id"] for r in records if r["scores"] is None]
    if unscored:
        log.warning("%d LLaVA-Bench reviews failed or had no two scores on their first line (not scored): %s",
                    len(unscored), ", ".join(map(str, unscored[:10])))
    return records, _rows([(r["category"], r["scores"]) for r in records], modality), "scored"
