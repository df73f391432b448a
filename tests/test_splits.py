import json

import pytest

from mmunlearn.data.splits import build_split, forget_ids_for_ratio, read_ids


@pytest.mark.parametrize("ratio", [5, 10, 15])
def test_published_split_is_used_and_complement(small_data, ratio):
    bench = small_data / "MLLMU-Bench"
    split = build_split(bench, ratio, seed=1, fewshot={"classification": 1, "cloze": 2})
    assert split["source"] == "published"
    assert split["forget_ids"] == sorted(read_ids(bench / f"forget_{ratio}"))
    all_ids = set(read_ids(bench / "Full_Set"))
    forget, retain = set(split["forget_ids"]), set(split["retain_ids"])
    assert forget.isdisjoint(retain) and forget | retain == all_ids
    assert set(split["test_image_index"]) == forget
    assert set(split["fewshot_ids"]["forget"]["classification"]) <= forget
    assert len(split["fewshot_ids"]["retain"]["cloze"]) == 2


def test_derived_ratios_are_nested_and_seeded(small_data):
    bench = small_data / "MLLMU-Bench"
    all_ids = read_ids(bench / "Full_Set")
    small, src = forget_ids_for_ratio(bench, 20, all_ids, seed=4)
    large, _ = forget_ids_for_ratio(bench, 40, all_ids, seed=4)
    assert src == "derived" and len(small) == 4 and len(large) == 8 and set(small) <= set(large)
    assert forget_ids_for_ratio(bench, 20, all_ids, seed=4)[0] == small
    split = build_split(bench, 20, seed=4, fewshot={"classification": 1})
    assert set(split["forget_ids"]) | set(split["retain_ids"]) == set(all_ids)
    assert not set(split["forget_ids"]) & set(split["retain_ids"])
    json.dumps(split)  # serialisable as written beside the data


def test_same_seed_same_choices(small_data):
    bench = small_data / "MLLMU-Bench"
    a = build_split(bench, 10, seed=9, fewshot={"classification": 1})
    b = build_split(bench, 10, seed=9, fewshot={"classification": 1})
    assert a == b
