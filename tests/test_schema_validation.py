"""Bad input gives one clear error naming file, row/ID and field; item-level problems skip one item, counted."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmunlearn.data.schema import DataError, read_benchmark_folder, read_training_folder


def _copy_with(src_folder, dst_folder, mutate):
    dst_folder.mkdir(parents=True)
    src = next(src_folder.glob("*.parquet"))
    rows = pq.read_table(src).to_pylist()
    schema = pq.read_schema(src)
    table = mutate(rows, schema)
    pq.write_table(table, dst_folder / src.name)
    return dst_folder / src.name


def test_missing_column_is_fatal_and_named(small_data, tmp_path):
    f = _copy_with(small_data / "MLLMU-Bench/Full_Set", tmp_path / "Full_Set",
                   lambda rows, schema: pa.Table.from_pylist(rows, schema=schema).drop_columns(["Mask_Task"]))
    with pytest.raises(DataError) as err:
        read_benchmark_folder(f.parent)
    assert str(f) in str(err.value) and "Mask_Task" in str(err.value) and "missing column" in str(err.value)


def test_corrupt_image_names_row_id_and_field(small_data, tmp_path):
    def corrupt(rows, schema):
        rows[2]["image"]["bytes"] = b"\x89PNG not really"
        return pa.Table.from_pylist(rows, schema=schema)

    f = _copy_with(small_data / "MLLMU-Bench/Full_Set", tmp_path / "Full_Set", corrupt)
    with pytest.raises(DataError) as err:
        read_benchmark_folder(f.parent, decode_images=True)
    msg = str(err.value)
    assert "row 2" in msg and "field 'image'" in msg and "cannot be decoded" in msg


def test_wrong_nested_type_is_fatal(small_data, tmp_path):
    def wrong(rows, schema):
        for r in rows:
            r["Generation_Task"] = "not a list"
        return pa.Table.from_pylist(rows)

    f = _copy_with(small_data / "MLLMU-Bench/Full_Set", tmp_path / "Full_Set", wrong)
    with pytest.raises(DataError, match="Generation_Task"):
        read_benchmark_folder(f.parent)


def test_bad_answer_key_and_missing_blank_skip_one_item(small_data, tmp_path):
    def bad(rows, schema):
        rows[0]["Classification_Task"]["Image_Textual_Questions"][1]["Correct_Answer"] = "E"
        rows[1]["Mask_Task"][0]["Question"] = "No blank here."
        return pa.Table.from_pylist(rows, schema=schema)

    f = _copy_with(small_data / "MLLMU-Bench/Full_Set", tmp_path / "Full_Set", bad)
    profiles, reports = read_benchmark_folder(f.parent)
    rows = pq.read_table(f).to_pylist()
    assert len(profiles[rows[0]["ID"]].classification["image_text"]) == 4
    assert len(profiles[rows[1]["ID"]].cloze) == 3
    assert reports[0].skipped == {"Correct_Answer is not an option key": 1, "cloze question without its __ blank": 1}


def test_metadata_must_be_json(small_data, tmp_path):
    def bad(rows, schema):
        rows[1]["metadata"] = "{not json"
        return pa.Table.from_pylist(rows, schema=schema)

    f = _copy_with(small_data / "MLLMU-Bench/ft_Data", tmp_path / "ft_Data", bad)
    with pytest.raises(DataError, match=r"row 1 .*field 'metadata': not valid JSON"):
        read_training_folder(f.parent)


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no parquet file"):
        read_benchmark_folder(tmp_path)


def test_truncated_parquet_file_is_named(small_data, tmp_path):
    src = next((small_data / "MLLMU-Bench/Retain_Set").glob("*.parquet"))
    (tmp_path / "Retain_Set").mkdir()
    (tmp_path / "Retain_Set" / src.name).write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(DataError, match=r"Retain_Set/train-00000-of-00001.parquet, field '<file>': not a readable"):
        read_benchmark_folder(tmp_path / "Retain_Set")


def test_duplicated_id_and_empty_test_images_are_fatal(small_data, tmp_path):
    def dup(rows, schema):
        rows[4]["ID"] = rows[2]["ID"]
        return pa.Table.from_pylist(rows, schema=schema)

    f = _copy_with(small_data / "MLLMU-Bench/Full_Set", tmp_path / "Full_Set", dup)
    with pytest.raises(DataError, match=r"row 4 \(ID .*\), field 'ID': duplicated ID"):
        read_benchmark_folder(f.parent)

    def no_images(rows, schema):
        rows[1]["images"] = []
        return pa.Table.from_pylist(rows, schema=schema)

    f = _copy_with(small_data / "MLLMU-Bench/Test_Set", tmp_path / "Test_Set", no_images)
    with pytest.raises(DataError, match=r"row 1 .*field 'images': expected a non-empty list"):
        read_benchmark_folder(f.parent)
