"""What every workflow script does first: log to its Snakemake log (and stderr), use exactly the job's
``threads`` for torch, so parallel jobs do not oversubscribe the cores, and, for a training stage configured
with ``processes: N > 1``, run as N data-parallel processes. Importing this module loads nothing heavy."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path


def relaunch(processes: int) -> None:
    """Replace this job's process by ``processes`` copies of its script under torchrun (one per GPU; gloo on
    CPU). Snakemake's script file carries the job's parameters, so every copy is the same job; the trainer
    shards batches over them and rank 0 writes the outputs. Nothing happens for 1 process or inside torchrun."""
    if processes <= 1 or "WORLD_SIZE" in os.environ:
        return
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc_per_node={processes}", *sys.argv])


def setup(smk, processes: int = 1) -> logging.Logger:
    relaunch(processes)
    rank = int(os.environ.get("RANK", "0"))
    handlers = [logging.StreamHandler(sys.stderr)]
    if smk.log and rank == 0:  # one writer: the other ranks log to stderr only
        handlers.append(logging.FileHandler(smk.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True)
    # the job's threads are shared by its processes (torchrun: LOCAL_WORLD_SIZE of them on this node)
    threads = max(1, int(smk.threads) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    # The job's threads for torch without importing it (2+ s a light job such as the judge never needs): torch
    # sizes its thread pool from OMP_NUM_THREADS when it starts, which covers an import after this line; a
    # script that has already imported torch (its modules do so at the top) is told directly.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    log = logging.getLogger(f"mmunlearn.rule.{smk.rule}")
    log.info("rule %s, wildcards %s, threads %d, processes %d (torch threads each: %d)", smk.rule,
             dict(smk.wildcards), smk.threads, processes, threads)

    def log_failure(kind, value, tb):
        # the error that ends a job belongs in its log (a cluster user reads logs/<rule>/, not Snakemake's stderr)
        log.error("%s: %s", kind.__name__, value, exc_info=(kind, value, tb))

    sys.excepthook = log_failure
    # Where the job runs and what it may reach: a cluster job reads the hub cache offline (cluster.offline_jobs)
    log.info("host %s, SLURM job %s, CUDA_VISIBLE_DEVICES=%s, hub %s, HF_HOME=%s", os.uname().nodename,
             os.environ.get("SLURM_JOB_ID", "-"), os.environ.get("CUDA_VISIBLE_DEVICES", "-"),
             "offline" if os.environ.get("HF_HUB_OFFLINE") == "1" else "online", os.environ.get("HF_HOME", "-"))
    return log


def resolved_config(smk) -> dict:
    """The whole resolved configuration, recorded in every result file."""
    return dict(smk.config)


CHECKPOINTS, RUNS = Path("checkpoints"), Path("results/models")


def checkpoint_root(run: str | Path, checkpoints: str | Path = CHECKPOINTS, runs: str | Path = RUNS) -> str:
    """Where the training job writing the run folder ``run`` (``runs/<path>``) keeps its resumable state:
    ``checkpoints/<path>``, outside the job's outputs (Snakemake deletes those of a failed job). The training rules'
    ``checkpoints`` parameter comes from here, and ``remove_finished_checkpoints`` inverts it, so the two cannot
    disagree about which run a checkpoint belongs to."""
    try:
        path = Path(run).relative_to(runs)
    except ValueError:
        raise ValueError(f"training run {run}: not under {runs}, so it has no checkpoint root") from None
    return str(Path(checkpoints) / path)


def remove_finished_checkpoints(checkpoints: str | Path = CHECKPOINTS, runs: str | Path = RUNS) -> list[Path]:
    """Remove the training checkpoints of every run whose folder is in place; returns the roots removed.
    ``checkpoints/<path>/<key>/checkpoint.pt`` belongs to the run ``runs/<path>`` (``checkpoint_root``). Called when
    the workflow succeeds (Snakefile ``onsuccess``), never by the training job: a cluster can mark a job failed after
    its script wrote the run (a time limit reached seconds after the write), Snakemake then deletes the run, and the
    retry must still find the last step's checkpoint to resume from."""
    checkpoints = Path(checkpoints)
    roots = sorted({ckpt.parent.parent for ckpt in checkpoints.glob("**/checkpoint.pt")})
    finished = [root for root in roots if (Path(runs) / root.relative_to(checkpoints) / "run.json").is_file()]
    for root in finished:
        shutil.rmtree(root, ignore_errors=True)
    return finished
