"""make test-slurm's assertions, from SLURM's accounting (sacct) and the jobs' own logs: every cluster job
of the reduced study completed; the GPU rules were submitted with a GPU request and the CPU rule without;
localrules never reached the scheduler; jobs ran offline with their SLURM job id in their logs.

usage: check_jobs.py SACCT_FILE WORKDIR
"""
import re
import sys
from collections import Counter
from pathlib import Path

GPU_RULES = {"finetune_vanilla", "finetune_oracle", "unlearn", "evaluate", "evaluate_split"}
CPU_RULES = {"pretrain_tiny_base"}
LOCAL_RULES = {"prepare_data", "validate_data", "make_split", "judge", "aggregate", "tables", "figures"}
# the study in tests/slurm/config.yaml: base, vanilla, oracle_10, ga/npo multimodal x {forget_10, celebrity}:
# base and vanilla a job per split (then one resubmitted with the other GPU request form), the others one per run
EXPECTED = {"pretrain_tiny_base": 1, "finetune_vanilla": 1, "finetune_oracle": 1, "unlearn": 2, "evaluate": 3,
            "evaluate_split": 5}
FORMS = {"gres": re.compile(r"--gres[= ]gpu:1\b"), "gpu": re.compile(r"--gpus[= ]1\b")}


def main(sacct_file: str, workdir: str) -> int:
    rows = [line.split("|") for line in Path(sacct_file).read_text().splitlines() if line.strip()]
    failures, counts, forms = [], Counter(), Counter()
    print(f"{'job':>6} {'rule':<20} {'state':<10} {'request':<8} AllocTRES")
    for row in rows:
        job_id, comment, state, tres, account, qos, partition = row[:7]
        submit_line = "|".join(row[7:])
        match = re.match(r"rule_([a-z_]+?)(_wildcards_.*)?$", comment)
        rule = match.group(1) if match else comment
        counts[rule] += 1
        gpus = re.search(r"gres/gpu=(\d+)", tres)
        form = next((name for name, pattern in FORMS.items() if pattern.search(submit_line)), "-")
        forms[form] += 1
        print(f"{job_id:>6} {rule:<20} {state:<10} {form:<8} {tres}   [{comment}]")
        if state != "COMPLETED":
            failures.append(f"job {job_id} ({rule}) ended {state}")
        if rule in GPU_RULES and not (gpus and int(gpus.group(1)) >= 1):
            failures.append(f"job {job_id} ({rule}) is a GPU rule but was allocated no GPU: {tres}")
        if rule in GPU_RULES and form == "-":
            failures.append(f"job {job_id} ({rule}): sbatch line has no GPU request: {submit_line}")
        if rule in CPU_RULES and gpus:
            failures.append(f"job {job_id} ({rule}) is a CPU rule but holds a GPU: {tres}")
        if rule in LOCAL_RULES:
            failures.append(f"job {job_id}: {rule} is a localrule and must not be submitted")
        if (account, qos, partition) != ("mmu", "normal", "debug"):
            failures.append(f"job {job_id} ({rule}): account/qos/partition {account}/{qos}/{partition}, "
                            "config says mmu/normal/debug")
    if not (forms["gres"] and forms["gpu"]):
        failures.append(f"GPU request forms seen {dict(forms)}: expected both --gres=gpu:1 and --gpus=1")
    if dict(counts) != EXPECTED:
        failures.append(f"jobs per rule {dict(counts)}, expected {EXPECTED}")
    logs = list(Path(workdir, "logs", "evaluate").rglob("*.log")) + list(Path(workdir, "logs", "unlearn").glob("*.log"))
    for log in logs:
        text = log.read_text()
        if not re.search(r"SLURM job \d+", text) or "hub offline" not in text:
            failures.append(f"{log}: no SLURM job id / not offline:\n{text[:400]}")
    summary = Path(workdir, "results", "summary.csv")
    if not summary.is_file() or len(summary.read_text().splitlines()) < 2:
        failures.append("results/summary.csv missing or empty")
    print(f"\n{sum(counts.values())} cluster jobs: {dict(counts)}; GPU request forms {dict(forms)}; "
          f"{len(logs)} job logs checked")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
