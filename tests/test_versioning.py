"""Versioning with DVC and content-based reruns, on the demo at test size (config/test.yaml's study).

A project runs the pipeline, records it with `dvc commit` + `dvc push` (tag v1), changes GA's learning rate and
records again (tag v2). A fresh clone checked out at v1 + `dvc pull` + `python -m mmunlearn.versioning`
(`make pull`) then: schedules nothing (`snakemake -n`), rebuilds v1's summary.csv without training, and still
reruns exactly what a real edit touches; each change's scheduled jobs are counted."""
import os
import sys
from pathlib import Path

import pytest

from conftest import REPO, copy_project, job_counts
from conftest import run_checked as run

pytestmark = pytest.mark.integration


def dry_run(cwd) -> dict:
    return job_counts(run(cwd, sys.executable, "-m", "snakemake", "--profile", "profiles/demo", "-n"))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """A project with two recorded versions (v1, v2) on a local DVC remote, and a fresh clone at v1."""
    tmp = tmp_path_factory.mktemp("versions")
    project, clone = tmp / "project", tmp / "clone"
    copy_project(project)
    # the demo at test size: the shipped dvc.yaml and profiles/demo, unchanged, run config/test.yaml's study
    demo = (REPO / "config/test.yaml").read_text().replace("root: data/test", "root: data/demo")
    (project / "config/demo.yaml").write_text(demo)
    run(project, "git", "init", "-q")
    run(project, "dvc", "remote", "modify", "--local", "demo", "url", str(tmp / "store"))
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", "project")

    first = run(project, "dvc", "repro", "pipeline")
    run(project, "dvc", "push")
    run(project, "git", "add", "dvc.lock")
    run(project, "git", "commit", "-qm", "v1")
    run(project, "git", "tag", "v1")

    edit(project / "config/demo.yaml", "ga: {lr: 1.0e-4", "ga: {lr: 3.0e-4")
    second = run(project, "dvc", "repro", "pipeline")
    run(project, "dvc", "push")
    run(project, "git", "commit", "-qam", "v2: GA lr 3e-4")
    run(project, "git", "tag", "v2")

    run(tmp, "git", "clone", "-q", str(project), str(clone))
    run(clone, "git", "checkout", "-q", "v1")
    run(clone, "dvc", "remote", "modify", "--local", "demo", "url", str(tmp / "store"))
    pulled = run(clone, "dvc", "pull", "--with-deps", "pipeline")
    pulled += run(clone, sys.executable, "-m", "mmunlearn.versioning")  # what `make pull` runs after the pull
    return {"project": project, "clone": clone, "first": first, "second": second, "pulled": pulled}


def test_a_hyperparameter_change_reruns_only_that_method(versions):
    """dvc repro ran Snakemake; the GA edit reran GA's 2 unlearning jobs, their evaluations (a job per run, 4
    splits each) and 8 judgements,
    and the aggregation with its tables and figures, nothing else."""
    assert job_counts(versions["first"])["unlearn"] == 4
    assert job_counts(versions["second"]) == {"unlearn": 2, "evaluate": 2, "judge": 8, "review_llava_bench": 2,
                                              "aggregate": 1, "tables": 1, "figures": 1, "all": 1, "total": 18}
    v1 = run(versions["project"], "git", "show", "v1:dvc.lock")
    v2 = (versions["project"] / "dvc.lock").read_text()
    assert v1 != v2 and "results/summary.csv" in v2


def test_fresh_clone_after_pull_schedules_nothing(versions):
    clone = versions["clone"]
    assert "stamped in" in versions["pulled"]
    assert (clone / "results/models/tiny-llava/seed42/ga_text_10/adapter/adapter_model.safetensors").is_file()
    assert (clone / ".snakemake/metadata").is_dir()
    assert dry_run(clone) == {}
    assert run(clone, "dvc", "status", "--with-deps", "pipeline").strip().endswith("up to date.")


def test_checkout_of_an_older_version_reproduces_its_summary_without_training(versions):
    project, clone = versions["project"], versions["clone"]
    v1_summary = (clone / "results/summary.csv").read_bytes()
    assert v1_summary != (project / "results/summary.csv").read_bytes()  # v2's GA rows differ
    (clone / "results/summary.csv").unlink()
    out = run(clone, sys.executable, "-m", "snakemake", "--profile", "profiles/demo")
    assert job_counts(out) == {"aggregate": 1, "tables": 1, "figures": 1, "all": 1, "total": 4}
    assert (clone / "results/summary.csv").read_bytes() == v1_summary
    assert dry_run(clone) == {}


@pytest.mark.parametrize("change, expected", [
    # a method's hyper-parameter: its 2 unlearning runs (multimodal, text) and everything downstream of them
    (("config/demo.yaml", "npo: {lr: 1.0e-4", "npo: {lr: 2.0e-4"),
     {"unlearn": 2, "evaluate": 2, "judge": 8, "review_llava_bench": 2, "aggregate": 1, "tables": 1, "figures": 1,
      "all": 1, "total": 18}),
    # a workflow script: that rule's jobs only
    (("workflow_scripts/figures.py", "log = setup(smk)\n", "log = setup(smk)\nlog.info('edited')\n"),
     {"figures": 1, "all": 1, "total": 2}),
    # a docstring and a comment of the package: nothing (mmunlearn.code_version). Not so in a workflow script:
    # Snakemake reruns a script rule whose script is newer than its outputs, whatever the edit
    (("src/mmunlearn/train/trainer.py", '"""', '"""Edited. '), {}),
    (("src/mmunlearn/eval/decode.py", "import torch\n", "import torch  # edited\n\n# a comment of its own\n"), {}),
    # package code a rule uses (decoding): every evaluation (5 runs with a ratio; base and vanilla's job for
    # the ratio's 3 splits and their ratio-free job each) and what reads it, no training
    (("src/mmunlearn/eval/decode.py", "import torch\n", "import torch\n\nEDITED = True\n"),
     {"evaluate": 5, "evaluate_ratio": 2, "evaluate_ratio_free": 2, "judge": 28, "review_llava_bench": 7,
      "aggregate": 1, "tables": 1, "figures": 1, "all": 1, "total": 48}),
    # a new method: only its jobs (+ the aggregation that now reads them)
    (("config/demo.yaml", "methods: [ga, npo]", "methods: [ga, npo, grad_diff]"),
     {"unlearn": 2, "evaluate": 2, "judge": 8, "review_llava_bench": 2, "aggregate": 1, "tables": 1, "figures": 1,
      "all": 1, "total": 18}),
    # a new forget ratio: its split, oracle, 4 unlearning runs, their 5 evaluation jobs (20 splits) and
    # base/vanilla's 6 new splits (a job each)
    (("config/demo.yaml", "forget_ratios: [10]\n  methods", "forget_ratios: [10, 20]\n  methods"),
     {"make_split": 1, "finetune_oracle": 1, "unlearn": 4, "evaluate": 5, "evaluate_ratio": 2, "judge": 26,
      "review_llava_bench": 5, "aggregate": 1, "tables": 1, "figures": 1, "all": 1, "total": 48}),
])
def test_an_edit_in_the_fresh_clone_reruns_what_it_touches(versions, change, expected):
    clone = versions["clone"]
    path, old, new = change
    original, stat = (clone / path).read_text(), (clone / path).stat()
    try:
        edit(clone / path, old, new)
        assert dry_run(clone) == expected
    finally:  # revert the edit, time included (Snakemake reruns a rule whose script is newer than its outputs)
        (clone / path).write_text(original)
        os.utime(clone / path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dry_run(clone) == {}
