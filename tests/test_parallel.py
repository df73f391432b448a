"""Effective batch = per-process batch x processes x accumulation: two CPU processes under torchrun (DDP over
gloo, the process group started through accelerate's PartialState) and two accumulation micro-steps both train exactly like one process with the whole batch."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration
DRIVER = Path(__file__).with_name("ddp_driver.py")
BIN = Path(sys.executable).parent


def run(out, batch, accum, processes=1, mode=()):
    cmd = [sys.executable, str(DRIVER), str(out), str(batch), str(accum), *mode]
    if processes > 1:  # torchrun (what `accelerate launch --multi_gpu` runs); accelerate's state joins gloo on CPU
        cmd = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(processes), *cmd[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return torch.load(out)


def test_two_processes_and_accumulation_equal_one_big_batch(tmp_path):
    whole = run(tmp_path / "whole.pt", batch=8, accum=1)
    ddp = run(tmp_path / "ddp.pt", batch=4, accum=1, processes=2)
    accum = run(tmp_path / "accum.pt", batch=4, accum=2)
    assert whole["effective_batch_size"] == ddp["effective_batch_size"] == accum["effective_batch_size"] == 8
    assert ddp["num_processes"] == 2 and accum["grad_accum"] == 2
    assert whole["steps"] == ddp["steps"] == accum["steps"] == 8  # 32 items / 8 x 2 epochs
    for name, ref in whole["lora"].items():
        assert torch.allclose(ddp["lora"][name], ref, atol=1e-10), name
        assert torch.allclose(accum["lora"][name], ref, atol=1e-10), name
    moved = sum((ref - 0).abs().sum().item() for n, ref in whole["lora"].items() if "lora_B" in n)
    assert moved > 0  # training happened (B starts at zero)


def test_a_full_fine_tune_whose_text_only_items_skip_the_vision_tower_trains_in_two_processes(tmp_path):
    """The tiny base's pre-training (every parameter trained; `pretrain.processes`): one process's share of each
    batch shows no image, so its vision tower gets no gradient there. DDP is told to expect that (it stopped
    with "parameters that were not used in producing loss" before), and two processes equal one whole batch,
    the vision tower's parameters included."""
    whole = run(tmp_path / "whole.pt", batch=8, accum=1, mode=("full",))
    ddp = run(tmp_path / "ddp.pt", batch=4, accum=1, processes=2, mode=("full",))
    vision = [n for n in whole["lora"] if "vision_tower" in n]
    assert vision and len(whole["lora"]) == len(ddp["lora"]) > len(vision)
    for name, ref in whole["lora"].items():
        assert torch.allclose(ddp["lora"][name], ref, atol=1e-10), name


@pytest.mark.parametrize("local_processes, threads", [(None, 2), ("2", 1), ("4", 1)])
def test_a_jobs_threads_are_shared_by_its_processes(local_processes, threads):
    """A job of `threads: 2` run as 2 processes (torchrun sets LOCAL_WORLD_SIZE) gives each 1 torch thread, not 2
    each on the job's 2 cores."""
    script = ("import types, torch; from mmunlearn.workflow import setup; "
              "setup(types.SimpleNamespace(log=[], threads=2, rule='r', wildcards={})); print(torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_WORLD_SIZE", "OMP_NUM_THREADS")}
    if local_processes:
        env["LOCAL_WORLD_SIZE"] = local_processes
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) == threads
