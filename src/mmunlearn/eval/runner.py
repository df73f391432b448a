"""Evaluate one model run on one split: every configured task x input modality, per-sample records and
metrics. Splits are read exactly as the original reads them (spec §5): the published forget/retain folders
when present (Full_Set filtered by the split's IDs otherwise), Test_Set restricted to the forget IDs with the
seeded image choice, and Retain_Set for the celebrities. Few-shot demonstrations come from Full_Set."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..data.schema import read_benchmark_folder
from ..data.sets import vanilla_set
from ..data.splits import HOLDOUT
from ..data.utility import read_rows
from ..models.registry import VisionLanguageModel
from .identity import run_identity  # noqa: F401  (re-exported: evaluate.py and tests import it here)
from . import llava_bench, mmmu
from .tasks import TASKS, EvalContext, get_task, run_task

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


def split_inputs(bench_root: str | Path, split: str, split_info: dict, tasks: list[str], eval_cfg: dict,
                 training: dict | None = None) -> tuple[list[str], list, dict[str, bytes], Callable]:
    """What ``evaluate_split`` scores on one split: its tasks, its people (with their fine-tuning rows where a task
    scores them), the image each is shown with, and the few-shot chooser (task -> demonstration profiles).
    ``training``: ID -> the person's fine-tuning profile; read from ``MLLMU-Bench/ft_Data`` when a task needs it
    and none is given."""
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
    return tasks, profiles, images, lambda task: demo_profiles(split, task, split_info, full, eval_cfg)


def evaluate_split(vlm: VisionLanguageModel, bench_root: str | Path, split: str, split_info: dict,
                   tasks: list[str], eval_cfg: dict, training: dict | None = None) -> tuple[list[dict], list[dict], dict]:
    """Every task x input modality on one split: per-sample records, metrics, and decode statistics
    (``split_inputs`` says what is scored)."""
    tasks, profiles, images, fewshot = split_inputs(bench_root, split, split_info, tasks, eval_cfg, training)
    return score_tasks(vlm, split, profiles, images, tasks, eval_cfg, fewshot)


def task_context(vlm: VisionLanguageModel, split: str, images: dict[str, bytes], task_name: str, eval_cfg: dict,
                 fewshot_profiles: list, seed: int = 42, options: dict | None = None) -> EvalContext:
    """One task's evaluation settings on one split, from the model's eval config."""
    return EvalContext(vlm=vlm, split=split, images=images, batch_size=eval_cfg["batch_size"],
                       max_new_tokens=eval_cfg["max_new_tokens"].get(task_name, 0),  # 0: teacher-forced
                       fewshot_profiles=fewshot_profiles, stopping_rule=eval_cfg.get("stopping_rule", True),
                       letter_parser=eval_cfg.get("letter_parser", "first_character"),
                       decode_from=eval_cfg.get("decode_from", "new_tokens"),
                       reuse_prefix=eval_cfg.get("reuse_prefix", True), seed=seed, options=options or {})


def ride_order(tasks: list[str]) -> list[str]:
    """``tasks`` in their order, except that a task that rides on another (``Task.rides_on``: scored on its
    prefill) comes right after it, as many come already."""
    position = {t: float(k) for k, t in enumerate(tasks)}
    for t in tasks:
        host = get_task(t).rides_on
        if host in position and position[host] > position[t]:
            position[t] = position[host] + 0.5
    return sorted(tasks, key=position.__getitem__)


def score_tasks(vlm: VisionLanguageModel, split: str, profiles: list, images: dict[str, bytes], tasks: list[str],
                eval_cfg: dict, fewshot=lambda task: [], seed: int = 42,
                options: dict | None = None) -> tuple[list[dict], list[dict], dict]:
    """Every task x input modality on one split's people (or a benchmark's units): records, metric rows (mean
    over the records that have the metric; ``not_scored``: records a utility task could not score), decode
    statistics."""
    samples, metrics, stats = [], [], {}
    tasks = ride_order(tasks)
    contexts = {t: task_context(vlm, split, images, t, eval_cfg, fewshot(t), seed, options) for t in tasks}
    # a family that cannot continue a cache (Family.no_cache_reuse) scores the rider's items whole, beside its host
    riders = {get_task(t).rides_on: (get_task(t), contexts[t]) for t in tasks if get_task(t).rides_on in contexts}
    for task_name in tasks:
        task, ctx = get_task(task_name), contexts[task_name]
        for modality in task.modalities:
            t0 = time.time()
            ridden = modality in ctx.ridden
            if ridden:  # scored on its host task's prefill, whose time it is counted in
                scored = ctx.ridden.pop(modality)
            else:
                scored = run_task(task, profiles, modality, ctx, riders.get(task_name))
            if not scored and task.training_rows:
                log.info("%s/%s/%s: none of these people has fine-tuning rows; not scored", split, task_name,
                         modality)
                continue
            for s in scored:
                s.update(task=task_name, input_modality=modality)
            samples += scored
            for metric in task.metrics:
                values = [s["score"][metric] for s in scored if metric in s["score"]]
                row = {"input_modality": modality, "task": task_name, "metric": metric,
                       "value": sum(values) / len(values) if values else None, "n": len(values)}
                if task.benchmark:
                    row["not_scored"] = sum("not_scored" in s for s in scored)
                metrics.append(row)
            log.info("%s/%s/%s: %d items in %.1f s%s: %s", split, task_name, modality, len(scored), time.time() - t0,
                     f" (with {task.rides_on}, in its time)" if ridden else "",
                     ", ".join(f"{m['metric']}={m['value']:.3f}" for m in metrics[-len(task.metrics):]
                               if m["value"] is not None) if task.metrics else "")
        stats[task_name] = dataclasses.asdict(ctx.stats)
    return samples, metrics, stats


@dataclass
class BenchmarkUnit:
    """What a utility benchmark's tasks treat as a person: the unit its questions cluster by (an MMMU question;
    a LLaVA-Bench image, asked three questions), the bootstrap's resampling unit (``profile_id``)."""

    id: str
    questions: list[dict]


def benchmark_units(root: str | Path, name: str) -> list[BenchmarkUnit]:
    """A prepared utility benchmark's questions, parsed (eval/mmmu.py ``parse_item``, eval/llava_bench.py
    ``parse_row``; a malformed row is an error naming the file's benchmark, the row and the field)."""
    rows = read_rows(root, name)
    if name == "mmmu":
        units = []
        for row in rows:
            item = mmmu.parse_item(row, where=f"{root} (MMMU)")
            units.append(BenchmarkUnit(item["id"], [{**item, "image_bytes": tuple(row[k] for k in item["images"])}]))
        return units
    by_image: dict[str, list[dict]] = {}
    for row in rows:
        item = llava_bench.parse_row(row, where=f"{root} (LLaVA-Bench)")
        by_image.setdefault(str(row.get("image_id") or item["id"]), []).append(item)
    return [BenchmarkUnit(image_id, items) for image_id, items in by_image.items()]


def evaluate_benchmark(vlm: VisionLanguageModel, root: str | Path, name: str, eval_cfg: dict, options: dict,
                       seed: int) -> tuple[list[dict], list[dict], dict]:
    """A utility benchmark's tasks (those declaring ``benchmark=name``) on all its questions."""
    tasks = [t.name for t in TASKS.values() if t.benchmark == name]
    return score_tasks(vlm, name, benchmark_units(root, name), {}, tasks, eval_cfg, seed=seed, options=options)


def benchmark_breakdown(name: str, samples: list[dict]) -> dict:
    """MMMU's per-subject and per-discipline accuracy (over the scored questions), for the metrics file."""
    if name != "mmmu":
        return {}
    correct = {s["question_id"]: bool(s["score"]["accuracy"]) for s in samples if "accuracy" in s.get("score", {})}
    by_subject = mmmu.accuracy_by_subject(correct)
    return {"accuracy_by_subject": {k: {"accuracy": a, "n": n} for k, (a, n) in by_subject.items()}}
