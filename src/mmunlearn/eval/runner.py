"""Evaluate one model run on one split: every configured task x input modality, per-sample records and
metrics. Splits are read exactly as the original reads them (spec §5): the published forget/retain folders
when present (Full_Set filtered by the split's IDs otherwise), Test_Set restricted to the forget IDs with the
seeded image choice, and Retain_Set for the celebrities. Few-shot demonstrations come from Full_Set."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from pathlib import Path

from ..data.schema import MODALITIES, read_benchmark_folder
from ..data.sets import vanilla_set
from ..data.splits import HOLDOUT
from ..models.registry import VisionLanguageModel
from .identity import run_identity  # noqa: F401  (re-exported: evaluate.py and tests import it here)
from .tasks import EvalContext, get_task, run_task

log = logging.getLogger(__name__)


def split_profiles(bench_root: str | Path, split: str, split_info: dict) -> tuple[list, dict[str, bytes]]:
    """The profiles of ``split`` and the image each is shown with."""
    bench = Path(bench_root)
    ratio = split_info["forget_ratio"]
    if split == "celebrity":
        profiles = read_benchmark_folder(bench / "Retain_Set")[0]
        ids = split_info["celebrity_ids"]
    elif split == HOLDOUT:  # people no model learnt: the non-members of membership inference
        profiles = read_benchmark_folder(bench / "Full_Set")[0]
        ids = split_info.get("holdout_ids", [])
    elif split == "test":
        profiles = read_benchmark_folder(bench / "Test_Set")[0]
        ids = split_info["forget_ids"]
    else:
        ids = split_info["forget_ids"] if split == "forget" else split_info["retain_ids"]
        folder = bench / (f"forget_{ratio}" if split == "forget" else f"retain_{100 - ratio}")
        profiles = read_benchmark_folder(folder if folder.is_dir() else bench / "Full_Set")[0]
    missing = [i for i in ids if i not in profiles]
    if missing:
        raise ValueError(f"split '{split}': {len(missing)} IDs missing from the data, e.g. {missing[:3]}")
    chosen = [profiles[i] for i in ids]
    if split == "test":
        images = {p.id: p.images[split_info["test_image_index"][p.id] % len(p.images)] for p in chosen}
    else:
        images = {p.id: p.image for p in chosen}
    return chosen, images


def demo_profiles(split: str, task: str, split_info: dict, full: dict, eval_cfg: dict) -> list:
    """The demonstration profiles of ``task`` on ``split``, read from Full_Set (spec §2.5).

    ``eval.fewshot_pool: split`` (the original): profiles of the evaluated split itself (forget IDs on the
    forget and test sets), seeded by the split file; celebrity IDs are not in Full_Set, so celebrity demos come
    back empty (zero-shot), as in the original. ``held_out``: the first k profiles of a seeded pool of retain
    profiles that no split scores, the same demos on every split.
    """
    k = eval_cfg["fewshot"].get(task, 0)
    if eval_cfg.get("fewshot_pool", "split") == "held_out":
        ids = split_info["fewshot_pool"][:k]
    else:
        ids = split_info["fewshot_ids"].get(split, {}).get(task, [])  # none on the holdout
        if k < len(ids):  # this model shows fewer demos than the split drew (Idefics2's 1-shot cloze)
            ids = sorted(random.Random(f"{split_info['seed']}:{split}:{task}:{k}").sample(ids, k))
    missing = [i for i in ids if i not in full]
    if missing:
        log.info("%s/%s: %d demo IDs not in Full_Set (e.g. %s): fewer demonstrations, as the original",
                 split, task, len(missing), missing[:2])
    return [full[i] for i in ids if i in full]


def split_tasks(split: str, tasks: list[str]) -> list[str]:
    """The tasks scored on ``split``: those declared for it (``Task.splits``), and on the holdout only the
    teacher-forced ones (membership inference needs their likelihoods; what the people would answer is not its
    question)."""
    def scored(task) -> bool:
        return (task.splits is None or split in task.splits) and (split != HOLDOUT or not task.generate)

    return [t for t in tasks if scored(get_task(t))]


def evaluate_split(vlm: VisionLanguageModel, bench_root: str | Path, split: str, split_info: dict,
                   tasks: list[str], eval_cfg: dict, training: dict | None = None) -> tuple[list[dict], list[dict], dict]:
    """Every task x input modality on one split: per-sample records, metrics, and decode statistics.
    ``training``: ID -> the person's fine-tuning profile (its QA pairs, name), for the tasks that score the
    training rows (``likelihood_qa``); read from ``MLLMU-Bench/ft_Data`` when such a task runs and none is given."""
    tasks = split_tasks(split, tasks)
    profiles, images = split_profiles(bench_root, split, split_info)
    if any(get_task(t).training_rows for t in tasks):
        if training is None:
            training = {p.id: p for p in vanilla_set(Path(bench_root).parent)}
        # the fine-tuning rows of these people, if they have any (celebrities do not)
        profiles = [dataclasses.replace(p, qa=training[p.id].qa, name=training[p.id].name) if p.id in training
                    else p for p in profiles]
    if eval_cfg.get("fewshot_pool", "split") == "held_out":
        pool = set(split_info["fewshot_pool"])
        profiles = [p for p in profiles if p.id not in pool]
    full = read_benchmark_folder(Path(bench_root) / "Full_Set")[0]
    samples, metrics, stats = [], [], {}
    for task_name in tasks:
        task = get_task(task_name)
        ctx = EvalContext(vlm=vlm, split=split, images=images, batch_size=eval_cfg["batch_size"],
                          max_new_tokens=eval_cfg["max_new_tokens"].get(task_name, 0),  # 0: teacher-forced
                          fewshot_profiles=demo_profiles(split, task_name, split_info, full, eval_cfg),
                          stopping_rule=eval_cfg.get("stopping_rule", True),
                          letter_parser=eval_cfg.get("letter_parser", "first_character"),
                          decode_from=eval_cfg.get("decode_from", "new_tokens"),
                          reuse_prefix=eval_cfg.get("reuse_prefix", True))
        for modality in MODALITIES:
            t0 = time.time()
            scored = run_task(task, profiles, modality, ctx)
            if not scored and task.training_rows:
                log.info("%s/%s/%s: none of these people has fine-tuning rows; not scored", split, task_name,
                         modality)
                continue
            for s in scored:
                s.update(task=task_name, input_modality=modality)
            samples += scored
            for metric in task.metrics:
                values = [s["score"][metric] for s in scored if metric in s["score"]]
                metrics.append({"input_modality": modality, "task": task_name, "metric": metric,
                                "value": sum(values) / len(values) if values else None, "n": len(values)})
            log.info("%s/%s/%s: %d items in %.1f s: %s", split, task_name, modality, len(scored), time.time() - t0,
                     ", ".join(f"{m['metric']}={m['value']:.3f}" for m in metrics[-len(task.metrics):]
                               if m["value"] is not None))
        stats[task_name] = dataclasses.asdict(ctx.stats)
    return samples, metrics, stats
