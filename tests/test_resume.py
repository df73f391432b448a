"""A training job killed with SIGKILL and restarted by Snakemake continues from its last checkpoint and ends
with exactly the adapter of an uninterrupted run (same seed, CPU)."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import copy_workflow

pytestmark = pytest.mark.integration
TARGET = "results/models/tiny-llava/seed42/vanilla"
ADAPTER = f"{TARGET}/adapter/adapter_model.safetensors"
LONGER = "finetune:\n  max_steps: 300\n  checkpoint_every: 25\n"


def snakemake_cmd(*args):
    return [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "longer.yaml", "--cores", "1",
            *args]


def job_pids(workdir: Path, script: str) -> list[int]:
    """PIDs of the job processes Snakemake started for ``script`` in ``workdir`` (read from /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if script in cmd and ".snakemake/scripts" in cmd and cwd == str(workdir):
            pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("resume"))
    (wd / "longer.yaml").write_text(LONGER)
    return wd


def test_sigkilled_job_resumes_to_the_same_adapter(workdir):
    # 1. uninterrupted reference run
    done = subprocess.run(snakemake_cmd(TARGET), cwd=workdir, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = (workdir / ADAPTER).read_bytes()
    assert not list((workdir / "checkpoints").rglob("checkpoint.pt"))  # cleared after success
    shutil.rmtree(workdir / TARGET)

    # 2. the same job, SIGKILLed once its first checkpoint exists; Snakemake restarts it (--retries 1)
    proc = subprocess.Popen(snakemake_cmd("--retries", "1", TARGET), cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    killed, deadline = None, time.time() + 600
    while killed is None and time.time() < deadline and proc.poll() is None:
        if list((workdir / "checkpoints").rglob("checkpoint.pt")):
            for pid in job_pids(workdir, "finetune.py"):
                os.kill(pid, signal.SIGKILL)
                killed = pid
        time.sleep(0.02)
    out, _ = proc.communicate(timeout=900)
    assert killed is not None, "the job finished before a checkpoint was seen: make it longer\n" + out[-2000:]
    assert proc.returncode == 0, out[-4000:]
    log = (workdir / "logs/finetune_vanilla/tiny-llava/seed42.log").read_text()
    assert "resuming nll from checkpoint" in log
    resumed_at = int(log.split("resuming nll from checkpoint")[1].split("at step ")[1].split("/")[0])
    assert 1 < resumed_at <= 300
    assert (workdir / ADAPTER).read_bytes() == reference
    assert not list((workdir / "checkpoints").rglob("checkpoint.pt"))
