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


def run(out, batch, accum, processes=1):
    cmd = [sys.executable, str(DRIVER), str(out), str(batch), str(accum)]
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
