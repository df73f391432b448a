"""Held-out-style tests: data in the real schema written independently of our generator (tests/lookalike.py), with
the real files' shapes (Test_Set with and without `biography`, two Test_Set shards, biographies in several
forms, unicode names, titles, grayscale / palette / odd-size images, PNG and JPEG mixed, baseline rows without
`ID`), through validation, and through prepare (a loopback Hub) -> validate -> the reduced DAG with both
unlearning variants. A defect in any folder stops the run on the submitting node, naming file, row, ID and
field, before any training job."""
import hashlib
import json
import os
import subprocess
import sys

import pytest

from conftest import copy_workflow, job_counts
from hub_server import HubServer, repo_from_folder
from lookalike import inject_defect, write_lookalike
from mmunlearn.data.schema import DataError
from mmunlearn.data.utility import prepare as prepare_utility
from mmunlearn.data.validate import validate

BENCH_COMMIT, BASELINE_COMMIT = "a" * 40, "b" * 40


@pytest.mark.parametrize("test_set_biography", [False, True])
def test_validation_accepts_the_real_shapes_and_names_everyone(tmp_path, test_set_biography):
    info = write_lookalike(tmp_path / "d", test_set_biography=test_set_biography)
    facts = validate(tmp_path / "d", names_required=True, require_manifest=False)
    assert facts["names"] == {i: info["names"][i] for i in info["fictitious_ids"]}  # titles dropped, "Ms. Surname" biographies, non-Latin scripts
    for ratio in (5, 10, 15):  # baseline rows carry no ID: joined by image bytes
        assert sorted(facts["training_rows"][f"baseline_train_split/forget_{ratio}"]) == sorted(info["forget_ids"][ratio])
        assert sorted(facts["training_rows"][f"baseline_train_split/retain_{100 - ratio}"]) == sorted(info["retain_ids"][ratio])
    assert len(facts["report"]["MLLMU-Bench/Test_Set"]["files"]) == 2
    skipped = facts["report"]["MLLMU-Bench/ft_Data"]["skipped"]
    assert [s["reason"] for s in skipped] == ["empty Question or Answer"] * len(info["empty_answer_ids"])
    assert {s["id"] for s in skipped} == set(info["empty_answer_ids"]) and all(s["field"].startswith("metadata[")
                                                                              for s in skipped)


DEFECTS = [("corrupt_image", "MLLMU-Bench/Full_Set"), ("corrupt_image", "MLLMU-Bench/Test_Set"),
           ("corrupt_image", "MLLMU-Bench/Retain_Set"), ("corrupt_image", "MLLMU-Bench/ft_Data"),
           ("corrupt_image", "baseline_train_split/retain_90"), ("missing_column", "MLLMU-Bench/Test_Set"),
           ("missing_column", "MLLMU-Bench/forget_10"), ("missing_column", "baseline_train_split/forget_10"),
           ("wrong_nested_type", "MLLMU-Bench/Retain_Set"), ("wrong_nested_type", "MLLMU-Bench/ft_Data"),
           ("unnameable", "MLLMU-Bench/Full_Set")]


@pytest.mark.parametrize("kind,folder", DEFECTS)
def test_a_defect_in_any_folder_is_one_error_naming_file_row_id_and_field(tmp_path, kind, folder):
    write_lookalike(tmp_path / "d")
    where = inject_defect(tmp_path / "d", kind, folder)
    with pytest.raises(DataError) as err:
        validate(tmp_path / "d", names_required=True, require_manifest=False)
    e = err.value
    assert e.file == str(where["file"])
    assert e.field.split(".")[0].split("[")[0] == where["field"].split(".")[0].split("[")[0]
    if where["row"] >= 0:
        assert e.row == where["row"] and e.profile_id == where["id"]
    assert str(where["file"]) in str(e) and f"field '{e.field}'" in str(e)


# --- through the DAG: prepare (download from a loopback Hub) -> validate -> the reduced study -------------------


def _serve(root):
    """The loopback Hub with MLLMU-Bench, its baseline split, and MMMU and LLaVA-Bench (their twins' files, at the
    repository ids config.yaml names, unpinned there: resolved, recorded and warned about)."""
    repos = {"MLLMMU/MLLMU-Bench": repo_from_folder(root / "MLLMU-Bench", "dataset", BENCH_COMMIT),
             "MLLMMU/baseline_train_split": repo_from_folder(root / "baseline_train_split", "model", BASELINE_COMMIT)}
    for name, repo_id in (("mmmu", "MMMU/MMMU"), ("llava_bench", "lmms-lab/llava-bench-in-the-wild")):
        if not (root / "utility" / name).is_dir():
            prepare_utility(name, {}, "synthetic", root / "utility" / name)
        repos[repo_id] = repo_from_folder(root / "utility" / name / "files", "dataset",
                                          hashlib.sha1(repo_id.encode()).hexdigest())
    return HubServer(repos)


LOOKALIKE_CONFIG = f"""
data:
  source: hub
  root: data/lookalike
  hub: {{repo_id: MLLMMU/MLLMU-Bench, revision: {BENCH_COMMIT}, baseline_repo_id: MLLMMU/baseline_train_split,
         baseline_revision: {BASELINE_COMMIT}}}
models:
  tiny-llava:
    tiny: {{max_positions: 1024}}             # the real-length questions make 6-image prompts of ~600 tokens
    pretrain: {{data: MLLMU-Bench/ft_Data}}   # real data has no celebrity corpus: any training-format folder works
finetune:
  mix: {{replay_data: MLLMU-Bench/ft_Data}}
"""


def _snakemake(wd, server, *args):
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "config/lookalike.yaml",
           "--cores", "2", *args]
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(wd / "hf_home")}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture
def lookalike_workdir(tmp_path):
    (tmp_path / "wf").mkdir()
    wd = copy_workflow(tmp_path / "wf")
    (wd / "config/lookalike.yaml").write_text(LOOKALIKE_CONFIG)
    return wd


@pytest.mark.integration
def test_the_reduced_study_runs_on_lookalike_data(tmp_path, lookalike_workdir):
    write_lookalike(tmp_path / "hub")  # Test_Set without biography
    with _serve(tmp_path / "hub") as server:
        result = _snakemake(lookalike_workdir, server, "results/summary.csv")
        assert result.returncode == 0, result.stderr[-4000:]
        facts = json.loads((lookalike_workdir / "results/data/validated.json").read_text())
        assert all(facts["names"].values())
        # both unlearning variants ran; the text variant trained on named, image-free items
        for variant in ("multimodal", "text"):
            assert (lookalike_workdir / f"results/models/tiny-llava/seed42/ga_{variant}_10/adapter").is_dir()
        assert "Data load report" in (lookalike_workdir / "results/data/load_report.html").read_text()
        # MMMU and LLaVA-Bench came from the Hub too, through the same download code, at the resolved commit
        mmmu = json.loads((lookalike_workdir / "data/test_utility/mmmu/manifest.json").read_text())["sources"]
        assert mmmu["mmmu"]["commit"] == hashlib.sha1(b"MMMU/MMMU").hexdigest() and mmmu["mmmu"]["files"] == 30
        dry = _snakemake(lookalike_workdir, server, "-n", "results/summary.csv")
        assert job_counts(dry.stdout + dry.stderr) == {}


@pytest.mark.integration
@pytest.mark.parametrize("kind,folder", [("corrupt_image", "MLLMU-Bench/Test_Set"),
                                         ("unnameable", "MLLMU-Bench/Full_Set")])
def test_bad_data_stops_the_run_before_any_training_job(tmp_path, lookalike_workdir, kind, folder):
    write_lookalike(tmp_path / "hub")
    where = inject_defect(tmp_path / "hub", kind, folder)
    with _serve(tmp_path / "hub") as server:
        result = _snakemake(lookalike_workdir, server, "results/summary.csv")
    assert result.returncode != 0
    log = (lookalike_workdir / "logs/validate_data.log").read_text()
    errors = [ln for ln in log.splitlines() if "DataError" in ln]
    assert errors, log[-3000:]
    rel = where["file"].relative_to(tmp_path / "hub")
    assert f"{rel}, row {where['row']} (ID {where['id']}), field '{where['field'].split('.')[0]}" in errors[-1]
    # nothing trained, nothing half-written
    assert not (lookalike_workdir / "results/models").exists() and not (lookalike_workdir / "logs/finetune_vanilla").exists()
    assert not (lookalike_workdir / "results/data/validated.json").exists()
