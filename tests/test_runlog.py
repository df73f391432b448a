"""mmunlearn.runlog on the logs and DAG of a real Snakemake run (the format bench/demo_time.py reads)."""

import subprocess
import sys
import textwrap

import pytest

from mmunlearn.runlog import critical_path, job_times, parse_dag, rule_totals

# Two branches after `first`: train seed 1 (5 s) -> evaluate seed 1 (0 s), and train seed 2 (0 s) -> evaluate
# seed 2 (2 s); `last` joins them. The critical path is first -> train 1 -> evaluate 1 -> last. Both evaluate
# nodes carry the same --dag label ("evaluate", split: a): the seed is their dependency's, so only the DAG's
# edges tell them apart. Evaluate seed 2 starts first, so matching on the label alone pairs both with it.
SNAKEFILE = textwrap.dedent("""
    rule all:
        input: "last.txt"

    rule first:
        output: "first.txt"
        shell: "sleep 1; touch {output}"

    rule train:
        input: "first.txt"
        output: "train_{seed}.txt"
        params: seconds=lambda w: {"1": 5, "2": 0}[w.seed]
        shell: "sleep {params.seconds}; touch {output}"

    rule evaluate:
        input: "train_{seed}.txt"
        output: "eval_{seed}_{split}.txt"
        params: seconds=lambda w: {"1": 0, "2": 2}[w.seed]
        shell: "sleep {params.seconds}; touch {output}"

    rule last:
        input: "eval_1_a.txt", "eval_2_a.txt"
        output: "last.txt"
        shell: "sleep 1; touch {output}"
""")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("runlog")
    (workdir / "Snakefile").write_text(SNAKEFILE)
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "2"]
    subprocess.run(snakemake, cwd=workdir, check=True, capture_output=True, text=True)
    (log,) = (workdir / ".snakemake" / "log").glob("*.snakemake.log")
    log_text = log.read_text()
    dot = subprocess.run(snakemake + ["--dag", "--forceall"], cwd=workdir, check=True, capture_output=True,
                         text=True).stdout
    return log_text, dot


def test_job_times_reads_every_finished_job_of_a_real_log(finished_run):
    jobs = job_times(finished_run[0])
    by_name = {(j["rule"], j["wildcards"]): j for j in jobs.values()}
    assert set(by_name) == {("first", ""), ("train", "seed=1"), ("train", "seed=2"), ("evaluate", "seed=1, split=a"),
                            ("evaluate", "seed=2, split=a"), ("last", "")}
    seconds = {k: j["end"] - j["start"] for k, j in by_name.items()}
    # one-second stamps: a job of n seconds reads n or n + 1
    assert 5 <= seconds[("train", "seed=1")] <= 6
    assert seconds[("train", "seed=2")] <= 1
    assert by_name[("train", "seed=1")]["start"] >= by_name[("first", "")]["end"]


def test_critical_path_follows_the_dag_through_the_slow_branch(finished_run):
    log, dot = finished_run
    nodes, edges = parse_dag(dot)
    assert sorted(nodes.values()).count(("evaluate", (("split", "a"),))) == 2, "labels that only the edges tell apart"
    path = critical_path(job_times(log), nodes, edges)
    assert [(step["rule"], step["wildcards"]) for step in path] == [
        ("first", ""), ("train", "seed=1"), ("evaluate", "seed=1, split=a"), ("last", "")]
    assert 7 <= sum(step["seconds"] for step in path) <= 10


def test_rule_totals_counts_jobs_and_seconds_per_rule(finished_run):
    totals = rule_totals(job_times(finished_run[0]))
    assert {rule: t["jobs"] for rule, t in totals.items()} == {"first": 1, "train": 2, "evaluate": 2, "last": 1}
    assert next(iter(totals)) == "train", "the rule with the most job-seconds comes first"
    assert 5 <= totals["train"]["longest_s"] <= 6


def test_a_job_that_never_finished_is_left_out():
    log = textwrap.dedent("""\
        [Thu Dec  3 04:28:09 2026]
        localrule prepare:
            output: a.txt
            jobid: 1
            reason: Missing output files: a.txt
            resources: tmpdir=/tmp
        [Thu Dec  3 04:28:09 2026]
        rule train:
            output: b.txt
            jobid: 2
            wildcards: seed=42
        [Thu Dec  3 04:28:11 2026]
        Finished jobid: 1 (Rule: prepare)
        """)
    jobs = job_times(log)
    assert list(jobs) == [1] and jobs[1]["end"] - jobs[1]["start"] == 2


def test_a_cycle_is_an_error():
    with pytest.raises(ValueError, match="cycle"):
        critical_path({}, {"0": ("a", ()), "1": ("b", ())}, [("0", "1"), ("1", "0")])
