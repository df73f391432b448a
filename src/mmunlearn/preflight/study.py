"""The preflight of a configured study: for each configured model, the data every GPU rule's jobs train or
evaluate on (read as those jobs read it), one measurement per rule (preflight/measure.py), and the report:
projected runtimes, fit checks, suggested resources, the GPU-hour bill (preflight/plan.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..cluster import PlannedJob
from ..data.sets import finetune_sets, folder_set, split_sets, vanilla_set
from ..data.splits import holdout_ids
from ..eval.identity import UTILITY_SPLITS, split_parts
from ..eval.runner import benchmark_units, split_inputs
from ..eval.tasks import TASKS, get_task
from ..models.registry import family
from ..train.examples import build_mix, finetune_mix
from ..train.losses import get_loss
from ..train.stages import _all_text, train_config, unlearn_items
from ..train.trainer import make_plan
from . import plan
from .measure import EvalSplit, device_description, model_source, probe_evaluation, probe_training

log = logging.getLogger(__name__)


def select(study: dict, settings: dict) -> tuple[list[str], list[str]]:
    """The models and rule keys to measure: ``preflight.models`` / ``preflight.rules`` (null: all the study's).
    ``unlearn`` stands for every configured method, ``unlearn:<method>`` for one."""
    all_keys = ["finetune_vanilla", "finetune_oracle", *(f"unlearn:{m}" for m in study["methods"]), "evaluate"]
    models = settings.get("models") or list(study["models"])
    unknown = [m for m in models if m not in study["models"]]
    if unknown:
        raise ValueError(f"config: preflight.models names {unknown}, not in study.models {study['models']}")
    wanted = settings.get("rules")
    if not wanted:
        return models, ["pretrain_tiny_base", *all_keys]
    keys = []
    for rule in wanted:
        matched = [k for k in ["pretrain_tiny_base", *all_keys] if k == rule or k.startswith(f"{rule}:")]
        if not matched:
            raise ValueError(f"config: preflight.rules names '{rule}'; known: {['pretrain_tiny_base', *all_keys]}")
        keys += [k for k in matched if k not in keys]
    return models, keys


def steps_of(method: str, sizes: dict[str, int], hp: dict, seed: int) -> int:
    """Micro-steps (forward + backward of one batch) of a training job with these stream sizes: its plan."""
    spec = get_loss(method)
    return len(make_plan(sizes, spec.streams, spec.paired, train_config(hp, seed))[0])


class StudyData:
    """The training items and evaluation splits of the study's jobs, read as the jobs read them."""

    def __init__(self, data_root: str, facts: dict, split_infos: dict[int, dict], config: dict, seed: int):
        self.root, self.facts, self.splits, self.config, self.seed = Path(data_root), facts, split_infos, config, seed
        self.bench = self.root / "MLLMU-Bench"

    def vanilla(self, train_prompt) -> list:
        hp = self.config["finetune"]
        held = holdout_ids(self.bench, self.config["study"]["holdout_ratio"], self.seed)
        people, replay = finetune_sets(self.root, "vanilla", hp["mix"], self.facts, holdout=held)
        return finetune_mix(people, hp["mix"], train_prompt, self.seed, replay)

    def oracle(self, ratio: int, train_prompt) -> list:
        hp = self.config["oracle"]
        people, replay = finetune_sets(self.root, "oracle", hp["mix"], self.facts, split=self.splits[ratio])
        return finetune_mix(people, hp["mix"], train_prompt, self.seed, replay)

    def unlearning(self, method: str, ratio: int, train_prompt) -> dict[str, list]:
        """The method's streams in its multimodal variant (the text variant shows no image: it needs less)."""
        sets = split_sets(self.root, self.splits[ratio], facts=self.facts)
        return unlearn_items(get_loss(method), "multimodal", sets["forget"], sets["retain"], train_prompt,
                             self.config["methods"][method], self.seed)

    def pretraining(self, model_cfg: dict, train_prompt) -> list:
        pre = model_cfg["pretrain"]
        people = folder_set(self.root, pre.get("data", "Pretrain_Set"), self.facts)
        return build_mix(people, pre["formats"], train_prompt, self.seed)

    def eval_split(self, name: str, eval_cfg: dict, training: dict) -> EvalSplit:
        if name in UTILITY_SPLITS:
            root = Path(self.config["utility"]["root"]) / name
            tasks = [t.name for t in TASKS.values() if t.benchmark == name]
            return EvalSplit(name, tasks, benchmark_units(root, name), {}, lambda task: [],
                             self.config["utility"][name])
        split, ratio = split_parts(name)
        info = self.splits[int(ratio) if ratio else min(self.splits)]
        tasks, profiles, images, fewshot = split_inputs(self.bench, split, info, self.config["study"]["tasks"],
                                                        eval_cfg, training)
        return EvalSplit(name, tasks, profiles, images, fewshot)


def probe_split_names(splits: list[EvalSplit], ratios: list[int]) -> dict[str, str]:
    """Per task, the split its batch is timed on: the largest ratio's forget split where the task is scored
    there (its few-shot prompts are the longest the study builds), else the first split that scores it."""
    forget = f"forget_{max(ratios)}"
    out = {}
    for sp in sorted(splits, key=lambda s: s.name != forget):
        for task in sp.tasks:
            out.setdefault(task, sp.name)
    return out


def run_preflight(config: dict, jobs: list[PlannedJob], data_root: str, facts: dict, split_infos: dict[int, dict],
                  model_cfgs: dict, base_sources: dict, eval_cfgs: dict, seed: int, startup_s: float = 0.0) -> dict:
    """Measure the selected models and rules (config ``preflight``) and build the report. ``startup_s``: what a
    job pays before its model load (interpreter, imports), added to every projected job."""
    settings = config.get("preflight") or {}
    steps_measured = int(settings.get("steps", 3))
    headroom = {**plan.HEADROOM, **(settings.get("headroom") or {})}
    models, keys = select(config["study"], settings)
    data = StudyData(data_root, facts, split_infos, config, seed)
    ratios = sorted(split_infos)
    measured, steps, sources = {}, {}, {}
    for name in models:
        model_cfg = model_cfgs[name]
        source = model_source(name, model_cfg, base_sources[name], lambda: _all_text(data.root, model_cfg.get(
            "pretrain", {}).get("data", "Pretrain_Set")), seed, settings.get("weights", "auto"))
        sources[name] = {"weights": source.weights, "tokenizer": source.tokenizer, "dtype": model_cfg["dtype"]}
        prompt = family(model_cfg["family"]).train_prompt
        for key in keys:
            rule, _, method = key.partition(":")
            log.info("preflight %s: %s (%s weights)", name, key, source.weights)
            if rule == "pretrain_tiny_base":
                if model_cfg["source"] != "tiny":
                    continue
                hp = model_cfg["pretrain"]
                items = data.pretraining(model_cfg, prompt)
                steps[(name, key, None)] = steps_of("nll", {"train": len(items)}, hp, seed)
                m = probe_training(source, "nll", {"train": items}, hp, seed, steps_measured, lora=False)
            elif rule == "finetune_vanilla":
                hp, items = config["finetune"], data.vanilla(prompt)
                steps[(name, key, None)] = steps_of("nll", {"train": len(items)}, hp, seed)
                m = probe_training(source, "nll", {"train": items}, hp, seed, steps_measured)
            elif rule == "finetune_oracle":
                hp = config["oracle"]
                per_ratio = {r: data.oracle(r, prompt) for r in ratios}
                for r, items in per_ratio.items():
                    steps[(name, key, r)] = steps_of("nll", {"train": len(items)}, hp, seed)
                biggest = max(per_ratio, key=lambda r: len(per_ratio[r]))
                m = probe_training(source, "nll", {"train": per_ratio[biggest]}, hp, seed, steps_measured)
            elif rule == "unlearn":
                hp = config["methods"][method]
                per_ratio = {r: data.unlearning(method, r, prompt) for r in ratios}
                for r, streams in per_ratio.items():
                    steps[(name, key, r)] = steps_of(method, {s: len(v) for s, v in streams.items()}, hp, seed)
                m = probe_training(source, method, per_ratio[max(ratios)], hp, seed, steps_measured)
            else:  # evaluate
                wanted = sorted({s for j in jobs if j.model == name and j.rule == "evaluate" for s in j.splits})
                training = ({p.id: p for p in vanilla_set(data.root, facts)}
                            if any(get_task(t).training_rows for t in config["study"]["tasks"]) else None)
                splits = [data.eval_split(s, eval_cfgs[name], training) for s in wanted]
                m = probe_evaluation(source, splits, probe_split_names(splits, ratios), eval_cfgs[name], seed)
            measured[(name, key)] = {"rule": rule, "method": method or None, "block": _block(name, rule, method),
                                     "startup_s": startup_s, **m}
    rows = plan.rule_rows(jobs, measured, steps)
    device = device_description()
    problems = []
    for row in rows:
        rule, method = row["rule"], row["method"]
        hp = _hp(config, model_cfgs[row["model"]], rule, method)
        row["resources"] = plan.effective_resources(config["resources"], row["key"])
        row["problems"] = plan.check(row, row["resources"], hp, eval_cfgs[row["model"]]["batch_size"],
                                     device["memory_gb"])
        problems += row["problems"]
    return {"device": device, "models": sources, "headroom": headroom, "steps_measured": steps_measured,
            "startup_s": startup_s,
            "rules": rows, "problems": problems, "suggested": plan.suggest(rows, headroom),
            "bill": plan.bill(jobs, config["resources"], measured, steps),
            "training_steps": [{"model": m, "key": k, "ratio": r, "steps": n} for (m, k, r), n in steps.items()]}


def _block(model: str, rule: str, method: str) -> str:
    """The config block a training rule's settings live in (named in the fit options)."""
    return {"pretrain_tiny_base": f"models.{model}.pretrain", "finetune_vanilla": "finetune",
            "finetune_oracle": "oracle", "unlearn": f"methods.{method}", "evaluate": "eval"}[rule]


def _hp(config: dict, model_cfg: dict, rule: str, method: str | None) -> dict | None:
    return {"pretrain_tiny_base": model_cfg.get("pretrain"), "finetune_vanilla": config["finetune"],
            "finetune_oracle": config["oracle"], "evaluate": None}.get(rule, config["methods"].get(method or ""))


def format_report(report: dict) -> str:
    """The report as the console and the job log show it."""
    dev = report["device"]
    memory = "GPU GB" if dev["kind"] == "cuda" else "GPU GB (none)"
    lines = [f"Preflight on {dev['name']}" + (f" ({dev['memory_gb']} GB)" if dev["memory_gb"] else ""),
             *(f"  {m}: weights {s['weights']}; tokenizer {s['tokenizer']}; {s['dtype']}"
               for m, s in report["models"].items()),
             f"  {'model':<14} {'rule':<20} {memory:>8} {'host MB':>8} {'load s':>7} {'step/batch s':>12} "
             f"{'tok/s':>9} {'jobs':>5} {'longest':>9} {'limit':>7}"]
    for r in report["rules"]:
        per = r.get("step_s")
        if per is None:
            per = max(b["batch_s"] for b in r["batches"].values()) if r["batches"] else 0.0
        gpu = f"{r['peak_gpu_gb']:.1f}" if r["peak_gpu_gb"] is not None else "-"
        # evaluate's runtime limit is per split (a job of k splits gets k times it): compare per split
        longest, unit = ((r["longest_unit_min"], "/split") if r["rule"] == "evaluate"
                         else (r["longest_job_min"], ""))
        lines.append(f"  {r['model']:<14} {r['key']:<20} {gpu:>8} {r['peak_host_mb']:>8.0f} {r['load_s']:>7.1f} "
                     f"{per:>12.3f} {r['tokens_per_s']:>9.0f} {r['jobs']:>5} {longest:>7.1f} m "
                     f"{r['resources']['runtime']:>5} m{unit}")
    b = report["bill"]
    lines.append(f"  GPU-hours: {b['gpu_hours_measured']:.1f} projected from these measurements, "
                 f"{b['gpu_hours_limits']:.1f} from the config's runtime limits; all jobs, on this device: "
                 f"{b['device_hours_measured']:.2f} h")
    if b["jobs_at_their_limit"]:
        lines.append(f"  not measured, counted at their limits: {', '.join(b['jobs_at_their_limit'])}")
    for p in report["problems"]:
        lines.append(f"  DOES NOT FIT: {p['message']}; options: " + "; ".join(p["options"]))
    if not report["problems"]:
        lines.append("  every measured rule fits its configured resources")
    h = report["headroom"]
    lines.append(f"  suggested resources (runtime x {h['runtime']:g}, memory x {h['memory']:g} of the measured "
                 "figures): results/preflight_resources.yaml")
    return "\n".join(lines)


def suggested_yaml(report: dict) -> str:
    """The suggested ``resources:`` block as a config file to pass with ``--configfile``."""
    import yaml

    dev, h = report["device"], report["headroom"]
    head = (f"# Suggested by the preflight on {dev['name']}: measured runtime x {h['runtime']:g}, memory x "
            f"{h['memory']:g}\n# (runtime: the longest job's, per split for evaluate). Pass it with "
            "--configfile to use it; it changes only resources:.\n")
    return head + yaml.safe_dump(report["suggested"], sort_keys=False)

