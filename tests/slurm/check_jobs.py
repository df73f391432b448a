"""make test-slurm's assertions, from SLURM's accounting (sacct), the Snakemake logs and the jobs' own logs.

The five Snakemake runs of tests/slurm/run.sh, told apart by the job name the executor gives each run:
1. study     the reduced study: every cluster job completed, except the oracle fine-tune's first attempt, which
             ran past its 1-minute limit (TIMEOUT) and was resubmitted with a larger one that it completed in;
2. gpu_form  one evaluation with the other GPU request form;
   preflight the preflight, a GPU job: its report measures every rule of the reduced study;
3. cancel    the vanilla fine-tune cancelled (scancel) after a checkpoint: sacct says "CANCELLED by 0", the run
             resubmitted it with more time, it resumed from its checkpoint, and the summary equals run 1's;
4. preempt   a GA unlearning job preempted on every attempt: three PREEMPTED attempts asking for more each time,
             then the run stopped non-zero with the SLURM state in its log (run.sh checks the exit code).
Throughout: GPU rules were submitted with a GPU request and the CPU rule without; localrules never reached the
scheduler; account/qos/partition as configured; jobs ran offline with their SLURM job id in their logs.

usage: check_jobs.py SACCT_FILE WORKDIR STATE_DIR
"""
import math
import re
import sys
from collections import Counter
from pathlib import Path

GPU_RULES = {"finetune_vanilla", "finetune_oracle", "unlearn", "evaluate", "evaluate_ratio", "evaluate_ratio_free",
             "preflight"}
CPU_RULES = {"pretrain_tiny_base"}
LOCAL_RULES = {"prepare_data", "prepare_utility", "validate_data", "make_split", "judge", "review_llava_bench",
               "aggregate", "tables", "figures"}
# completed jobs per run. The study in tests/slurm/config.yaml: base, vanilla, oracle_10, ga/npo multimodal x
# {forget_10, celebrity, llava_bench}: base and vanilla a job for ratio 10 (forget_10) and one for the two
# ratio-free sets, the others one job per run.
COMPLETED = {
    "study": {"pretrain_tiny_base": 1, "finetune_vanilla": 1, "finetune_oracle": 1, "unlearn": 2, "evaluate": 3,
              "evaluate_ratio": 2, "evaluate_ratio_free": 2},
    "gpu_form": {"evaluate_ratio": 1},
    "preflight": {"preflight": 1},
    "cancel": {"finetune_vanilla": 1, "unlearn": 2, "evaluate": 2, "evaluate_ratio": 1, "evaluate_ratio_free": 1},
    "preempt": {},
}
RUNS = list(COMPLETED)
FORMS = {"gres": re.compile(r"--gres[= ]gpu:1\b"), "gpu": re.compile(r"--gpus[= ]1\b")}
FIELDS = ["job", "name", "comment", "state", "timelimit", "tres", "account", "qos", "partition"]


def minutes(limit: str) -> float:
    """sacct's Timelimit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + s / 60


def mem_mb(tres: str) -> float:
    value, unit = re.search(r"mem=([\d.]+)([MG])", tres).groups()
    return float(value) * (1024 if unit == "G" else 1)


def read_jobs(sacct_file: str) -> list[dict]:
    jobs = []
    for line in Path(sacct_file).read_text().splitlines():
        if not line.strip():
            continue
        row = line.split("|")
        job = dict(zip(FIELDS, row[:len(FIELDS)]), submit_line="|".join(row[len(FIELDS):]))
        match = re.match(r"rule_([a-z_]+?)(_wildcards_.*)?$", job["comment"])
        job["rule"] = match.group(1) if match else job["name"]
        job["form"] = next((f for f, pattern in FORMS.items() if pattern.search(job["submit_line"])), "-")
        jobs.append(job)
    return jobs


def check_submission(job: dict, failures: list) -> None:
    rule, tres, jid = job["rule"], job["tres"], job["job"]
    gpus = re.search(r"gres/gpu=(\d+)", tres)
    if rule in GPU_RULES and not (gpus and int(gpus.group(1)) >= 1):
        failures.append(f"job {jid} ({rule}) is a GPU rule but was allocated no GPU: {tres}")
    if rule in GPU_RULES and job["form"] == "-":
        failures.append(f"job {jid} ({rule}): sbatch line has no GPU request: {job['submit_line']}")
    if rule in CPU_RULES and gpus:
        failures.append(f"job {jid} ({rule}) is a CPU rule but holds a GPU: {tres}")
    if rule in LOCAL_RULES:
        failures.append(f"job {jid}: {rule} is a localrule and must not be submitted")
    if (job["account"], job["qos"], job["partition"]) != ("mmu", "normal", "debug"):
        failures.append(f"job {jid} ({rule}): account/qos/partition {job['account']}/{job['qos']}/"
                        f"{job['partition']}, config says mmu/normal/debug")


def attempts(jobs: list[dict], rule: str) -> list[dict]:
    return [j for j in jobs if j["rule"] == rule]


PREFLIGHT_RULES = {"pretrain_tiny_base", "finetune_vanilla", "finetune_oracle", "unlearn:ga", "unlearn:npo", "evaluate"}


def check_preflight(workdir: Path, failures: list) -> None:
    """The preflight job's report: every rule of the reduced study measured, its log names its SLURM job."""
    import json

    report = json.loads((workdir / "results/preflight.json").read_text())
    keys = {r["key"] for r in report["rules"]}
    measured = all(r["peak_host_mb"] > 0 and r["tokens_per_s"] > 0 and r["longest_job_min"] > 0
                   for r in report["rules"])
    print("preflight rules:", sorted(keys), "measured" if measured else "NOT measured")
    if keys != PREFLIGHT_RULES or not measured:
        failures.append(f"preflight: rules {sorted(keys)} (expected {sorted(PREFLIGHT_RULES)}), measured: {measured}")
    text = (workdir / "logs/preflight.log").read_text()
    if not re.search(r"SLURM job \d+", text):
        failures.append(f"logs/preflight.log: no SLURM job id:\n{text[:400]}")


def check_faults(runs: dict, workdir: Path, state_dir: Path, failures: list) -> None:
    # 1. the oracle fine-tune: TIMEOUT at its 1-minute limit, then completed with a larger limit
    oracle = attempts(runs["study"], "finetune_oracle")
    print("oracle fine-tune attempts:", [(j["job"], j["state"], j["timelimit"]) for j in oracle])
    if not (len(oracle) >= 2 and oracle[0]["state"] == "TIMEOUT" and minutes(oracle[0]["timelimit"]) == 1
            and oracle[-1]["state"] == "COMPLETED" and minutes(oracle[-1]["timelimit"]) > 1
            and all(j["state"] == "TIMEOUT" for j in oracle[:-1])):
        failures.append(f"oracle fine-tune: expected TIMEOUT at 00:01:00, then COMPLETED with a larger limit: {oracle}")
    oracle_log = (workdir / "logs/finetune_oracle/tiny-llava/seed42/oracle_10.log").read_text()
    if "resuming nll from checkpoint" not in oracle_log:
        failures.append("oracle fine-tune: the completed attempt did not resume from a checkpoint:\n"
                        + oracle_log[:600])

    # 3. the vanilla fine-tune: cancelled after a checkpoint, resubmitted with more time, resumed
    vanilla = attempts(runs["cancel"], "finetune_vanilla")
    cancelled = (state_dir / "cancelled.txt").read_text().split() if (state_dir / "cancelled.txt").is_file() else []
    print("vanilla fine-tune attempts:", [(j["job"], j["state"], j["timelimit"]) for j in vanilla])
    if not (len(vanilla) == 2 and vanilla[0]["job"] in cancelled and vanilla[0]["state"].startswith("CANCELLED")
            and vanilla[1]["state"] == "COMPLETED"
            and minutes(vanilla[1]["timelimit"]) > minutes(vanilla[0]["timelimit"])):
        failures.append(f"vanilla fine-tune: expected the scancelled job {cancelled} then a completed retry "
                        f"with a larger limit: {vanilla}")
    log = (state_dir / "finetune_vanilla.resumed.log").read_text()
    resumed = re.search(r"resuming nll from checkpoint \S+ at step (\d+)/(\d+)", log)
    if not resumed or int(resumed.group(1)) <= 1:
        failures.append(f"vanilla fine-tune: the retry did not resume from a checkpoint:\n{log[:800]}")
    else:
        print(f"vanilla fine-tune resumed at step {resumed.group(1)}/{resumed.group(2)}")
    snake_log = (state_dir / "log/snakemake-cancel.log").read_text()
    if f"SLURM job {vanilla[0]['job'] if vanilla else '?'} ended 'CANCELLED by" not in snake_log:
        failures.append("snakemake-cancel.log does not name the cancelled job's sacct state")
    before = (state_dir / "summary.uninterrupted.csv").read_text()
    after = (workdir / "results/summary.csv").read_text()
    if before != after or len(before.splitlines()) < 2:
        failures.append("results/summary.csv after the cancelled-and-resumed vanilla fine-tune differs from the "
                        "uninterrupted run's")
    else:
        print(f"summary.csv after the resumed run equals the uninterrupted one ({len(after.splitlines()) - 1} rows)")

    # 4. the GA unlearning job: preempted on each of its 3 attempts, each asking for more; the run stopped
    ga = attempts(runs["preempt"], "unlearn")
    print("GA unlearning attempts:", [(j["job"], j["state"], j["timelimit"], mem_mb(j["tres"])) for j in ga])
    limits, mems = [minutes(j["timelimit"]) for j in ga], [mem_mb(j["tres"]) for j in ga]
    grown = [1, 1.5, 2]  # profile retries: 2; config.yaml's cluster.retry: x1.5 per retry, capped at x2
    if not (len(ga) == 3 and all(j["state"] == "PREEMPTED" for j in ga)
            and limits == [math.ceil(limits[0] * x) for x in grown] and mems == [mems[0] * x for x in grown]):
        failures.append(f"GA unlearning: expected 3 PREEMPTED attempts asking 1x, 1.5x, 2x the first attempt's "
                        f"time and memory: {ga}")
    snake_log = (state_dir / "log/snakemake-preempt.log").read_text()
    for expected in ("ended 'PREEMPTED'", "SLURM status is: 'CANCELLED'", "Error in rule unlearn"):
        if expected not in snake_log:
            failures.append(f"snakemake-preempt.log: no {expected!r}:\n{snake_log[-1500:]}")


def main(sacct_file: str, workdir: str, state_dir: str) -> int:
    workdir, state_dir = Path(workdir), Path(state_dir)
    jobs = read_jobs(sacct_file)
    names = list(dict.fromkeys(j["name"] for j in jobs if j["name"] != "preemptor"))
    failures = []
    if len(names) != len(RUNS):
        failures.append(f"expected {len(RUNS)} Snakemake runs (job names), sacct shows {len(names)}: {names}")
    runs = {run: [j for j in jobs if j["name"] == name] for run, name in zip(RUNS, names)}
    forms = Counter()
    print(f"{'run':<9} {'job':>5} {'rule':<20} {'state':<16} {'limit':>9} {'request':<8} AllocTRES")
    for run, run_jobs in runs.items():
        for job in run_jobs:
            forms[job["form"]] += 1
            print(f"{run:<9} {job['job']:>5} {job['rule']:<20} {job['state']:<16} {job['timelimit']:>9} "
                  f"{job['form']:<8} {job['tres']}")
            check_submission(job, failures)
        done = Counter(j["rule"] for j in run_jobs if j["state"] == "COMPLETED")
        if dict(done) != COMPLETED[run]:
            failures.append(f"run {run}: completed jobs per rule {dict(done)}, expected {COMPLETED[run]}")
    expected_other = {"study": {"TIMEOUT"}, "gpu_form": set(), "preflight": set(), "cancel": {"CANCELLED"}, "preempt": {"PREEMPTED"}}
    for run, run_jobs in runs.items():
        other = {j["state"].split()[0] for j in run_jobs if j["state"] != "COMPLETED"}
        if not other <= expected_other[run]:
            failures.append(f"run {run}: unexpected job states {other - expected_other[run]}")
    if not (forms["gres"] and forms["gpu"]):
        failures.append(f"GPU request forms seen {dict(forms)}: expected both --gres=gpu:1 and --gpus=1")
    if len(runs) == len(RUNS):
        check_faults(runs, workdir, state_dir, failures)
    check_preflight(workdir, failures)
    logs = list(Path(workdir, "logs", "evaluate").rglob("*.log")) + list(Path(workdir, "logs", "unlearn").glob("*.log"))
    for log in logs:
        text = log.read_text()
        if not re.search(r"SLURM job \d+", text) or "hub offline" not in text:
            failures.append(f"{log}: no SLURM job id / not offline:\n{text[:400]}")
    print(f"\n{len(jobs)} cluster jobs in {len(runs)} runs; GPU request forms {dict(forms)}; {len(logs)} job logs "
          "checked")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
