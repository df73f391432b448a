"""Judge throughput end to end: N judge jobs through real Snakemake against the loopback judge server.

Each job is the workflow's own ``judge`` rule and script (a fresh Python process, as in a run) on a fabricated
``samples.jsonl`` of ``--items`` generated answers; the server (tests/judge_server.py) answers every request
after ``--latency`` seconds. Jobs run one at a time (``--cores 1``) so that each job's time can be told apart:

  seconds_per_job          (run wall - Snakemake's own start-up, from a second run with nothing to do) / jobs
  request_seconds_per_job  first request received to last reply sent, per job, averaged (server clock)
  startup_share            1 - request_seconds_per_job / seconds_per_job: process start, imports, bookkeeping
  requests_per_s           requests / run wall, end to end (and over the jobs alone)

Prints JSON, merges it into results/bench.json ("judge_requests_per_s", raw figures under "judge") and prints
the headline as its last line. ``--project`` measures another checkout of the project (its workflow and its
``src``), e.g. an older commit unpacked with ``git archive``, to compare before and after a change.

    python bench/judge_speed.py [--jobs 20] [--items 16] [--latency 0.05] [--project DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from conftest import TOOL_ENV, WORKFLOW_FILES  # noqa: E402
from judge_server import JudgeServer  # noqa: E402
from mmunlearn.io import write_json_atomic  # noqa: E402

KEY_ENV, KEY = "MMU_BENCH_JUDGE_KEY", "sk-bench-0000"


def fabricate(workdir: Path, jobs: int, items: int) -> list[str]:
    """One evaluation's samples.jsonl per job (model wildcard ``m<i>``); returns the judge targets."""
    targets = []
    for i in range(jobs):
        samples = workdir / f"results/eval/m{i:03d}/vanilla/forget_10.samples.jsonl"
        samples.parent.mkdir(parents=True, exist_ok=True)
        with samples.open("w") as f:
            for k in range(items):
                modality = ("image_text", "text")[k % 2]
                f.write(json.dumps({"prompt_id": f"m{i}-p{k}/{modality}/0", "profile_id": f"m{i}-p{k}",
                                    "task": "generation", "input_modality": modality,
                                    "question": f"What does person {k} do?", "gold": f"Person {k} works as a baker.",
                                    "parsed": "A baker." if k % 3 else "Pilot."}) + "\n")
        targets.append(str(samples.relative_to(workdir)).replace(".samples.jsonl", ".factuality.json"))
    return targets


def run(cmd: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return time.perf_counter() - t0


def measure(project: Path, jobs: int, items: int, latency: float, cores: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, JudgeServer(KEY) as server:
        workdir = Path(tmp)
        for name in WORKFLOW_FILES:
            (shutil.copytree if (project / name).is_dir() else shutil.copy)(project / name, workdir / name)
        targets = fabricate(workdir, jobs, items)
        server.latency_s = latency
        (workdir / "judge.yaml").write_text(f"judge:\n  base_url: {server.url}\n  api_key_env: {KEY_ENV}\n")
        # the project's own package, not the one installed (editable) for this checkout
        env = {**os.environ, **TOOL_ENV, KEY_ENV: KEY, "PYTHONPATH": str(project / "src")}
        # only the judge rule: the fabricated samples stand for evaluations that are not rebuilt
        cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "judge.yaml", "--cores",
               str(cores), "--allowed-rules", "judge", "--", *targets]
        wall = run(cmd, workdir, env)
        overhead = run(cmd, workdir, env)  # nothing to do: Snakemake's start-up and DAG alone
        statuses = {json.loads((workdir / t).read_text())["status"] for t in targets}
        assert statuses == {"scored"}, statuses
    spans: dict[str, list[float]] = {}
    for r in server.requests:
        job = re.search(r"^Image ID: (m\d+)-", r["body"]["messages"][-1]["content"], re.MULTILINE).group(1)
        spans.setdefault(job, []).extend([r["received"], r["replied"]])
    requests = len(server.requests)
    assert requests == jobs * items and len(spans) == jobs, (requests, len(spans))
    per_job = (wall - overhead) * cores / jobs
    request_s = sum(max(s) - min(s) for s in spans.values()) / jobs
    return {"project": str(project), "jobs": jobs, "items_per_job": items, "latency_s": latency, "cores": cores,
            "wall_s": round(wall, 2), "snakemake_startup_s": round(overhead, 2),
            "seconds_per_job": round(per_job, 3), "request_seconds_per_job": round(request_s, 3),
            "startup_share": round(1 - request_s / per_job, 3), "requests": requests,
            "requests_per_s": round(requests / wall, 2),
            "requests_per_s_jobs_only": round(requests / (wall - overhead), 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--items", type=int, default=16, help="generated answers per job (both input modalities)")
    ap.add_argument("--latency", type=float, default=0.05, help="the server's seconds per reply")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--project", default=str(ROOT), help="the checkout to measure (default: this one)")
    ap.add_argument("--out", default=str(ROOT / "results/bench.json"))
    args = ap.parse_args()
    result = measure(Path(args.project).resolve(), args.jobs, args.items, args.latency, args.cores)
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    write_json_atomic(out, {**previous, "judge_requests_per_s": result["requests_per_s"], "judge": result})
    print(f"judge_requests_per_s {result['requests_per_s']} ({result['seconds_per_job']} s per judge job, "
          f"{result['startup_share']:.0%} of it start-up)")


if __name__ == "__main__":
    main()
