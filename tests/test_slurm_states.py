"""Job-state normalisation for snakemake-executor-plugin-slurm (mmunlearn.slurm_states).

The pinned plugin's own ``Executor.check_active_jobs`` runs here against a ``sacct`` on PATH that prints what a
real sacct printed for these jobs (`make test-slurm` checks the same on a real cluster): without the
normalisation a cancelled or preempted job is yielded back as running (the bug, reproduced: when a plugin
upgrade fixes it, ``test_pinned_plugin_waits_on_ended_jobs`` fails and the workaround can go), with it the job
is reported failed with its SLURM state."""
import asyncio
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmunlearn import slurm_states
from mmunlearn.slurm_states import StateNormaliser, base_state

plugin = pytest.importorskip("snakemake_executor_plugin_slurm")
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo  # noqa: E402

# sacct -X --parsable2 --noheader --format=JobIdRaw,State, as SLURM 22.05 prints it (make test-slurm)
SACCT_ROWS = {"11": "RUNNING", "12": "CANCELLED by 0", "13": "PREEMPTED", "14": "COMPLETED",
              "15": "TIMEOUT", "16": "CANCELLED by 1000", "17": "OUT_OF_MEMORY", "18": "PENDING"}


def test_base_state_reads_the_state_word():
    assert base_state("CANCELLED by 0") == "CANCELLED"
    assert base_state("CANCELLED+") == "CANCELLED"
    assert base_state(" completed ") == "COMPLETED"
    assert base_state("OUT_OF_MEMORY") == "OUT_OF_MEMORY"
    assert base_state("") == ""


def test_normaliser_maps_ended_states_to_what_the_plugin_acts_on(caplog):
    normalise = StateNormaliser()
    with caplog.at_level(logging.WARNING):
        out = normalise(SACCT_ROWS)
        again = normalise(SACCT_ROWS)
    assert out == again == {"11": "RUNNING", "12": "CANCELLED", "13": "CANCELLED", "14": "COMPLETED",
                            "15": "TIMEOUT", "16": "CANCELLED", "17": "OUT_OF_MEMORY", "18": "PENDING"}
    assert all(s in slurm_states.PLUGIN_FAILURES + ("COMPLETED",) + slurm_states.ALIVE for s in out.values())
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 3, told  # once per job, not once per poll
    assert any("13 ended 'PREEMPTED'" in m and "'CANCELLED'" in m for m in told)
    assert any("12 ended 'CANCELLED by 0'" in m for m in told)


def test_preempted_job_waits_for_a_requeue_only_when_the_run_requeues():
    now = [0.0]
    normalise = StateNormaliser(requeue=lambda: True, preempt_grace_s=600, clock=lambda: now[0])
    assert normalise({"13": "PREEMPTED"}) == {"13": "PREEMPTED"}  # SLURM may requeue it: wait
    now[0] = 599
    assert normalise({"13": "PREEMPTED"}) == {"13": "PREEMPTED"}
    now[0] = 601  # never requeued: it has ended
    assert normalise({"13": "PREEMPTED"}) == {"13": "CANCELLED"}
    assert StateNormaliser(requeue=lambda: False)({"13": "PREEMPTED"}) == {"13": "CANCELLED"}


def test_unknown_state_is_waited_on_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert StateNormaliser()({"19": "LAUNCH_FAILED_SOMEHOW"}) == {"19": "LAUNCH_FAILED_SOMEHOW"}
    assert "neither" in caplog.text and "19" in caplog.text


@pytest.fixture
def sacct_on_path(tmp_path, monkeypatch):
    """A ``sacct`` that prints the recorded rows for the status query and 'None' for the reason query, and an
    ``scontrol`` for the plugin's MinJobAge lookup (a real one without a controller waits 9 s)."""
    rows = "\n".join(f"{job}|{state}" for job, state in SACCT_ROWS.items())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"sacct": "case \"$*\" in *JobIdRaw,State*) printf '%s\\n' \"$ROWS\";; *) echo None;; esac",
               "scontrol": "echo 'MinJobAge               = 300 sec'"}
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("ROWS", rows)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def restore_plugin():
    original = plugin.query_job_status
    yield
    plugin.query_job_status = original


class _Unlimited:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


def _executor():
    """The pinned plugin's Executor, without the submission machinery its __init__ starts: only what
    check_active_jobs reads. Snakemake's side (report_job_success/error) is recorded."""
    ex = object.__new__(plugin.Executor)
    ex.workflow = SimpleNamespace(executor_settings=SimpleNamespace(
        init_seconds_before_status_checks=1, status_attempts=1, keep_successful_logs=True, requeue=False,
        status_command="sacct"))
    ex.logger = logging.getLogger("plugin-under-test")
    ex.status_rate_limiter = _Unlimited()
    ex.run_uuid = "run-under-test"
    ex._status_query_calls, ex._status_query_failures = 0, 0
    ex._status_query_total_seconds, ex._status_query_min_seconds, ex._status_query_max_seconds = 0.0, None, 0.0
    ex._status_query_cycle_rows, ex._preemption_warning, ex._failed_nodes = [], False, set()
    ex.next_seconds_between_status_checks = 1
    ex.outcome = {}
    ex.report_job_success = lambda j: ex.outcome.__setitem__(j.external_jobid, "success")
    ex.report_job_error = lambda j, msg=None, **kw: ex.outcome.__setitem__(j.external_jobid, msg)
    return ex


def _poll(ex) -> dict:
    jobs = [SubmittedJobInfo(job=None, external_jobid=job, aux={"slurm_logfile": Path(f"logs/slurm/{job}.log")})
            for job in SACCT_ROWS]

    async def run():
        return [j.external_jobid async for j in ex.check_active_jobs(jobs)]

    still_running = asyncio.run(run())
    return {**ex.outcome, **{job: "running" for job in still_running}}


def test_pinned_plugin_waits_on_ended_jobs(sacct_on_path, restore_plugin):
    """The bug: the plugin as pinned, unpatched, keeps a cancelled and a preempted job 'running'."""
    outcome = _poll(_executor())
    assert outcome["12"] == outcome["13"] == outcome["16"] == "running"
    assert outcome["14"] == "success" and "TIMEOUT" in outcome["15"] and "OUT_OF_MEMORY" in outcome["17"]


def test_installed_normalisation_fails_every_ended_job_with_its_state(sacct_on_path, restore_plugin, caplog):
    assert slurm_states.install(log=logging.getLogger("mmunlearn-test"))
    assert slurm_states.install()  # idempotent: wrapped once
    assert plugin.query_job_status.original.__module__ == "snakemake_executor_plugin_slurm.job_status_query"
    with caplog.at_level(logging.WARNING):
        outcome = _poll(_executor())
    assert outcome["11"] == outcome["18"] == "running"
    assert outcome["14"] == "success"
    for job, state in [("12", "CANCELLED"), ("13", "CANCELLED"), ("15", "TIMEOUT"), ("16", "CANCELLED"),
                       ("17", "OUT_OF_MEMORY")]:
        assert f"SLURM-job '{job}' failed" in outcome[job] and f"SLURM status is: '{state}'" in outcome[job]
    assert "SLURM job 13 ended 'PREEMPTED'" in caplog.text  # the real state, named in the run's log


def test_version_guard_names_the_tested_version(sacct_on_path, restore_plugin, monkeypatch, caplog):
    monkeypatch.setattr(slurm_states, "plugin_version", lambda: "9.9.9")
    slurm_states.install(log=logging.getLogger("mmunlearn-test"))
    with caplog.at_level(logging.WARNING):
        _poll(_executor())
    assert "9.9.9 is installed" in caplog.text and slurm_states.TESTED_PLUGIN_VERSION in caplog.text


def test_the_pinned_plugin_is_the_tested_version():
    """Raising the pin means rerunning test_pinned_plugin_waits_on_ended_jobs and make test-slurm first."""
    assert slurm_states.plugin_version() == slurm_states.TESTED_PLUGIN_VERSION
