"""The demo's wall time and where it goes: every job's time, per rule, and the critical path.

Runs the whole demo DAG (``snakemake --profile profiles/demo``) from nothing in a fresh copy of the project (as
committed plus working-tree changes) with this Python's environment, then reads Snakemake's run log (each job's
start and "Finished jobid" lines) and the DAG (``--dag``) with ``mmunlearn.runlog``. The critical path is the
chain of jobs, following the DAG's edges, whose durations add up to the most: the time the run would take with
unlimited cores. The gap between it and the wall time is what two cores cost. ``--workdir`` analyses a finished
run instead.

Prints JSON, merges it into results/bench.json ("demo_wall_s", raw figures under "demo") and prints the headline
as its last line.

    python bench/demo_time.py [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from conftest import TOOL_ENV, copy_project, path_without_slurm_probe  # noqa: E402
from mmunlearn.io import write_json_atomic  # noqa: E402
from mmunlearn.runlog import critical_path, job_times, parse_dag, rule_totals  # noqa: E402

# as `make demo` does: the SLURM plugin's probe at Snakemake's start fails at once, not after 9 s
ENV = {**os.environ, **TOOL_ENV, "PATH": path_without_slurm_probe(TOOL_ENV["PATH"])}


def dag(workdir: Path) -> tuple[dict, list]:
    """The demo DAG from ``snakemake --dag --forceall``."""
    dot = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/demo", "--dag", "--forceall"],
                         cwd=workdir, capture_output=True, text=True, check=True, env=ENV).stdout
    return parse_dag(dot)


def analyse(workdir: Path) -> dict:
    # the run that did the work (a later invocation with nothing to do finishes no job)
    log = max((workdir / ".snakemake/log").glob("*.snakemake.log"), key=lambda p: p.read_text().count("Finished jobid"))
    jobs = job_times(log.read_text())
    path = critical_path(jobs, *dag(workdir))
    return {"jobs": len(jobs), "span_s": round(max(j["end"] for j in jobs.values()) - min(j["start"] for j in jobs.values())),
            "critical_path_s": sum(step["seconds"] for step in path), "critical_path": path,
            "per_rule": rule_totals(jobs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, help="analyse this finished demo run instead of running one")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy the demo ran in")
    ap.add_argument("--out", default=str(ROOT / "results/bench.json"))
    args = ap.parse_args()
    result = {}
    if args.workdir:
        workdir = args.workdir
    else:
        workdir = Path(tempfile.mkdtemp(prefix="mmunlearn-demo-"))
        copy_project(workdir)
        subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/demo"], cwd=workdir, check=True,
                       env=ENV, capture_output=True, text=True)
        result["demo_wall_s"] = round(time.perf_counter() - t0)
    result.update(analyse(workdir))
    if not args.workdir and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    headline = result.get("demo_wall_s", result["span_s"])
    write_json_atomic(out, {**previous, "demo_wall_s": headline, "demo": result})
    print(f"demo_wall_s {headline} (critical path {result['critical_path_s']} s over {len(result['critical_path'])} jobs)")


if __name__ == "__main__":
    main()
