"""DVC tracks the prepared data: `dvc push` to a local-directory remote, `dvc pull` into a fresh clone gives
byte-identical files, and the pipeline in that clone uses them without preparing the data again."""
import sys
from pathlib import Path

import pytest

from conftest import copy_project, job_counts
from conftest import run_checked as run

pytestmark = pytest.mark.integration


def files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_push_pull_restores_identical_data_that_the_pipeline_accepts(tmp_path):
    project, remote, clone = tmp_path / "project", tmp_path / "remote", tmp_path / "clone"
    copy_project(project)  # the project as committed, with its working-tree changes, as a fresh repository
    run(project, "git", "init", "-q")
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", "project")

    run(project, "dvc", "repro", "data_demo")
    run(project, "dvc", "remote", "add", "-d", "store", str(remote))
    run(project, "dvc", "push", "data_demo")
    run(project, "git", "add", "dvc.lock", ".dvc/config")
    run(project, "git", "commit", "-qm", "data pinned by dvc.lock")

    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    assert not (clone / "data/demo").exists()
    run(clone, "dvc", "pull", "data_demo")
    assert files(clone / "data/demo") == files(project / "data/demo")
    assert "manifest.json" in {p.name for p in (clone / "data/demo").iterdir()}

    # Snakemake in the clone builds on the pulled data: prepare_data is not scheduled, the split is made
    dry = run(clone, sys.executable, "-m", "snakemake", "--profile", "profiles/demo", "-n", "data/splits/seed42/forget_15.json")
    scheduled = job_counts(dry)
    assert "make_split" in scheduled and "prepare_data" not in scheduled
    run(clone, sys.executable, "-m", "snakemake", "--profile", "profiles/demo", "data/splits/seed42/forget_15.json")
    assert (clone / "data/splits/seed42/forget_15.json").is_file()
    assert run(clone, "dvc", "status", "data_demo").strip().endswith("up to date.")
