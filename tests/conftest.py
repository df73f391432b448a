import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# An scontrol that fails at once; the Makefile puts the same folder first on PATH for its local runs.
NO_SLURM = REPO / "profiles" / "demo" / "no_slurm"


def slurm_controller_answers(timeout: float = 3.0) -> bool:
    """Whether an ``scontrol`` is installed and a SLURM controller answers it within ``timeout`` seconds."""
    if shutil.which("scontrol") is None:
        return False
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def path_without_slurm_probe(path: str) -> str:
    """``path`` with NO_SLURM first where SLURM's client is installed but no controller answers; else as is."""
    if shutil.which("scontrol") is None or slurm_controller_answers():
        return path
    return f"{NO_SLURM}{os.pathsep}{path}"


def pytest_configure(config):
    """Where SLURM's client is installed but no controller answers (this machine after `make test-slurm` stopped
    its daemons; a workstation with slurm-client), the SLURM executor plugin runs `scontrol show config` whenever
    Snakemake starts, and it takes 9 s to fail: the suite starts Snakemake about a hundred times. For the session,
    an `scontrol` that fails at once stands first on PATH, which is what the plugin meets where SLURM is not
    installed (it reads no MinJobAge either way). A reachable controller is left alone. `make test-slurm`, which
    runs its own daemons, is not a pytest session."""
    os.environ["PATH"] = path_without_slurm_probe(os.environ.get("PATH", ""))


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """A small synthetic twin, generated once per test session."""
    from mmunlearn.data.synthetic import SyntheticSpec, generate

    root = tmp_path_factory.mktemp("data") / "twin"
    generate(root, SyntheticSpec(num_fictitious=20, num_celebrities=6, forget_ratios=(5, 10, 15), seed=3))
    return root


@pytest.fixture(scope="session")
def utility_twins(tmp_path_factory):
    """The synthetic twins of MMMU and LLaVA-Bench (data/utility.py), generated once per test session."""
    from mmunlearn.data.utility import prepare

    root = tmp_path_factory.mktemp("utility")
    for name in ("mmmu", "llava_bench"):
        prepare(name, {}, "synthetic", root / name, seed=0)
    return root


# What a workflow needs to run from a fresh folder (integration tests copy it and run Snakemake there).
WORKFLOW_FILES = ["Snakefile", "report", "rules", "workflow_scripts", "schemas", "envs", "config", "config.yaml", "src",
                  "profiles", "slurm"]


def copy_workflow(dest: Path) -> Path:
    """The workflow's files in ``dest``, made a git repository (result files record its commit)."""
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


# Subprocesses of the integration tests: the venv's tools (snakemake, dvc) first on PATH, a git identity.
TOOL_ENV = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def run_checked(cwd, *cmd, timeout=900) -> str:
    """Run ``cmd`` in ``cwd``; fail the test with its output unless it exits 0; return stdout + stderr."""
    result = subprocess.run(cmd, cwd=cwd, env={**os.environ, **TOOL_ENV}, capture_output=True, text=True,
                            timeout=timeout)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{out[-4000:]}"
    return out


def copy_project(dest: Path) -> Path:
    """The project as committed, with its working-tree changes (tracked and untracked, not ignored files), in
    ``dest``; not yet a git repository."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    for rel in filter(None, listed.split("\0")):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel, follow_symlinks=False)
    return dest


def job_counts(out: str) -> dict:
    """Snakemake's (last) "Job stats" table as {rule: count}; {} when nothing is scheduled."""
    if "Job stats:" not in out:
        assert "Nothing to be done" in out, out[-3000:]
        return {}
    table = out.split("Job stats:")[-1].strip().split("\n\n")[0]  # the table, up to its blank line
    return {line.split()[0]: int(line.split()[1]) for line in table.splitlines()[2:]}


def full_logits_loglik(vlm, item) -> float:
    """An item's continuation log-likelihood from the model's own logits at every position (the reference for
    scoring that runs the LM head at the scored positions only)."""
    import torch

    with torch.no_grad():
        logp = torch.log_softmax(vlm.model(**vlm.collate([item])).logits[0], -1)
    return sum(logp[t - 1, item.input_ids[t]].item() for t in range(item.n_prompt, len(item.input_ids)))


def encode_one_at_a_time(vlm, prompt: str, continuation: str, images: tuple, append_eos: bool = False):
    """The reference for ``encode_all``: the prompt and the prompt with its continuation each through the tokenizer
    on its own, the scored tokens past their common prefix."""
    from mmunlearn.models.registry import Encoded

    ids = vlm.tokenizer(vlm.expanded(prompt, images))["input_ids"]
    if not continuation:
        return Encoded(ids, len(ids), images)
    full = vlm.tokenizer(vlm.expanded(prompt + continuation, images))["input_ids"]
    n = next((k for k, (a, b) in enumerate(zip(ids, full)) if a != b), min(len(ids), len(full)))
    return Encoded(full + ([vlm.tokenizer.eos_token_id] if append_eos else []), n, images)
