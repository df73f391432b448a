import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """A small synthetic twin, generated once per test session."""
    from mmunlearn.data.synthetic import SyntheticSpec, generate

    root = tmp_path_factory.mktemp("data") / "twin"
    generate(root, SyntheticSpec(num_fictitious=20, num_celebrities=6, forget_ratios=(5, 10, 15), seed=3))
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
