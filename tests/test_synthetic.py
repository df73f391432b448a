"""The synthetic twin writes the real dataset's folders, files and parquet schema (spec §1)."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from mmunlearn.data.names import name_from_questions
from mmunlearn.data.schema import IMAGE_TEXT, TEXT, decode_image, read_benchmark_folder, read_training_folder
from mmunlearn.data.synthetic import ATTRIBUTES, VALUES_AVAILABLE, SyntheticSpec, generate

BENCH_FOLDERS = ["ft_Data", "Full_Set", "Test_Set", "Retain_Set", "forget_5", "forget_10", "forget_15",
                 "retain_95", "retain_90", "retain_85"]


def test_folders_and_file_names(small_data):
    for folder in BENCH_FOLDERS:
        files = sorted(p.name for p in (small_data / "MLLMU-Bench" / folder).glob("*.parquet"))
        expected = (["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"] if folder == "Test_Set"
                    else ["train-00000-of-00001.parquet"])
        assert files == expected, folder
    for folder in ["forget_5", "forget_10", "forget_15", "retain_95", "retain_90", "retain_85"]:
        assert (small_data / "baseline_train_split" / folder / "train-00000-of-00001.parquet").is_file()


def _field_types(schema: pa.Schema) -> dict:
    return {f.name: f.type for f in schema}


def test_benchmark_schema_matches_spec(small_data):
    schema = pq.read_schema(small_data / "MLLMU-Bench/Full_Set/train-00000-of-00001.parquet")
    types = _field_types(schema)
    assert {"image", "ID", "Directory", "biography", "question", "answer", "Classification_Task",
            "Generation_Task", "Mask_Task"} <= set(types)
    assert types["image"] == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    mc = types["Classification_Task"]
    assert [f.name for f in mc] == ["Image_Textual_Questions", "Pure_Text_Questions"]
    item = mc.field("Image_Textual_Questions").type.value_type
    assert [f.name for f in item] == ["Question", "Options", "Correct_Answer"]
    assert [f.name for f in item.field("Options").type] == ["A", "B", "C", "D"]
    for col in ("Generation_Task", "Mask_Task"):
        assert [f.name for f in types[col].value_type] == ["Question", "Ground_Truth", "Type"]
    test = _field_types(pq.read_schema(small_data / "MLLMU-Bench/Test_Set/train-00000-of-00002.parquet"))
    assert "image" not in test and test["images"] == pa.list_(types["image"])
    train = _field_types(pq.read_schema(small_data / "MLLMU-Bench/ft_Data/train-00000-of-00001.parquet"))
    assert train["metadata"] == pa.string() and train["image"] == types["image"]


def test_per_profile_counts_and_sizes(small_data):
    full, _ = read_benchmark_folder(small_data / "MLLMU-Bench/Full_Set")
    assert len(full) == 20
    for p in full.values():
        assert len(p.classification[IMAGE_TEXT]) == 5 and len(p.classification[TEXT]) == 5
        assert sorted(q.modality for q in p.generation) == [IMAGE_TEXT] * 2 + [TEXT] * 2
        assert sorted(q.modality for q in p.cloze) == [IMAGE_TEXT] * 2 + [TEXT] * 2
    assert len(read_benchmark_folder(small_data / "MLLMU-Bench/forget_10")[0]) == 2
    assert len(read_benchmark_folder(small_data / "MLLMU-Bench/retain_90")[0]) == 18
    assert len(read_benchmark_folder(small_data / "MLLMU-Bench/Retain_Set")[0]) == 6


def test_images_identify_people_and_questions_do_not_name_them(small_data):
    full, _ = read_benchmark_folder(small_data / "MLLMU-Bench/Full_Set")
    test, _ = read_benchmark_folder(small_data / "MLLMU-Bench/Test_Set")
    assert len({p.image for p in full.values()}) == len(full)  # distinct per person
    for pid, p in full.items():
        name = name_from_questions(p.text_questions(), p.biography)
        assert name and name in p.biography
        assert all(name not in q.question for q in p.classification[IMAGE_TEXT])
        assert all(name in q.question for q in p.classification[TEXT])
        assert all(img != p.image for img in test[pid].images)  # other photos of the same person
        assert decode_image(test[pid].images[0]).size == decode_image(p.image).size


def test_evaluation_items_are_not_training_items(small_data):
    full, _ = read_benchmark_folder(small_data / "MLLMU-Bench/Full_Set")
    test, _ = read_benchmark_folder(small_data / "MLLMU-Bench/Test_Set")
    train, _ = read_training_folder(small_data / "MLLMU-Bench/ft_Data")
    train_q = {qa.question for p in train for qa in p.qa}
    eval_q = {q.question for p in full.values() for qs in p.classification.values() for q in qs}
    test_q = {q.question for p in test.values() for qs in p.classification.values() for q in qs}
    assert train_q.isdisjoint(eval_q) and train_q.isdisjoint(test_q) and eval_q.isdisjoint(test_q)
    # the Test_Set re-draws option orders: across all questions, not every order can be the same
    same = [a.options == b.options for pid in full for a, b in
            zip(full[pid].classification[IMAGE_TEXT], test[pid].classification[IMAGE_TEXT])]
    assert not all(same)


def test_metadata_is_a_json_list_of_qa(small_data):
    table = pq.read_table(small_data / "baseline_train_split/forget_15/train-00000-of-00001.parquet")
    pairs = json.loads(table.column("metadata")[0].as_py())
    assert pairs and set(pairs[0]) == {"Question", "Answer"}


def test_deterministic(tmp_path):
    spec = SyntheticSpec(num_fictitious=8, num_celebrities=4, forget_ratios=(25,), seed=7)
    generate(tmp_path / "a", spec)
    generate(tmp_path / "b", spec)
    for f in sorted((tmp_path / "a").rglob("*.parquet")):
        other = tmp_path / "b" / f.relative_to(tmp_path / "a")
        assert pq.read_table(f).equals(pq.read_table(other)), f


def test_full_size_twin_has_the_papers_counts(tmp_path):
    """500 fictitious + 153 celebrities (more than two-part names allow: middle initials kick in)."""
    from mmunlearn.data.schema import read_benchmark_folder

    root = tmp_path / "full"
    generate(root, SyntheticSpec())
    bench = root / "MLLMU-Bench"
    full = read_benchmark_folder(bench / "Full_Set")[0]
    celebs = read_benchmark_folder(bench / "Retain_Set")[0]
    assert (len(full), len(celebs)) == (500, 153)
    names = [name_from_questions(p.text_questions(), p.biography) for p in [*full.values(), *celebs.values()]]
    assert len(set(names)) == 653 and all(names)
    assert [len(read_benchmark_folder(bench / f"forget_{r}")[0]) for r in (5, 10, 15)] == [25, 50, 75]
    assert [len(read_benchmark_folder(bench / f"retain_{r}")[0]) for r in (95, 90, 85)] == [475, 450, 425]
    # the paper counts 1,153 profile instances: Full_Set + Test_Set + Retain_Set (spec 1.4)
    instances = [*full.values(), *read_benchmark_folder(bench / "Test_Set")[0].values(), *celebs.values()]
    assert len(instances) == 1_153
    assert sum(len(q) for p in instances for q in p.classification.values()) == 11_530
    assert sum(len(p.generation) for p in instances) == sum(len(p.cloze) for p in instances) == 4_612


def _facts_and_options(root) -> tuple[set, set]:
    """Every correct answer and every option shown in Full_Set's text-only multiple-choice questions."""
    full, _ = read_benchmark_folder(root / "MLLMU-Bench/Full_Set")
    answers, options = set(), set()
    for p in full.values():
        for q in p.classification[TEXT]:
            answers.add(q.options[q.answer])
            options.update(q.options.values())
            assert len(set(q.options.values())) == 4, q  # an answer and three distinct distractors
    return answers, options


def test_values_per_attribute_sets_how_many_people_share_a_fact(tmp_path):
    """Facts and distractors come from the first n values of each attribute: the default keeps the ten the
    twin always had; more values make each fact belong to fewer people (the demo: README "Demo results")."""
    first_ten = {v for spec in ATTRIBUTES.values() for v in spec["values"][:10]}
    every_value = {v for spec in ATTRIBUTES.values() for v in spec["values"]}
    assert len(every_value) == 5 * 40
    generate(tmp_path / "ten", SyntheticSpec(num_fictitious=60, num_celebrities=4, forget_ratios=(30,)))
    answers, options = _facts_and_options(tmp_path / "ten")
    assert answers <= first_ten and options <= first_ten
    generate(tmp_path / "forty", SyntheticSpec(num_fictitious=60, num_celebrities=4, forget_ratios=(30,),
                                               values_per_attribute=40))
    answers, options = _facts_and_options(tmp_path / "forty")
    assert options <= every_value
    assert len(answers - first_ten) > 60  # 300 facts drawn from 40 values per attribute: most beyond the ten


def test_values_per_attribute_out_of_range_names_the_field():
    for bad in (3, 41):
        with pytest.raises(ValueError, match=r"data\.synthetic\.values_per_attribute: " + str(bad)):
            SyntheticSpec(values_per_attribute=bad)
    # the config schema rejects the same values before any job runs: its bound is the twin's pool size
    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    bound = schema["properties"]["data"]["properties"]["synthetic"]["properties"]["values_per_attribute"]
    assert (bound["minimum"], bound["maximum"]) == (4, VALUES_AVAILABLE)


def test_face_grid_sets_how_many_colours_a_face_has(tmp_path):
    """Each face is face_grid x face_grid cells of the person's own colours: 4 (the default) puts one colour in
    each 8-pixel patch the tiny vision tower sees; 16 puts sixteen, so another photo of the person is told
    apart by more than three numbers per patch (README "Demo results")."""
    def colours(root):
        full, _ = read_benchmark_folder(root / "MLLMU-Bench/Full_Set")
        return [len(decode_image(p.image).getcolors(32 * 32)) for p in full.values()]
    generate(tmp_path / "four", SyntheticSpec(num_fictitious=8, num_celebrities=4, forget_ratios=(25,)))
    generate(tmp_path / "sixteen", SyntheticSpec(num_fictitious=8, num_celebrities=4, forget_ratios=(25,),
                                                 face_grid=16))
    assert max(colours(tmp_path / "four")) <= 16
    assert min(colours(tmp_path / "sixteen")) > 16 * 8  # 256 random cells: few repeat
    for bad in (0, 33):
        with pytest.raises(ValueError, match=r"data\.synthetic\.face_grid: " + str(bad)):
            SyntheticSpec(face_grid=bad)
