"""Declared evaluation tasks (lm-evaluation-harness style): a task names its questions, prompt builder, parser,
metrics and few-shot rule; one generic runner scores any task on any split and input modality.

Adding a task is one ``@register_task`` function that turns (profiles, modality, context) into scored samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..data.schema import IMAGE_TEXT, Profile
from ..models import prompts
from ..models.registry import VisionLanguageModel
from .decode import continuation_logliks, greedy_generate


@dataclass
class EvalContext:
    vlm: VisionLanguageModel
    split: str
    fewshot_profiles: list[Profile]  # demonstrations (from Full_Set), already chosen by the split builder
    images: dict[str, bytes]  # the image each evaluated profile is shown with
    batch_size: int
    max_new_tokens: int
    stopping_rule: bool = True


@dataclass(frozen=True)
class Task:
    name: str
    metrics: tuple[str, ...]
    fewshot_splits: tuple[str, ...]  # splits on which the paper shows demonstrations
    run: Callable[[list[Profile], str, EvalContext], list[dict]]


TASKS: dict[str, Task] = {}


def register_task(name: str, metrics: tuple[str, ...], fewshot_splits: tuple[str, ...]):
    def wrap(fn):
        TASKS[name] = Task(name, metrics, fewshot_splits, fn)
        return fn
    return wrap


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown evaluation task '{name}'; known: {sorted(TASKS)}")
    return TASKS[name]


@register_task("classification", metrics=("accuracy", "accuracy_loglik"),
               fewshot_splits=("forget", "test", "retain"))  # celebrity classification is zero-shot (spec §2.5)
def classification(profiles: list[Profile], modality: str, ctx: EvalContext) -> list[dict]:
    """Multiple choice, scored twice: the answer letter parsed from greedy output as the paper does
    (``accuracy``), and the option whose text is most likely after the question (``accuracy_loglik``: zero-shot,
    context = the QA prompt, continuation = " " + option text, summed log-probability)."""
    with_image = modality == IMAGE_TEXT
    fewshot, skip = "", set()
    images_fewshot: tuple[bytes, ...] = ()
    if ctx.split in TASKS["classification"].fewshot_splits:
        for demo in ctx.fewshot_profiles:
            for i, q in enumerate(demo.classification[modality]):
                fewshot += prompts.mc_demo(q.question, q.options, q.answer, with_image)
                images_fewshot += (demo.image,) if with_image else ()
                skip.add((demo.id, i))  # the original skips the demo profile's questions by index, also on Test
    samples, letter_items, option_items = [], [], []
    for p in profiles:
        image = (ctx.images[p.id],) if with_image else ()
        for i, q in enumerate(p.classification[modality]):
            if (p.id, i) in skip:
                continue
            prompt = prompts.mc_prompt(q.question, q.options, with_image, fewshot)
            letter_items.append(ctx.vlm.encode(prompt, images=images_fewshot + image))
            qa_prompt = prompts.qa_prompt(q.question, with_image)  # LLaVA-style for every family, as eval.py
            for key in q.options:
                option_items.append(ctx.vlm.encode(qa_prompt, " " + q.options[key], images=image))
            samples.append({"prompt_id": f"{p.id}/{modality}/{i}", "profile_id": p.id, "question": q.question,
                            "options": q.options, "gold": q.answer})
    outputs = greedy_generate(ctx.vlm, letter_items, ctx.max_new_tokens, ctx.batch_size,
                              stop="first_visible" if ctx.stopping_rule else "eos")
    logliks = continuation_logliks(ctx.vlm, option_items, ctx.batch_size)
    k = 0
    for s, out in zip(samples, outputs):
        keys = list(s["options"])
        scores = logliks[k:k + len(keys)]
        k += len(keys)
        parsed = prompts.parse_letter(out, keys)
        best = keys[max(range(len(keys)), key=scores.__getitem__)]
        s.update(raw_output=out, parsed=parsed, loglik=dict(zip(keys, scores)), parsed_loglik=best,
                 score={"accuracy": float(parsed == s["gold"]), "accuracy_loglik": float(best == s["gold"])})
    return samples
