"""The real download path (huggingface_hub against a loopback server speaking the Hub API) and the manifest."""
import hashlib
import logging
import random
import shutil

import pytest

from hub_server import HubServer, repo_from_folder
from mmunlearn.data import manifest
from mmunlearn.data.fetch import FetchError, prepare
from mmunlearn.data.manifest import ManifestError
from mmunlearn.data.schema import read_benchmark_folder, read_training_folder

BENCH_COMMIT = hashlib.sha1(b"bench v2").hexdigest()
OLD_COMMIT = hashlib.sha1(b"bench v1").hexdigest()
BASELINE_COMMIT = hashlib.sha1(b"baseline").hexdigest()
FULL = "Full_Set/train-00000-of-00001.parquet"


@pytest.fixture()
def hub(small_data, monkeypatch):
    bench = repo_from_folder(small_data / "MLLMU-Bench", "dataset", BENCH_COMMIT)
    bench.commits[BENCH_COMMIT]["README.md"] = b"# card\n"           # not needed: must not be downloaded
    bench.commits[BENCH_COMMIT]["extra/train-00000-of-00001.parquet"] = b"x" * 10
    # an older commit without Test_Set, as the real repo's history has (spec 1.1)
    bench.commits[OLD_COMMIT] = {p: b for p, b in bench.commits[BENCH_COMMIT].items() if not p.startswith("Test_Set")}
    baseline = repo_from_folder(small_data / "baseline_train_split", "model", BASELINE_COMMIT)
    with HubServer({"MLLMMU/MLLMU-Bench": bench, "MLLMMU/baseline_train_split": baseline}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def hub_cfg(revision=BENCH_COMMIT, baseline_revision=None):
    return {"source": "hub", "hub": {"repo_id": "MLLMMU/MLLMU-Bench", "revision": revision,
                                     "baseline_repo_id": "MLLMMU/baseline_train_split",
                                     "baseline_revision": baseline_revision}}


def same_files(a, b):
    fa = {str(p.relative_to(a)): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    fb = {str(p.relative_to(b)): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    return fa == fb


def test_pinned_download_is_byte_identical_and_recorded(hub, small_data, tmp_path, caplog):
    out = tmp_path / "mllmu"
    with caplog.at_level(logging.WARNING):
        result = prepare(hub_cfg(), out)
    assert same_files(out / "MLLMU-Bench", small_data / "MLLMU-Bench")
    assert same_files(out / "baseline_train_split", small_data / "baseline_train_split")
    assert not (out / "MLLMU-Bench" / "README.md").exists() and not (out / "MLLMU-Bench" / "extra").exists()
    assert not list(out.rglob(".cache")) and not list(tmp_path.glob(".*download*"))
    bench, baseline = result["sources"]["bench"], result["sources"]["baseline"]
    assert bench["commit"] == BENCH_COMMIT and bench["requested"] == BENCH_COMMIT
    # the unpinned baseline repo: resolved, recorded, and a loud warning naming the hash to pin
    assert baseline["commit"] == BASELINE_COMMIT and baseline["requested"] is None
    assert any("NOT PINNED" in r.message and BASELINE_COMMIT in r.message for r in caplog.records)
    assert manifest.load(out / "manifest.json")["files"][f"MLLMU-Bench/{FULL}"]["sha256"] == hashlib.sha256(
        (small_data / "MLLMU-Bench" / FULL).read_bytes()).hexdigest()
    # every GET used the resolved commit, never a branch name
    assert all(BENCH_COMMIT in path or BASELINE_COMMIT in path for method, path, _ in hub.requests
               if "/resolve/" in path)
    assert len(read_benchmark_folder(out / "MLLMU-Bench/Test_Set")[0]) == 20


def test_wrong_revision_is_one_clear_error(hub, tmp_path):
    out = tmp_path / "mllmu"
    with pytest.raises(FetchError, match=r"no revision '0{40}'.*data\.hub\.revision"):
        prepare(hub_cfg(revision="0" * 40), out)
    assert not out.exists()


def test_revision_without_a_needed_folder_is_refused(hub, tmp_path):
    with pytest.raises(FetchError, match=r"Test_Set"):
        prepare(hub_cfg(revision=OLD_COMMIT), tmp_path / "mllmu")
    assert not (tmp_path / "mllmu").exists()


def test_interrupted_download_resumes_with_a_range_request(hub, tmp_path):
    # huggingface_hub writes in 10 MiB chunks, so a resume needs a file past one chunk (real shards are ~337 MB)
    big = random.Random(0).randbytes(24 << 20)
    hub.repos["MLLMMU/MLLMU-Bench"].commits[BENCH_COMMIT][FULL] = big
    hub.interrupt.add(FULL)
    out = tmp_path / "mllmu"
    prepare(hub_cfg(), out)
    assert not hub.interrupt  # the fault fired: half the body, then the connection dropped
    ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith(FULL)]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1] == "bytes=10485760-"
    assert (out / "MLLMU-Bench" / FULL).read_bytes() == big
    manifest.verify(out)


def test_content_that_does_not_match_the_hub_is_never_accepted(hub, tmp_path):
    hub.corrupt.add(FULL)  # right size, wrong bytes: only the sha256 check can tell
    out = tmp_path / "mllmu"
    with pytest.raises(FetchError, match=r"Full_Set/train-00000-of-00001.parquet.*sha256"):
        prepare(hub_cfg(), out)
    assert not out.exists()


def test_manifest_stops_a_run_on_changed_missing_or_extra_files(small_data, tmp_path):
    out = tmp_path / "demo"
    prepare({"source": "synthetic", "synthetic": {"num_fictitious": 20, "num_celebrities": 6, "seed": 3}}, out)
    assert same_files(out / "MLLMU-Bench", small_data / "MLLMU-Bench")
    manifest.verify(out)
    full = out / "MLLMU-Bench" / FULL
    read_benchmark_folder(full.parent)  # fine as prepared
    original = full.read_bytes()
    full.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, one bit changed
    with pytest.raises(ManifestError, match=r"Full_Set/train-00000-of-00001.parquet: content differs"):
        read_benchmark_folder(full.parent)
    full.write_bytes(original)
    read_benchmark_folder(full.parent)
    retain = out / "baseline_train_split/retain_95/train-00000-of-00001.parquet"
    shutil.copy(retain, retain.with_name("train-00001-of-00001.parquet"))
    with pytest.raises(ManifestError, match=r"retain_95/train-00001-of-00001.parquet: not in"):
        read_training_folder(retain.parent)
    retain.with_name("train-00001-of-00001.parquet").unlink()
    (out / "MLLMU-Bench/Test_Set/train-00001-of-00002.parquet").unlink()
    with pytest.raises(ManifestError, match=r"Test_Set/train-00001-of-00002.parquet: listed in .* but missing"):
        manifest.verify(out)
    (out / "manifest.json").unlink()
    with pytest.raises(ManifestError, match=r"no manifest.json"):
        manifest.verify(out)
