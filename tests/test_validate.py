"""The validation pass (data/validate.py) on the synthetic twin: required columns are what the code reads,
names come from the questions whatever the biography looks like, joins and splits are checked, and every
problem is one error naming file, row, ID and field. (tests/test_lookalike_data.py runs it on data written
independently of our generator.)"""
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmunlearn.data.names import name_from_questions
from mmunlearn.data.schema import DataError, read_benchmark_folder
from mmunlearn.data.sets import vanilla_set
from mmunlearn.data.validate import report_html, validate


@pytest.fixture
def twin(small_data, tmp_path):
    root = tmp_path / "twin"
    shutil.copytree(small_data, root)
    return root


def _rewrite(folder, edit):
    """Rewrite every parquet file of ``folder`` with ``edit(table) -> table``."""
    for f in sorted(folder.glob("*.parquet")):
        pq.write_table(edit(pq.read_table(f)), f)


def _names_by_id(root):
    full = read_benchmark_folder(root / "MLLMU-Bench/Full_Set")[0]
    return {pid: name_from_questions(p.text_questions(), p.biography) for pid, p in full.items()}


def test_facts_join_every_training_row_and_name_everyone(twin):
    facts = validate(twin, names_required=True, require_manifest=False)
    full_ids = set(read_benchmark_folder(twin / "MLLMU-Bench/Full_Set")[0])
    assert set(facts["training_rows"]["MLLMU-Bench/ft_Data"]) == full_ids
    assert set(facts["training_rows"]) >= {"baseline_train_split/forget_10", "baseline_train_split/retain_90"}
    assert set(facts["names"]) == full_ids and all(facts["names"].values())
    assert facts["report"]["MLLMU-Bench/Test_Set"]["rows"] == 20 and len(facts["report"]["MLLMU-Bench/Test_Set"]["files"]) == 2
    assert "<table" in report_html(facts)


def test_test_set_without_biography_is_accepted(twin):
    """Problem 1: nothing reads a biography from Test_Set, so its absence is fine (extra columns too)."""
    _rewrite(twin / "MLLMU-Bench/Test_Set",
             lambda t: t.drop_columns(["biography"]).append_column("extra", pa.array(["x"] * len(t))))
    facts = validate(twin, names_required=True, require_manifest=False)
    assert facts["report"]["MLLMU-Bench/Test_Set"]["rows"] == 20


def test_biographies_that_do_not_open_with_the_name(twin):
    """Problem 2: "Jane Roe was born in 1970 in Lyon. ..." used to stop every text-only job; names now come from
    the Pure_Text questions, so the biography's form does not matter, and the training items name the person."""
    expected = _names_by_id(twin)
    forms = ["Born in 1970 in Lyon, {n} became a baker.", "{n} was born in 1970 in Lyon.",
             "Dr. {n}, a cardiologist, lives in Paris.", "Ms. {s} grew up in Oslo."]

    def rebio(table):
        rows = table.to_pylist()
        for i, r in enumerate(rows):
            n = expected.get(str(r["ID"]), "Someone Else")
            r["biography"] = forms[i % len(forms)].format(n=n, s=n.split()[-1])
        return pa.Table.from_pylist(rows, schema=table.schema)

    for folder in ("MLLMU-Bench/Full_Set", "MLLMU-Bench/ft_Data"):
        _rewrite(twin / folder, rebio)
    facts = validate(twin, names_required=True, require_manifest=False)
    assert facts["names"] == expected
    profiles = vanilla_set(twin, facts)
    assert all(p.name == expected[p.id] for p in profiles)


def test_unnameable_person_is_an_error_naming_the_profile_unless_overridden(twin):
    full = twin / "MLLMU-Bench/Full_Set"
    expected = _names_by_id(twin)
    victim_row = 3
    victim = str(pq.read_table(full).column("ID")[victim_row])
    name = expected[victim]

    def anonymise(table):
        rows = table.to_pylist()
        r = rows[victim_row]
        for q in r["Classification_Task"]["Pure_Text_Questions"] + r["Generation_Task"] + r["Mask_Task"]:
            q["Question"] = q["Question"].replace(name, "this individual")
        r["biography"] = r["biography"].replace(name, "the person")
        return pa.Table.from_pylist(rows, schema=table.schema)

    _rewrite(full, anonymise)
    with pytest.raises(DataError) as err:
        validate(twin, names_required=True, require_manifest=False)
    msg = str(err.value)
    assert f"Full_Set/train-00000-of-00001.parquet, row {victim_row} (ID {victim})" in msg
    assert "Pure_Text_Questions" in msg and "data.names" in msg
    # a study without a text-only format only warns; an override names the person
    facts = validate(twin, names_required=False, require_manifest=False)
    assert facts["names"][victim] is None
    assert any(victim in w for w in facts["report"]["MLLMU-Bench/Full_Set"]["warnings"])
    facts = validate(twin, names_override={victim: "Ada Q. Lovelace"}, names_required=True, require_manifest=False)
    assert facts["names"][victim] == "Ada Q. Lovelace"


def test_skipped_items_are_listed_with_file_row_id_and_field(twin):
    def bad(table):
        rows = table.to_pylist()
        rows[1]["Classification_Task"]["Image_Textual_Questions"][2]["Correct_Answer"] = "E"
        return pa.Table.from_pylist(rows, schema=table.schema)

    _rewrite(twin / "MLLMU-Bench/Retain_Set", bad)
    facts = validate(twin, require_manifest=False)
    [item] = facts["report"]["MLLMU-Bench/Retain_Set"]["skipped"]
    assert item["row"] == 1 and item["field"] == "Classification_Task.Image_Textual_Questions[2]"
    assert item["id"] and item["file"].endswith("Retain_Set/train-00000-of-00001.parquet")
    assert item["reason"] == "Correct_Answer is not an option key"


def test_split_inconsistencies_are_errors(twin):
    # a retain folder that is not the complement of its forget folder
    _rewrite(twin / "MLLMU-Bench/retain_90", lambda t: t.slice(1))
    with pytest.raises(DataError, match=r"retain_90, field 'ID': not the complement of forget_10"):
        validate(twin, require_manifest=False)


def test_a_forget_person_missing_from_test_set_is_an_error(twin):
    forget = {str(i) for i in pq.read_table(next((twin / "MLLMU-Bench/forget_10").glob("*.parquet"))).column("ID").to_pylist()}
    _rewrite(twin / "MLLMU-Bench/Test_Set", lambda t: t.filter(pa.array([str(i) not in forget for i in t.column("ID").to_pylist()])))
    with pytest.raises(DataError, match=r"Test_Set, field 'ID': \d+ forget_\d+ IDs have no Test_Set row"):
        validate(twin, require_manifest=False)
