"""sync_times on a hand-made recorded DAG: outputs end up later than their inputs and than every source file,
folders included; unrecorded files are left alone."""
import json
import os
from base64 import urlsafe_b64encode

from mmunlearn.versioning import levels, sync_times


def record(root, path, inputs):
    name = urlsafe_b64encode(path.encode()).decode()
    meta = root / ".snakemake/metadata"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / name).write_text(json.dumps({"rule": "r", "input": inputs}))


def test_outputs_follow_their_inputs_and_the_sources(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules/a.smk").write_text("rule")
    for rel in ("data/demo/x.parquet", "data/splits/s.json", "results/models/m/run.json", "results/summary.csv",
                "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    record(tmp_path, "data/demo", [])
    record(tmp_path, "data/splits/s.json", ["data/demo"])
    record(tmp_path, "results/models/m", ["data/demo", "data/splits/s.json"])
    record(tmp_path, "results/summary.csv", ["results/models/m/run.json"])  # a file inside an output folder
    # what a pull leaves: sources newer than results, results in arbitrary order
    for i, rel in enumerate(["results/summary.csv", "results/models/m/run.json", "data/splits/s.json",
                             "data/demo/x.parquet", "notes.txt"]):
        os.utime(tmp_path / rel, (1000 + i, 1000 + i))
    os.utime(tmp_path / "rules/a.smk", (5000, 5000))

    assert levels({"a": [], "b": ["a"], "c": ["b/f", "a"]}) == {"a": 0, "b": 1, "c": 2}
    stats = sync_times(tmp_path, now=6000)
    assert stats["outputs"] == 4 and stats["levels"] == 4
    t = {rel: (tmp_path / rel).stat().st_mtime for rel in ("data/demo/x.parquet", "data/demo", "data/splits/s.json",
                                                            "results/models/m/run.json", "results/summary.csv")}
    assert 5000 < t["data/demo/x.parquet"] == t["data/demo"] < t["data/splits/s.json"] \
        < t["results/models/m/run.json"] < t["results/summary.csv"] <= 6000
    assert (tmp_path / "notes.txt").stat().st_mtime == 1004  # not a recorded output: untouched
