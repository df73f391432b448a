"""SLURM job states, normalised so that snakemake-executor-plugin-slurm never waits on a job that has ended.

Why: the pinned plugin (2.8.0) decides a job's fate in ``Executor.check_active_jobs``
(``snakemake_executor_plugin_slurm/__init__.py``) by comparing the state string from
``sacct -X --parsable2 --format=JobIdRaw,State`` exactly against a tuple of failure states; anything else is
"still running" and yielded back, every poll, for ever. Two everyday states miss that comparison:

* a cancelled job: sacct writes ``CANCELLED by <uid>`` (``CANCELLED by 0`` when root or an administrator
  cancelled it), never the bare ``CANCELLED`` of the tuple;
* a preempted job: ``PREEMPTED`` has its own branch, which only warns and leaves it "to SLURM to resume" — but
  without ``--requeue`` (or with ``PreemptMode=CANCEL``) SLURM never does.

Snakemake then waits with an empty queue: no retry, no error (README "When the cluster stops a job").

How: the plugin calls its module-level ``query_job_status(command, logger)`` for every poll and looks the name
up at call time. ``install`` wraps that function: the states it returns are normalised (``StateNormaliser``) to
the ones the plugin acts on, so a cancelled or preempted job is reported failed, Snakemake resubmits it within
the profile's ``retries`` (asking for more time and memory, ``mmunlearn.cluster.retry_factor``) and the job
resumes from its training checkpoint; after the last retry the run stops with the SLURM state in the error.
Everything else about the plugin, and the users' command, stays as it is.

Guards: the wrapper logs, once, when the installed plugin is not the version this was written and tested for
(``TESTED_PLUGIN_VERSION``), and ``install`` says so when the hook it needs is gone; tests/test_slurm_states.py
runs the pinned plugin's own ``check_active_jobs`` with and without the wrapper, so a plugin upgrade that fixes
(or moves) the comparison fails a test instead of passing silently.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from typing import Callable

TESTED_PLUGIN_VERSION = "2.8.0"
PLUGIN = "snakemake-executor-plugin-slurm"

# The states the pinned plugin's check_active_jobs acts on: success, or its fail_stati tuple (NODE_FAIL has its
# own branch that also fails the job unless requeue is set).
PLUGIN_SUCCESS = "COMPLETED"
PLUGIN_FAILURES = ("BOOT_FAIL", "CANCELLED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT", "ERROR")
# Job states (sacct/squeue man pages, SLURM 22-25) of a job that is queued, running or held: it still exists,
# so waiting on it is right.
ALIVE = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING", "COMPLETING", "STAGE_OUT",
         "SIGNALING", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "STOPPED", "REVOKED")
# Ended states the pinned plugin does not recognise as ended, and what it is told instead: a preemption that
# SLURM does not requeue is a cancellation by the scheduler; SPECIAL_EXIT is a job held after a special exit
# code, which only an administrator releases.
ENDED_AS = {"PREEMPTED": "CANCELLED", "SPECIAL_EXIT": "FAILED"}


def base_state(raw: str) -> str:
    """The state word of a sacct/squeue state field: ``CANCELLED by 0`` -> ``CANCELLED``; a fixed-width sacct
    column's truncation mark (``CANCELLED+``) is dropped too."""
    words = raw.strip().split()
    return words[0].rstrip("+").upper() if words else ""


class StateNormaliser:
    """Maps one poll's ``{job id: raw state}`` to states the plugin acts on, logging each change once per job.

    ``requeue()`` says whether the run submits with ``--requeue``: then SLURM may put a preempted job back in the
    queue itself, and ``PREEMPTED`` is passed through for ``preempt_grace_s`` (the job id reappears PENDING); a
    job still PREEMPTED after that was not requeued and is failed like any other."""

    def __init__(self, requeue: Callable[[], bool] = lambda: False, preempt_grace_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic, log: logging.Logger | None = None):
        self.requeue = requeue
        self.preempt_grace_s = preempt_grace_s
        self.clock = clock
        self.log = log or logging.getLogger(__name__)
        self.preempted_since: dict[str, float] = {}
        self.told: set[tuple[str, str]] = set()

    def __call__(self, states: dict[str, str]) -> dict[str, str]:
        return {job: self.one(job, raw) for job, raw in states.items()}

    def one(self, job: str, raw: str) -> str:
        state = base_state(raw)
        if state in ENDED_AS:
            if state == "PREEMPTED" and self.requeue():
                since = self.preempted_since.setdefault(job, self.clock())
                if self.clock() - since < self.preempt_grace_s:
                    return state  # the plugin waits; SLURM is expected to requeue it
            told = ENDED_AS[state]
            self._tell(job, raw, f"SLURM job {job} ended {raw!r} (sacct): {PLUGIN} would wait on it for ever, so "
                                 f"it is reported to it as {told!r}: Snakemake resubmits it within --retries "
                                 "(training resumes from its checkpoint), or stops it with this state")
            return told
        if state != raw.strip():
            self._tell(job, raw, f"SLURM job {job} ended {raw!r} (sacct), read as {state!r}")
        elif state not in ALIVE and state not in PLUGIN_FAILURES and state != PLUGIN_SUCCESS:
            self._tell(job, raw, f"SLURM job {job} is in state {raw!r}, which neither {PLUGIN} nor this "
                                 "normalisation knows: it is waited on as running; if the job no longer exists "
                                 "(squeue -j), cancel the run and report the state (README)")
        return state

    def _tell(self, job: str, raw: str, message: str) -> None:
        if (job, raw) not in self.told:
            self.told.add((job, raw))
            self.log.warning(message)


def plugin_version() -> str | None:
    try:
        return importlib.metadata.version(PLUGIN)
    except importlib.metadata.PackageNotFoundError:
        return None


def install(requeue: Callable[[], bool] = lambda: False, log: logging.Logger | None = None) -> bool:
    """Wrap the plugin's ``query_job_status`` with a ``StateNormaliser``. Idempotent; returns whether the
    wrapper is in place. Without the plugin (a local-only install) there is nothing to do."""
    log = log or logging.getLogger(__name__)
    version = plugin_version()
    if version is None:
        return False
    import snakemake_executor_plugin_slurm as plugin

    original = getattr(plugin, "query_job_status", None)
    if original is None:
        log.warning(f"{PLUGIN} {version} has no query_job_status any more: the job-state normalisation of "
                    f"mmunlearn.slurm_states (written for {TESTED_PLUGIN_VERSION}) is not installed. Under "
                    "--executor slurm, check that a cancelled job fails instead of hanging (README \"When the "
                    "cluster stops a job\").")
        return False
    if getattr(original, "normalised_by_mmunlearn", False):
        return True
    normalise = StateNormaliser(requeue, log=log)
    warned = []

    async def query_job_status(command, logger):
        if version != TESTED_PLUGIN_VERSION and not warned:
            warned.append(True)
            log.warning(f"{PLUGIN} {version} is installed; the job-state normalisation was written for "
                        f"{TESTED_PLUGIN_VERSION} (README \"When the cluster stops a job\": check whether the new "
                        "version compares sacct states by their first word and fails unrequeued PREEMPTED jobs, "
                        "then drop mmunlearn.slurm_states)")
        states, seconds = await original(command, logger)
        return (normalise(states) if states is not None else None), seconds

    query_job_status.normalised_by_mmunlearn = True
    query_job_status.original = original
    plugin.query_job_status = query_job_status
    return True
