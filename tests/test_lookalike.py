"""Unit tests of the look-alike fixture itself (tests/lookalike.py), not of the project's readers."""
import hashlib
import io
import json
import re
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lookalike import inject_defect, write_lookalike

# The expected types, spelled out again here rather than imported, so a slip in lookalike.py shows.
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
MCQ = pa.struct([("Question", pa.string()), ("Options", pa.struct([(k, pa.string()) for k in "ABCD"])),
                 ("Correct_Answer", pa.string())])
CLASSIFICATION = pa.struct([("Image_Textual_Questions", pa.list_(MCQ)), ("Pure_Text_Questions", pa.list_(MCQ))])
OPEN_QA = pa.list_(pa.struct([("Question", pa.string()), ("Ground_Truth", pa.string()), ("Type", pa.string())]))
BENCH_TYPES = {"image": IMAGE, "ID": pa.string(), "Directory": pa.string(), "biography": pa.string(),
               "question": pa.string(), "answer": pa.string(), "Classification_Task": CLASSIFICATION,
               "Generation_Task": OPEN_QA, "Mask_Task": OPEN_QA}
BENCH = ["Full_Set", "Retain_Set", "forget_5", "forget_10", "forget_15", "retain_95", "retain_90", "retain_85"]
SPLITS = ["forget_5", "forget_10", "forget_15", "retain_95", "retain_90", "retain_85"]


@pytest.fixture(scope="module")
def lookalike(tmp_path_factory):
    root = tmp_path_factory.mktemp("lookalike")
    return root, write_lookalike(root)


def rows(root, folder):
    files = sorted((root / folder).glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def schema(root, folder, shard="train-00000-of-00001.parquet"):
    return pq.read_schema(root / folder / shard)


def decode(data):
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_layout_and_files(lookalike):
    root, info = lookalike
    expected = {f"MLLMU-Bench/{f}/train-00000-of-00001.parquet" for f in BENCH + ["ft_Data"]}
    expected |= {f"MLLMU-Bench/Test_Set/train-0000{k}-of-00002.parquet" for k in (0, 1)}
    expected |= {f"baseline_train_split/{f}/train-00000-of-00001.parquet" for f in SPLITS}
    assert set(info["files"]) == expected
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == expected
    shards = [pq.read_metadata(root / "MLLMU-Bench/Test_Set" / f"train-0000{k}-of-00002.parquet").num_rows
              for k in (0, 1)]
    assert min(shards) > 0 and sum(shards) == 20
    assert pq.read_metadata(root / "MLLMU-Bench/Full_Set/train-00000-of-00001.parquet").num_row_groups > 1


@pytest.mark.parametrize("folder", BENCH)
def test_benchmark_schema(lookalike, folder):
    s = schema(lookalike[0], f"MLLMU-Bench/{folder}")
    assert {name: s.field(name).type for name in BENCH_TYPES} == BENCH_TYPES
    assert len(set(s.names) - set(BENCH_TYPES)) >= 2  # extra columns nobody reads
    assert "metadata" not in s.names


def test_test_set_schema(lookalike, tmp_path):
    root, _ = lookalike
    for k in (0, 1):
        s = schema(root, "MLLMU-Bench/Test_Set", f"train-0000{k}-of-00002.parquet")
        assert s.field("images").type == pa.list_(IMAGE) and "image" not in s.names and "biography" not in s.names
        assert s.field("Classification_Task").type == CLASSIFICATION and s.field("Mask_Task").type == OPEN_QA
    write_lookalike(tmp_path, n_fictitious=3, n_celebrities=1, test_set_biography=True, ratios=(10,))
    assert "biography" in schema(tmp_path, "MLLMU-Bench/Test_Set", "train-00001-of-00002.parquet").names


def test_training_schemas(lookalike):
    root, _ = lookalike
    ft = schema(root, "MLLMU-Bench/ft_Data")
    assert ft.field("image").type == IMAGE and ft.field("metadata").type == pa.string()
    assert {"ID", "biography"} <= set(ft.names)
    for folder in SPLITS:
        s = schema(root, f"baseline_train_split/{folder}")
        assert s.field("image").type == IMAGE and s.field("metadata").type == pa.string()
        assert "ID" not in s.names and "biography" not in s.names


def test_ids_and_splits(lookalike):
    root, info = lookalike
    fict, celeb = info["fictitious_ids"], info["celebrity_ids"]
    assert all(re.fullmatch(r"[1-9][0-9]*", i) for i in fict + celeb) and not set(fict) & set(celeb)
    assert fict != sorted(fict) and fict != sorted(fict, key=int)
    assert max(map(int, fict)) - min(map(int, fict)) + 1 > len(fict)  # not contiguous
    assert [r["ID"] for r in rows(root, "MLLMU-Bench/Full_Set")] == fict
    assert {r["ID"] for r in rows(root, "MLLMU-Bench/Retain_Set")} == set(celeb)
    assert {r["ID"] for r in rows(root, "MLLMU-Bench/Test_Set")} == set(fict)
    assert {r["ID"] for r in rows(root, "MLLMU-Bench/ft_Data")} == set(fict)
    for ratio, count in ((5, 1), (10, 2), (15, 3)):
        forget, retain = info["forget_ids"][ratio], info["retain_ids"][ratio]
        assert len(forget) == count and set(forget) | set(retain) == set(fict) and not set(forget) & set(retain)
        assert {r["ID"] for r in rows(root, f"MLLMU-Bench/forget_{ratio}")} == set(forget)
        assert {r["ID"] for r in rows(root, f"MLLMU-Bench/retain_{100 - ratio}")} == set(retain)
    assert set(info["forget_ids"][5]) <= set(info["forget_ids"][10]) <= set(info["forget_ids"][15])


def test_baseline_rows_join_to_full_set_by_image_bytes(lookalike):
    root, info = lookalike
    full = {r["image"]["bytes"]: r["ID"] for r in rows(root, "MLLMU-Bench/Full_Set")}
    for ratio in (5, 10, 15):
        for folder, ids in ((f"forget_{ratio}", info["forget_ids"][ratio]),
                            (f"retain_{100 - ratio}", info["retain_ids"][ratio])):
            got = rows(root, f"baseline_train_split/{folder}")
            assert sorted(full[r["image"]["bytes"]] for r in got) == sorted(ids)
            for r in got:
                qa = json.loads(r["metadata"])
                assert 5 <= len(qa) <= 8 and all(set(p) == {"Question", "Answer"} for p in qa)


def test_per_person_tasks(lookalike):
    root, info = lookalike
    for r in rows(root, "MLLMU-Bench/Full_Set") + rows(root, "MLLMU-Bench/Test_Set"):
        task = r["Classification_Task"]
        assert len(task["Image_Textual_Questions"]) == 5 and len(task["Pure_Text_Questions"]) == 5
        for q in task["Image_Textual_Questions"] + task["Pure_Text_Questions"]:
            assert q["Correct_Answer"] in "ABCD" and len(set(q["Options"].values())) == 4
        for col in ("Generation_Task", "Mask_Task"):
            assert sorted(q["Type"] for q in r[col]) == ["Image_Textual"] * 2 + ["Pure_Text"] * 2
        assert all("__" in q["Question"] for q in r["Mask_Task"])
        written = info["written_names"][r["ID"]]
        pure = [q["Question"] for q in task["Pure_Text_Questions"]]
        pure += [q["Question"] for col in ("Generation_Task", "Mask_Task") for q in r[col] if q["Type"] == "Pure_Text"]
        image = [q["Question"] for q in task["Image_Textual_Questions"]]
        image += [q["Question"] for c in ("Generation_Task", "Mask_Task") for q in r[c] if q["Type"] == "Image_Textual"]
        assert all(written in q for q in pure) and not any(written in q for q in image)


def test_test_set_is_paraphrased_with_other_images(lookalike):
    root, info = lookalike
    full = {r["ID"]: r for r in rows(root, "MLLMU-Bench/Full_Set")}
    for r in rows(root, "MLLMU-Bench/Test_Set"):
        assert 2 <= len(r["images"]) <= 3 and len(r["images"]) == info["test_images"][r["ID"]]
        assert full[r["ID"]]["image"]["bytes"] not in {i["bytes"] for i in r["images"]}
        for modality in ("Image_Textual_Questions", "Pure_Text_Questions"):
            new, old = (x["Classification_Task"][modality] for x in (r, full[r["ID"]]))
            assert all(a["Question"] != b["Question"] for a, b in zip(new, old))


def test_name_and_biography_shapes(lookalike):
    root, info = lookalike
    names = list(info["written_names"].values())
    assert any(re.search(r"[\u4e00-\u9fff]", n) for n in names) and any(re.search(r"[\u0400-\u04ff]", n) for n in names)
    for needle in ("-", "'", "Dr. ", "Prof. ", "J. R. ", " van der ", " de la ", "ü", "é"):
        assert any(needle in n for n in names), needle
    assert info["names"][next(i for i, n in info["written_names"].items() if n == "Dr. Jane Roe")] == "Jane Roe"
    bios = {r["ID"]: r["biography"] for r in rows(root, "MLLMU-Bench/Full_Set")}
    assert any(b.startswith("Born in ") for b in bios.values())
    assert any(re.match(r"Dr\. .+, a cardiologist,", b) for b in bios.values())
    assert len(set(info["bio_forms"].values())) >= 5
    surname_only = info["surname_only_id"]
    assert info["names"][surname_only] not in bios[surname_only] and bios[surname_only].startswith("Ms. Whitfield")


def test_images_decode_with_declared_specs(lookalike):
    root, info = lookalike
    structs = [r["image"] for f in BENCH + ["ft_Data"] for r in rows(root, f"MLLMU-Bench/{f}")]
    structs += [i for r in rows(root, "MLLMU-Bench/Test_Set") for i in r["images"]]
    seen = {}
    for s in structs:
        digest = hashlib.sha1(s["bytes"]).hexdigest()
        img, spec = decode(s["bytes"]), info["images"][digest]
        assert (img.format, img.mode, img.size) == (spec["format"], spec["mode"], spec["size"])
        seen[digest] = spec
    assert len(seen) == len(info["images"]) == 20 + 6 + sum(info["test_images"].values())  # all distinct
    assert {s["mode"] for s in seen.values()} == {"RGB", "L", "RGBA", "P"}
    assert {s["format"] for s in seen.values()} == {"PNG", "JPEG"}
    assert {s["path"] is None for s in structs} == {True, False}


def test_same_seed_same_files(tmp_path):
    a = write_lookalike(tmp_path / "a", n_fictitious=4, n_celebrities=1, seed=5)
    b = write_lookalike(tmp_path / "b", n_fictitious=4, n_celebrities=1, seed=5)
    assert a["files"] == b["files"] and a["forget_ids"] == b["forget_ids"]
    for f in a["files"]:
        assert pq.read_table(tmp_path / "a" / f).equals(pq.read_table(tmp_path / "b" / f))


# --- inject_defect ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    write_lookalike(root, n_fictitious=6, n_celebrities=2, seed=1)
    return root


def broken(pristine, tmp_path, kind, folder):
    root = tmp_path / "copy"
    shutil.copytree(pristine, root)
    out = inject_defect(root, kind, folder)
    changed = [p.relative_to(root) for p in root.rglob("*.parquet")
               if p.read_bytes() != (pristine / p.relative_to(root)).read_bytes()]
    assert changed == [out["file"].relative_to(root)]
    before, after = pq.read_table(pristine / changed[0]), pq.read_table(out["file"])
    assert before.num_rows == after.num_rows
    return out, before, after


def differing(before, after):
    """(column, row) pairs whose values differ, over the columns both tables have."""
    common = [c for c in before.column_names if c in after.column_names]
    b, a = before.select(common).to_pylist(), after.select(common).to_pylist()
    return {(c, i) for i in range(len(b)) for c in common if b[i][c] != a[i][c]}


@pytest.mark.parametrize("folder", ["MLLMU-Bench/Full_Set", "MLLMU-Bench/Test_Set", "MLLMU-Bench/ft_Data",
                                    "baseline_train_split/forget_10"])
def test_corrupt_image(pristine, tmp_path, folder):
    out, before, after = broken(pristine, tmp_path, "corrupt_image", folder)
    column = "images" if folder.endswith("Test_Set") else "image"
    assert differing(before, after) == {(column, out["row"])} and before.schema == after.schema
    value = after.to_pylist()[out["row"]][column]
    element = re.fullmatch(r"images\[(\d+)\]\.bytes", out["field"])
    data = value[int(element.group(1))]["bytes"] if column == "images" else value["bytes"]
    assert out["field"] == ("image.bytes" if column == "image" else element.group(0))
    with pytest.raises(OSError):  # PIL.UnidentifiedImageError is an OSError too
        decode(data).convert("RGB")
    assert out["id"] == (None if folder.startswith("baseline") else after.to_pylist()[out["row"]]["ID"])
    if folder.endswith("Test_Set"):
        assert out["file"].name == "train-00001-of-00002.parquet"


@pytest.mark.parametrize("folder, column", [("MLLMU-Bench/Full_Set", "Classification_Task"),
                                            ("MLLMU-Bench/Test_Set", "images"), ("MLLMU-Bench/ft_Data", "metadata"),
                                            ("baseline_train_split/retain_90", "metadata")])
def test_missing_column(pristine, tmp_path, folder, column):
    out, before, after = broken(pristine, tmp_path, "missing_column", folder)
    assert out["field"] == column and set(before.column_names) - set(after.column_names) == {column}
    assert len(after.column_names) == len(before.column_names) - 1 and not differing(before, after)


@pytest.mark.parametrize("folder", ["MLLMU-Bench/forget_15", "MLLMU-Bench/Test_Set"])
def test_wrong_nested_type_in_benchmark(pristine, tmp_path, folder):
    out, before, after = broken(pristine, tmp_path, "wrong_nested_type", folder)
    assert {c for c, _ in differing(before, after)} == {"Classification_Task"}
    assert [f.name for f in before.schema if before.schema.field(f.name).type != after.schema.field(f.name).type] \
        == ["Classification_Task"]
    options = after.to_pylist()[0]["Classification_Task"]["Image_Textual_Questions"][0]["Options"]
    assert isinstance(options, list) and len(options) == 4


def test_wrong_nested_type_in_training(pristine, tmp_path):
    out, before, after = broken(pristine, tmp_path, "wrong_nested_type", "baseline_train_split/forget_15")
    assert differing(before, after) == {("metadata", out["row"])} and out["id"] is None
    assert all(isinstance(p, list) for p in json.loads(after.to_pylist()[out["row"]]["metadata"]))


def test_unnameable(pristine, tmp_path):
    out, before, after = broken(pristine, tmp_path, "unnameable", "MLLMU-Bench/Full_Set")
    row = out["row"]
    assert {i for _, i in differing(before, after)} == {row}
    old, new = before.to_pylist()[row], after.to_pylist()[row]
    assert new["ID"] == out["id"] and new["image"] == old["image"]
    new_task, old_task = new["Classification_Task"], old["Classification_Task"]
    assert new_task["Image_Textual_Questions"] == old_task["Image_Textual_Questions"]
    assert [q["Correct_Answer"] for q in new_task["Pure_Text_Questions"]] == \
        [q["Correct_Answer"] for q in old_task["Pure_Text_Questions"]]
    written = old["Classification_Task"]["Pure_Text_Questions"][0]["Question"][len("What is "):-len("'s occupation?")]
    parts = [w for w in written.replace("-", " ").split() if len(w) > 2 and not w.endswith(".")]
    text = json.dumps({k: new[k] for k in ("biography", "question", "answer", "Classification_Task",
                                            "Generation_Task", "Mask_Task")}, ensure_ascii=False)
    assert written in json.dumps(old, default=str, ensure_ascii=False)
    assert parts and not any(p in text for p in parts)
    assert new["biography"].startswith("Born in ")
    assert "this individual" in new["Classification_Task"]["Pure_Text_Questions"][1]["Question"]


def test_unknown_kind_and_wrong_folder(pristine):
    with pytest.raises(ValueError):
        inject_defect(pristine, "typo", "MLLMU-Bench/Full_Set")
    with pytest.raises(ValueError):
        inject_defect(pristine, "unnameable", "baseline_train_split/forget_5")
