"""The aggregation job at the paper study's size: time and peak memory of ``write_summary`` (summary.csv with
every interval, the comparisons with the oracle, differences.csv) over per-item records of paper shape.

The aggregation is a local rule: it runs on the submitting node and reads every evaluation's per-item records.
This benchmark writes synthetic records in the layout and shape the evaluation writes (prompt, gold, output,
options and their log-likelihoods, scores, attack scores; ~55 records per person and file, as on the demo), for
one model of the paper study: base and vanilla on every ratio's forget / test / retain split and the
celebrities, and per ratio (5, 10, 15 %) the oracle and 4 methods x 2 variants, on the 500 fictitious people
(forget = ratio %) and 153 celebrities. ``--scale`` shrinks the people for a quick run. ``--holdout`` adds the
membership-inference holdout (its AUC and PrivLeak intervals).

Prints JSON, merges it into results/bench.json ("aggregate_paper_s", "aggregate_paper_peak_mb", raw figures
under "aggregate"), and prints the headline as its last line.

    python bench/aggregate_scale.py [--scale 1.0] [--holdout 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mmunlearn.io import write_json_atomic  # noqa: E402
from mmunlearn.report.aggregate import write_summary  # noqa: E402

METHODS = ("ga", "grad_diff", "kl_min", "npo")
RATIOS = (5, 10, 15)
# records per person and input modality, as the demo's evaluation writes them
PER_PERSON = {"classification": 5, "generation": 2, "cloze": 2, "likelihood": 2, "likelihood_qa": 15}


def _records(people: list[str], run: str, split: str, rng: random.Random, qa: bool) -> list[dict]:
    out = []
    for person in people:
        for modality in ("image_text", "text"):
            for task, count in PER_PERSON.items():
                if task == "likelihood_qa" and not qa:
                    continue
                for k in range(count):
                    rec = {"model": "llava-1.5-7b", "method": run, "split": split, "task": task,
                           "input_modality": modality, "prompt_id": f"{person}/{modality}/{task}/{k}",
                           "profile_id": person, "question": "What is the occupation of this person? " * 2,
                           "gold": "The person works as a marine biologist.", "raw_output": " B. a marine biologist"}
                    if task == "classification":
                        nll = {x: rng.uniform(0.5, 5) for x in "ABCD"}
                        rec.update(options={x: f"option {x} text" for x in "ABCD"}, loglik={x: -v for x, v in nll.items()},
                                   option_nll=nll, parsed="B", truth_ratio_raw=rng.uniform(0.1, 3),
                                   score={"accuracy": float(rng.random() < 0.5),
                                          "accuracy_loglik": float(rng.random() < 0.6),
                                          "option_prob": rng.random(), "truth_ratio": rng.random()})
                    elif task == "generation":
                        rec["score"] = {m: rng.random() for m in ("rouge1", "rouge2", "rougeL", "bleu")}
                    elif task == "cloze":
                        rec["score"] = {"accuracy": float(rng.random() < 0.3)}
                    else:
                        nll = rng.uniform(0.2, 6)
                        rec.update(answer_tokens=8, score={"answer_nll": nll, "exact_memorisation": rng.random(),
                                                           "extraction_strength": rng.random()},
                                   mia={"loss": nll, "zlib": nll / 40, "min_k": nll * 1.2, "min_k_pp": nll - 1})
                    out.append(rec)
    return out


def _metrics(records: list[dict], model: str, run: str, split: str) -> dict:
    from mmunlearn.eval.identity import run_identity

    sums: dict = {}
    for r in records:
        for metric, x in r["score"].items():
            key = (r["input_modality"], r["task"], metric)
            total, n = sums.get(key, (0.0, 0))
            sums[key] = (total + x, n + 1)
    return {**run_identity(model, run, split, 42),
            "results": [{"input_modality": mod, "task": task, "metric": metric, "value": total / n, "n": n}
                        for (mod, task, metric), (total, n) in sorted(sums.items())]}


def build(root: Path, scale: float, holdout: int, seed: int = 0) -> tuple[list[Path], list[Path], list[Path]]:
    rng = random.Random(seed)
    fictitious = [str(i) for i in range(max(8, round(500 * scale)))]
    celebrities = [f"c{i}" for i in range(max(4, round(153 * scale)))]
    held = fictitious[:round(len(fictitious) * holdout / 100)]
    people = fictitious[len(held):]
    model = "llava-1.5-7b"
    evals = []  # (run, split file name, people, has QA pairs)
    for run in ("base", "vanilla"):
        for r in RATIOS:
            n = max(1, round(len(people) * r / 100))
            evals += [(run, f"forget_{r}", people[:n], True), (run, f"test_{r}", people[:n], False),
                      (run, f"retain_{r}", people[n:], True)]
        evals.append((run, "celebrity", celebrities, False))
        if held:
            evals.append((run, "holdout", held, True))
    for r in RATIOS:
        n = max(1, round(len(people) * r / 100))
        for run in [f"oracle_{r}", *(f"{m}_{v}_{r}" for m in METHODS for v in ("multimodal", "text"))]:
            evals += [(run, f"forget_{r}", people[:n], True), (run, f"test_{r}", people[:n], False),
                      (run, f"retain_{r}", people[n:], True), (run, "celebrity", celebrities, False)]
            if held:
                evals.append((run, "holdout", held, True))
    metrics, samples, judged = [], [], []
    for run, split, who, qa in evals:
        d = root / "results/eval" / model / run
        d.mkdir(parents=True, exist_ok=True)
        recs = _records(who, run, split, rng, qa)
        (d / f"{split}.samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
        (d / f"{split}.json").write_text(json.dumps(_metrics(recs, model, run, split)))
        (d / f"{split}.factuality.jsonl").write_text("")
        metrics.append(d / f"{split}.json")
        samples.append(d / f"{split}.samples.jsonl")
        judged.append(d / f"{split}.factuality.jsonl")
    return metrics, samples, judged


def measure(scale: float, holdout: int, keep: str | None) -> dict:
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="mmu-agg-"))
    try:
        t0 = time.perf_counter()
        metrics, samples, judged = build(root, scale, holdout)
        built = time.perf_counter() - t0
        records = sum(1 for f in samples for _ in open(f))
        size = sum(f.stat().st_size for f in samples)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        rows = write_summary(metrics, root / "results/summary.csv", root / "results/summary.provenance.json",
                             {"seed": 42, "study": {"holdout_ratio": holdout}}, samples, judged,
                             root / "results/differences.csv")
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        differences = sum(1 for _ in open(root / "results/differences.csv")) - 1
        return {"scale": scale, "holdout_ratio": holdout, "evaluation_files": len(samples), "records": records,
                "records_mb": round(size / 2**20), "summary_rows": rows, "differences": differences,
                "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024),
                "peak_rss_before_mb": round(rss0 / 1024), "build_seconds": round(built, 1)}
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="share of the paper's people (1.0: 500 + 153)")
    ap.add_argument("--holdout", type=int, default=0, help="study.holdout_ratio (percent of the fictitious people)")
    ap.add_argument("--keep", help="write the synthetic records here and keep them")
    ap.add_argument("--out", default=str(ROOT / "results/bench.json"))
    args = ap.parse_args()
    result = measure(args.scale, args.holdout, args.keep)
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    head = {"aggregate_paper_s": result["seconds"], "aggregate_paper_peak_mb": result["peak_rss_mb"]} \
        if args.scale == 1.0 else {}
    write_json_atomic(out, {**previous, **head, "aggregate": result})
    print(f"aggregate {result['seconds']} s, peak {result['peak_rss_mb']} MB for {result['records']} records "
          f"({result['records_mb']} MB) in {result['evaluation_files']} evaluation files")
