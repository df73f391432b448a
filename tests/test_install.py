"""The installed environment as `make venv` leaves it."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

# What an evaluation and a training job do in their first seconds, in a process that writes no bytecode: import
# the package's entry points and the Snakemake script preamble, build a model, generate, take a LoRA step.
A_JOB = """
import importlib.util, os, sys, sysconfig
import snakemake.script
import torch
from mmunlearn.eval.decode import greedy_generate
from mmunlearn.eval.tasks import rouge_scores
from mmunlearn.models.registry import VisionLanguageModel
from mmunlearn.models.tiny import build_tiny_llava, train_tokenizer
from mmunlearn.train.stages import add_lora
from mmunlearn.train.trainer import TrainConfig, train
tiny = dict(vocab_size=300, image_size=16, patch_size=8, vision_hidden=16, vision_layers=1, vision_heads=2,
            hidden=32, intermediate=64, layers=1, heads=2, max_positions=128)
tok = train_tokenizer(["USER: ASSISTANT: what is the job baker pilot"] * 20, 300)
vlm = VisionLanguageModel(*build_tiny_llava(tok, tiny, seed=0), "llava")
item = vlm.encode("USER:\\nWhat is the job?\\nASSISTANT:", " baker")
greedy_generate(vlm, [item], max_new_tokens=2, batch_size=1)
rouge_scores("a baker", "baker")
add_lora(vlm, {"r": 2, "alpha": 2, "dropout": 0.0}, seed=0)
train(vlm, "nll", {"train": [item] * 2}, TrainConfig(lr=1e-3, epochs=1, batch_size=2, seed=0))
site = sysconfig.get_paths()["purelib"]
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None) or ""
    if path.startswith(site) and path.endswith(".py") and not os.path.isfile(importlib.util.cache_from_source(path)):
        print("NO BYTECODE", name)
"""


def test_what_a_job_imports_is_installed_with_its_bytecode():
    """Each job is a new process; where PYTHONDONTWRITEBYTECODE is set (this machine, many container images), a
    module without a .pyc beside it is compiled from source in every one of them (~4 s a job), so `make venv`
    writes the bytecode of what jobs import (mmunlearn/bytecode.py). Checked against what a job actually
    imports, not against that module's list."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", A_JOB], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    missing = [line.split()[-1] for line in out.stdout.splitlines() if line.startswith("NO BYTECODE")]
    assert not missing, (f"{len(missing)} modules a job imports have no bytecode in {sys.prefix}, e.g. "
                         f"{missing[:10]}: rebuild the venv (`make venv`) or add them to "
                         "mmunlearn.bytecode.LAZY_IMPORTS")


def test_the_bytecode_step_refuses_to_run_where_it_would_write_nothing():
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-m", "mmunlearn.bytecode"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode != 0 and "PYTHONDONTWRITEBYTECODE" in out.stderr
    assert Path(importlib.util.find_spec("mmunlearn.bytecode").origin).is_file()


def _make_demo_command(tmp_path: Path, scontrol_ping_rc: int | None) -> str:
    """The Snakemake line `make demo` would run, with an scontrol whose `ping` exits ``scontrol_ping_rc`` first
    on PATH (None: no scontrol at all)."""
    path = os.environ["PATH"]
    if scontrol_ping_rc is None:  # hide any installed scontrol
        path = os.pathsep.join(d for d in path.split(os.pathsep) if not (Path(d) / "scontrol").exists())
    else:
        fake = tmp_path / "bin"
        fake.mkdir(parents=True)
        (fake / "scontrol").write_text(f"#!/bin/sh\n[ \"$1\" = ping ] && exit {scontrol_ping_rc}\nsleep 30\n")
        (fake / "scontrol").chmod(0o755)
        path = f"{fake}{os.pathsep}{path}"
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([shutil.which("make"), "-n", "demo"], cwd=repo, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PATH": path})
    assert out.returncode == 0, out.stderr[-2000:]
    return next(line for line in out.stdout.splitlines() if "--profile profiles/demo" in line)


def test_the_demo_skips_the_slurm_plugins_probe_only_where_no_controller_answers(tmp_path):
    """The SLURM executor plugin runs `scontrol show config` at every Snakemake start (9 s to fail where the client
    is installed and no controller answers): the local demo puts an scontrol that fails at once first on PATH
    there, and nowhere else."""
    stand_in = Path(__file__).resolve().parents[1] / "profiles/demo/no_slurm"
    assert str(stand_in) in _make_demo_command(tmp_path / "down", 1)
    assert "no_slurm" not in _make_demo_command(tmp_path / "up", 0)
    assert "no_slurm" not in _make_demo_command(tmp_path / "none", None)
    out = subprocess.run([str(stand_in / "scontrol"), "show", "config"], capture_output=True, text=True, timeout=5)
    assert out.returncode != 0 and "no SLURM controller" in out.stderr
