"""MMMU and LLaVA-Bench data (issue 17): the synthetic twins' schemas, the download through a loopback server
speaking the Hub API (data/fetch.py's code), and errors that name the file, row and field."""
import hashlib
import logging
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub_server import HubServer, repo_from_folder
from mmunlearn.data import manifest
from mmunlearn.data.fetch import FetchError
from mmunlearn.data.utility import MMMU_SUBJECTS, prepare, read_rows
from mmunlearn.eval.runner import benchmark_units

MMMU_COLUMNS = ["id", "question", "options", "explanation", *(f"image_{k}" for k in range(1, 8)), "img_type",
                "answer", "topic_difficulty", "question_type", "subfield"]
LLAVA_COLUMNS = ["question_id", "question", "image", "caption", "gpt_answer", "category", "image_id"]
COMMIT = hashlib.sha1(b"mmmu v1").hexdigest()


@pytest.fixture(scope="module")
def twins(utility_twins):
    return utility_twins


def test_twins_have_the_hub_schemas(twins):
    files = sorted((twins / "mmmu" / "files").rglob("*.parquet"))
    assert sorted(f.parent.name for f in files) == sorted(MMMU_SUBJECTS) and len(MMMU_SUBJECTS) == 30
    assert all(f.name == "validation-00000-of-00001.parquet" for f in files)
    table = pq.read_table(files[0])
    assert table.column_names == MMMU_COLUMNS
    assert table.schema.field("options").type == pa.string()  # a Python list *as a string*, as the Hub's
    assert table.schema.field("image_1").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    llava = pq.read_table(twins / "llava_bench" / "files" / "data" / "train-00000-of-00001.parquet")
    assert llava.column_names == LLAVA_COLUMNS
    units = benchmark_units(twins / "mmmu", "mmmu")
    items = [q for u in units for q in u.questions]
    assert len(items) == 30 and {q["question_type"] for q in items} == {"multiple-choice", "open"}
    assert any(len(q["image_bytes"]) == 2 for q in items)  # an option that is an image, as MMMU's
    bench = benchmark_units(twins / "llava_bench", "llava_bench")
    assert len(bench) == 4 and all(len(u.questions) == 3 for u in bench)  # clustered by image


def test_twins_are_deterministic(twins, tmp_path):
    prepare("mmmu", {}, "synthetic", tmp_path / "again", seed=0)
    a = manifest.load(twins / "mmmu" / "manifest.json")["files"]
    assert manifest.load(tmp_path / "again" / "manifest.json")["files"] == a


def test_bad_rows_name_the_file_row_and_field(twins, tmp_path):
    root = tmp_path / "llava_bench"
    shutil.copytree(twins / "llava_bench", root)
    f = root / "files" / "data" / "train-00000-of-00001.parquet"
    rows = pq.read_table(f).to_pylist()
    rows[2]["image"] = {"bytes": b"not an image", "path": "x.jpg"}
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(f)), f)
    manifest.write(root, {"test": True})
    with pytest.raises(ValueError, match=r"train-00000-of-00001.parquet: row 2: field 'image' is not a decodable"):
        read_rows(root, "llava_bench")
    pq.write_table(pa.Table.from_pylist(rows).drop(["caption"]), f)
    manifest.write(root, {"test": True})
    with pytest.raises(ValueError, match=r"train-00000-of-00001.parquet: llava_bench rows have no column\(s\) caption"):
        read_rows(root, "llava_bench")
    f.write_bytes(f.read_bytes() + b"x")  # edited after preparation: the manifest refuses it
    with pytest.raises(manifest.ManifestError, match="content differs"):
        read_rows(root, "llava_bench")


@pytest.fixture()
def hub(twins, monkeypatch):
    repo = repo_from_folder(twins / "mmmu" / "files", "dataset", COMMIT)
    for subject in MMMU_SUBJECTS:  # the other splits sit beside validation: they must not be downloaded
        repo.commits[COMMIT][f"{subject}/test-00000-of-00001.parquet"] = b"t" * 50
    repo.commits[COMMIT]["README.md"] = b"# card\n"
    with HubServer({"MMMU/MMMU": repo}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def test_download_is_pinned_resolved_and_checked(hub, twins, tmp_path, caplog):
    cfg = {"repo_id": "MMMU/MMMU", "revision": COMMIT, "split": "validation"}
    result = prepare("mmmu", cfg, "hub", tmp_path / "pinned")
    assert result["sources"]["mmmu"]["commit"] == COMMIT and result["sources"]["mmmu"]["files"] == 30
    got = {str(p.relative_to(tmp_path / "pinned")): p.read_bytes() for p in (tmp_path / "pinned").rglob("*.parquet")}
    want = {str(p.relative_to(twins / "mmmu")): p.read_bytes() for p in (twins / "mmmu").rglob("*.parquet")}
    assert got == want  # only the validation files, byte for byte
    assert not any("/test-" in path for _, path, _ in hub.requests if "/resolve/" in path)
    assert len(read_rows(tmp_path / "pinned", "mmmu")) == 30
    with caplog.at_level(logging.WARNING):  # unpinned: resolved, recorded, and a warning naming the hash
        result = prepare("mmmu", {**cfg, "revision": None}, "hub", tmp_path / "unpinned")
    assert result["sources"]["mmmu"]["commit"] == COMMIT and result["sources"]["mmmu"]["requested"] is None
    assert any("NOT PINNED" in r.message and COMMIT in r.message and "utility.mmmu.revision" in r.message
               for r in caplog.records)


def test_download_refuses_corrupt_files_and_unknown_revisions(hub, tmp_path):
    path = f"{MMMU_SUBJECTS[0]}/validation-00000-of-00001.parquet"
    hub.corrupt.add(path)
    cfg = {"repo_id": "MMMU/MMMU", "revision": COMMIT, "split": "validation"}
    with pytest.raises(FetchError, match=rf"{path}.*sha256"):
        prepare("mmmu", cfg, "hub", tmp_path / "corrupt")
    assert not (tmp_path / "corrupt").exists()
    with pytest.raises(FetchError, match=r"no revision '0{40}'.*utility\.mmmu\.revision"):
        prepare("mmmu", {**cfg, "revision": "0" * 40}, "hub", tmp_path / "wrong")
    with pytest.raises(FetchError, match=r"no dev-\*\.parquet files"):  # a split the repository does not hold
        prepare("mmmu", {**cfg, "split": "dev"}, "hub", tmp_path / "dev")
