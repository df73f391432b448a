"""The demo's wall time and where it goes: every job's time, per rule, and the critical path.

Runs the whole demo DAG (``snakemake --profile profiles/demo``) from nothing in a fresh copy of the project (as
committed plus working-tree changes) with this Python's environment, then reads Snakemake's run log (each job's
start and "Finished jobid" lines) and the DAG (``--dag``). The critical path is the chain of jobs, following
the DAG's edges, whose durations add up to the most: the time the run would take with unlimited cores. The
gap between it and the wall time is what two cores cost. ``--workdir`` analyses a finished run instead.

Prints JSON, merges it into results/bench.json ("demo_wall_s", raw figures under "demo") and prints the headline
as its last line.

    python bench/demo_time.py [--workdir DIR] [--keep]
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
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from conftest import TOOL_ENV, copy_project  # noqa: E402
from mmunlearn.io import write_json_atomic  # noqa: E402

ENV = {**os.environ, **TOOL_ENV}
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def job_times(log_text: str) -> dict[int, dict]:
    """{jobid: {rule, wildcards, start, end}} from a Snakemake run log (times in seconds since the epoch)."""
    jobs, stamp, current = {}, None, None
    for line in log_text.splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
        elif m := START.match(line):
            current = {"rule": m.group(1), "wildcards": "", "start": stamp}
        elif current and (m := WILDCARDS.match(line)):
            current["wildcards"] = m.group(1)
        elif current and (m := JOBID.match(line)):
            jobs[int(m.group(1))] = current
        elif m := FINISHED.match(line):
            current = None
            if int(m.group(1)) in jobs:
                jobs[int(m.group(1))]["end"] = stamp
    return {j: v for j, v in jobs.items() if "end" in v and v["rule"] != "all"}


def _key(rule: str, wildcards: str) -> tuple:
    pairs = re.findall(r"(\w+)=([^,]+)", wildcards)
    return rule, tuple(sorted((k, v.strip()) for k, v in pairs))


def dag_edges(workdir: Path) -> tuple[dict[str, tuple], list[tuple[str, str]]]:
    """The demo DAG from ``snakemake --dag --forceall``: node -> (rule, wildcards), and edges (from, to)."""
    dot = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/demo", "--dag", "--forceall"],
                         cwd=workdir, capture_output=True, text=True, check=True, env=ENV).stdout
    nodes = {}
    for node, label in re.findall(r'^\s*(\d+)\[label = "([^"]*)"', dot, re.MULTILINE):
        rule, *pairs = label.split("\\n")
        nodes[node] = (rule, tuple(sorted((k.strip(), v.strip()) for k, v in (p.split(":", 1) for p in pairs))))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", dot, re.MULTILINE)
    return nodes, edges


def critical_path(jobs: dict[int, dict], nodes: dict, edges: list) -> list[dict]:
    """The chain of executed jobs, along DAG edges, with the largest sum of durations."""
    # --dag leaves out a wildcard whose value every job of the DAG shares: a node matches the job whose
    # wildcards include the node's
    keyed = [(_key(j["rule"], j["wildcards"]), j) for j in jobs.values()]
    node_job = {n: next((j for (rule, pairs), j in keyed if rule == node_rule and set(node_pairs) <= set(pairs)),
                        None) for n, (node_rule, node_pairs) in nodes.items()}
    preds = defaultdict(list)
    for a, b in edges:
        preds[b].append(a)
    best: dict[str, tuple[float, list]] = {}

    def longest(n: str) -> tuple[float, list]:
        if n not in best:
            job = node_job.get(n)
            own = (job["end"] - job["start"]) if job else 0.0
            before = max((longest(p) for p in preds[n]), key=lambda t: t[0], default=(0.0, []))
            best[n] = (before[0] + own, before[1] + ([job] if job else []))
        return best[n]

    sys.setrecursionlimit(10_000)
    _, chain = max((longest(n) for n in nodes), key=lambda t: t[0])
    return [{"rule": j["rule"], "wildcards": j["wildcards"], "seconds": round(j["end"] - j["start"])} for j in chain]


def analyse(workdir: Path) -> dict:
    # the run that did the work (a later invocation with nothing to do finishes no job)
    log = max((workdir / ".snakemake/log").glob("*.snakemake.log"), key=lambda p: p.read_text().count("Finished jobid"))
    jobs = job_times(log.read_text())
    per_rule = defaultdict(lambda: {"jobs": 0, "job_seconds": 0.0, "longest_s": 0.0})
    for j in jobs.values():
        r, d = per_rule[j["rule"]], j["end"] - j["start"]
        r["jobs"] += 1
        r["job_seconds"] += d
        r["longest_s"] = max(r["longest_s"], d)
    path = critical_path(jobs, *dag_edges(workdir))
    return {"jobs": len(jobs), "span_s": round(max(j["end"] for j in jobs.values()) - min(j["start"] for j in jobs.values())),
            "critical_path_s": sum(step["seconds"] for step in path), "critical_path": path,
            "per_rule": {k: {**v, "job_seconds": round(v["job_seconds"]), "longest_s": round(v["longest_s"])}
                         for k, v in sorted(per_rule.items(), key=lambda kv: -kv[1]["job_seconds"])}}


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
