"""Training sets per stage, and the join of training rows to their Full_Set profile (ID, else image)."""
import io
import shutil

import pyarrow as pa

import pyarrow.parquet as pq
import pytest
from PIL import Image

from mmunlearn.data.schema import DataError
from mmunlearn.data.sets import finetune_sets, folder_set, split_sets, vanilla_set
from mmunlearn.data.splits import build_split
from mmunlearn.train.examples import items_for
from mmunlearn.models.prompts import qa_prompt

FEWSHOT = {"classification": 1, "cloze": 2}


def _twin_copy(small_data, tmp_path):
    root = tmp_path / "twin"
    shutil.copytree(small_data, root)
    return root


def test_vanilla_set_is_every_fictitious_profile_with_names(small_data):
    profiles = vanilla_set(small_data)
    assert len(profiles) == 20 and all(p.name and p.qa for p in profiles)


@pytest.mark.parametrize("ratio", [10, 25])  # 10: published baseline folders; 25: derived from ft_Data by ID
def test_split_sets_follow_the_split(small_data, ratio):
    split = build_split(small_data / "MLLMU-Bench", ratio, seed=2, fewshot=FEWSHOT)
    sets = split_sets(small_data, split)
    assert sorted(p.id for p in sets["forget"]) == split["forget_ids"]
    assert sorted(p.id for p in sets["retain"]) == split["retain_ids"]
    assert split["source"] == ("published" if ratio == 10 else "derived")


def test_finetune_sets_are_each_stages_people_and_its_replay(small_data):
    """What the fine-tuning job and the preflight train on: vanilla, all but the holdout; the oracle, the split's
    retain people; the replay corpus only when its fraction is above 0; an unknown stage named."""
    split = build_split(small_data / "MLLMU-Bench", 10, seed=2, fewshot=FEWSHOT)
    everyone = [p.id for p in vanilla_set(small_data)]
    mix = {"replay_data": "Pretrain_Set", "replay_fraction": 0.2}
    people, replay = finetune_sets(small_data, "vanilla", mix, holdout=everyone[:3])
    assert [p.id for p in people] == everyone[3:]
    assert [p.id for p in replay] == [p.id for p in folder_set(small_data, "Pretrain_Set")] and replay
    people, replay = finetune_sets(small_data, "oracle", {**mix, "replay_fraction": 0.0}, split=split)
    assert sorted(p.id for p in people) == split["retain_ids"] and replay == []
    with pytest.raises(ValueError, match="vanilla or oracle, got 'forget'"):
        finetune_sets(small_data, "forget", mix)


def test_training_rows_without_id_or_biography_are_joined_by_image(small_data, tmp_path):
    """The real training files may carry only image + metadata (spec §1.1, UNCONFIRMED)."""
    root = _twin_copy(small_data, tmp_path)
    for f in root.glob("**/ft_Data/*.parquet"):
        pq.write_table(pq.read_table(f).drop_columns(["ID", "biography"]), f)
    split = build_split(root / "MLLMU-Bench", 25, seed=2, fewshot=FEWSHOT)
    sets = split_sets(root, split)
    assert sorted(p.id for p in sets["forget"]) == split["forget_ids"]
    reference = {p.id: p for p in vanilla_set(small_data)}
    for p in sets["forget"]:
        assert p.name == reference[p.id].name and p.qa == reference[p.id].qa
    # the text-only variant can name the person
    items = items_for(sets["forget"], "qa_text", qa_prompt, rng=None)
    assert items and all(not it.images for it in items)
    assert any(reference[sets["forget"][0].id].name in it.prompt for it in items)


def test_training_row_that_matches_no_profile_is_named(small_data, tmp_path):
    root = _twin_copy(small_data, tmp_path)
    f = next(root.glob("MLLMU-Bench/ft_Data/*.parquet"))
    table = pq.read_table(f).drop_columns(["ID"])
    rows = table.to_pylist()
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buf, format="PNG")  # nobody's face
    rows[3]["image"] = {"bytes": buf.getvalue(), "path": "x.png"}
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), f)
    with pytest.raises(DataError, match=r"ft_Data/train-00000-of-00001.parquet, row 3, field 'image'.*no ID and its image matches no Full_Set"):
        vanilla_set(root)


def test_published_baseline_folder_that_disagrees_with_the_split_is_an_error(small_data, tmp_path):
    root = _twin_copy(small_data, tmp_path)
    shutil.copy(next(root.glob("baseline_train_split/forget_5/*.parquet")),
                next(root.glob("baseline_train_split/forget_10/*.parquet")))
    split = build_split(root / "MLLMU-Bench", 10, seed=2, fewshot=FEWSHOT)
    with pytest.raises(DataError, match=r"baseline_train_split/forget_10, field 'ID': its 1 profiles are not MLLMU-Bench/forget_10's 2"):
        split_sets(root, split)


def test_generation_and_cloze_training_formats_use_the_eval_prompts(small_data):
    """``gen`` / ``cloze`` put a QA pair in the generation and cloze tasks' prompts (with image, or naming the
    person), answered with the QA answer."""
    from mmunlearn.models import prompts

    people = vanilla_set(small_data)[:2]
    qa = people[0].qa[0]
    gen = items_for(people, "gen", qa_prompt, rng=None)
    assert gen[0].prompt == prompts.generation_prompt(qa.question, True) and gen[0].answer == qa.answer
    assert gen[0].images == (people[0].image,)
    cloze = items_for(people, "cloze_text", qa_prompt, rng=None)
    name = people[0].name
    assert cloze[0].prompt.startswith("USER:\n") and "[Blank]" in cloze[0].prompt and name in cloze[0].prompt
    assert cloze[0].answer == " " + qa.answer and not cloze[0].images
    assert prompts.CLOZE_INSTRUCTION in cloze[0].prompt
    assert len(gen) == len(cloze) == sum(len(p.qa) for p in people)
    with pytest.raises(ValueError, match="unknown training format 'essay'"):
        items_for(people, "essay", qa_prompt, rng=None)
