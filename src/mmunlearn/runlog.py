"""Where a Snakemake run's time went: every job's start and end from the run log Snakemake writes under
``.snakemake/log/``, totals per rule, and the critical path — the chain of jobs along the DAG's edges whose
durations add up to the most, i.e. the time the run would take with unlimited cores. ``bench/demo_time.py``
reports these for the demo (README "Demo time").

The log's timestamps have a resolution of one second; a job's duration is its "Finished jobid" stamp minus the
stamp above its rule header."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
RULE_HEADER = re.compile(r"^(?:local)?rule (\w+):$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
DOT_NODE = re.compile(r'^\s*(\d+)\[label = "([^"]*)"', re.MULTILINE)
DOT_EDGE = re.compile(r"^\s*(\d+) -> (\d+)", re.MULTILINE)


def job_times(log_text: str) -> dict[int, dict]:
    """{jobid: {rule, wildcards, start, end}} of the jobs that finished (seconds since the epoch). The target
    rule ``all`` does no work and is left out; so is a job that started and never finished."""
    jobs, stamp, current = {}, None, None
    for line in log_text.splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
        elif m := RULE_HEADER.match(line):
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


def parse_dag(dot_text: str) -> tuple[dict[str, tuple], list[tuple[str, str]]]:
    """Nodes {id: (rule, sorted wildcard pairs)} and edges [(from, to)] of ``snakemake --dag`` output, an edge
    running from a job to one that consumes its output."""
    nodes = {}
    for node, label in DOT_NODE.findall(dot_text):
        rule, *pairs = label.split("\\n")
        nodes[node] = (rule, tuple(sorted((k.strip(), v.strip()) for k, v in (p.split(":", 1) for p in pairs))))
    return nodes, DOT_EDGE.findall(dot_text)


def _wildcard_pairs(wildcards: str) -> set[tuple[str, str]]:
    return {(k, v.strip()) for k, v in re.findall(r"(\w+)=([^,]+)", wildcards)}


def critical_path(jobs: dict[int, dict], nodes: dict, edges: list) -> list[dict]:
    """The chain of finished jobs, along the DAG's edges, with the largest sum of durations, first job first:
    [{rule, wildcards, seconds}]. A node without a finished job (nothing to do) counts 0 s."""
    preds, succs = defaultdict(list), defaultdict(list)
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    unmatched = [(j["rule"], _wildcard_pairs(j["wildcards"]), j) for j in jobs.values()]
    pairs_of: dict[str, set] = {}  # a node's wildcards: its job's, or as far as the DAG tells them
    best: dict[str, tuple[float, list]] = {}  # the longest chain ending at a node
    # nodes in topological order (Kahn), so a node's dependencies are matched to their jobs first
    waiting = {n: len(preds[n]) for n in nodes}
    ready = [n for n, k in waiting.items() if k == 0]
    while ready:
        n = ready.pop()
        rule, label = nodes[n][0], set(nodes[n][1])
        # --dag labels a job with only the wildcards that none of its direct dependencies has (Snakemake's
        # DAG.new_wildcards): a job is this node's if it carries the label's and the rest are its dependencies'
        inherited = set().union(*(pairs_of[p] for p in preds[n]))
        match = next((i for i, (r, pairs, _) in enumerate(unmatched)
                      if r == rule and label <= pairs <= label | inherited), None)
        if match is None:
            job, pairs_of[n] = None, label | inherited
        else:
            _, pairs_of[n], job = unmatched.pop(match)
        before = max((best[p] for p in preds[n]), key=lambda t: t[0], default=(0.0, []))
        best[n] = (before[0] + ((job["end"] - job["start"]) if job else 0.0), before[1] + ([job] if job else []))
        for s in succs[n]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.append(s)
    if len(best) < len(nodes):
        raise ValueError("the DAG has a cycle or an edge to an unknown node")
    _, chain = max(best.values(), key=lambda t: t[0], default=(0.0, []))
    return [{"rule": j["rule"], "wildcards": j["wildcards"], "seconds": round(j["end"] - j["start"])} for j in chain]


def rule_totals(jobs: dict[int, dict]) -> dict[str, dict]:
    """{rule: {jobs, job_seconds, longest_s}}, the rule with the most job-seconds first (seconds rounded)."""
    totals = defaultdict(lambda: {"jobs": 0, "job_seconds": 0.0, "longest_s": 0.0})
    for j in jobs.values():
        t, seconds = totals[j["rule"]], j["end"] - j["start"]
        t["jobs"] += 1
        t["job_seconds"] += seconds
        t["longest_s"] = max(t["longest_s"], seconds)
    return {rule: {**t, "job_seconds": round(t["job_seconds"]), "longest_s": round(t["longest_s"])}
            for rule, t in sorted(totals.items(), key=lambda kv: -kv[1]["job_seconds"])}
