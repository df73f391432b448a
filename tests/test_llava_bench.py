"""LLaVA-Bench reviews (eval/llava_bench.py) against the reference protocol, LLaVA's eval_gpt_review_bench.py
``parse_score`` and summarize_gpt_review.py at 181a2f8: expected values are the reference's outputs for the same
inputs (a differential fuzz of 50,000 generated first lines found no line the reference reads as two scores in
0-10 that we read differently), except where the module docstring says we depart (failures are counted, not
averaged as -1)."""

import json

import pytest

from mmunlearn.eval.llava_bench import DEFAULT_RULES, load_rules, parse_review, relative_scores, review_prompt


@pytest.mark.parametrize("reply, reference, ours", [
    ("8 9\nAssistant 2 is more detailed.", (8.0, 9.0), (8.0, 9.0)),
    ("8,9", (8.0, 9.0), (8.0, 9.0)),
    ("7.5 6", (7.5, 6.0), (7.5, 6.0)),
    ("8, 9", None, (8.0, 9.0)),          # the reference splits "8  9" on single spaces: three parts, -1
    (" 8 9", None, (8.0, 9.0)),          # leading space: the reference again finds an empty part
    ("Scores: 8 9", None, None),
    ("8 9 10", None, None),
    ("", None, None),
    ("Assistant 1: 8\nAssistant 2: 9", None, None),
    ("80 90", (80.0, 90.0), None),       # off the 1-10 scale: the reference would average it in
])
def test_parse_review(reply, reference, ours):
    assert parse_review(reply) == ours
    if reference is not None:            # what the reference reads, we read the same (within the scale)
        assert ours is None or ours == reference


def test_relative_score_and_failures_are_counted_not_averaged():
    reviews = [("conv", (8.0, 6.0)), ("conv", (6.0, 6.0)), ("detail", (10.0, 5.0)), ("detail", None)]
    got = relative_scores(reviews)
    # the reference's number for the scored items: mean(ours) / mean(reference) x 100
    assert got["conv"]["score"] == pytest.approx(6.0 / 7.0 * 100) and got["conv"]["n"] == 2
    assert got["detail"] == {"score": 50.0, "reference": 10.0, "model": 5.0, "n": 1, "unscored": 1}
    assert got["all"]["score"] == pytest.approx((17 / 3) / 8 * 100) and got["all"]["unscored"] == 1
    # every call failed: the reference averages (-1, -1) and reports 100.0; we report no score
    assert relative_scores([("complex", None), ("complex", None)])["all"] == \
        {"score": None, "reference": None, "model": None, "n": 0, "unscored": 2}


def test_prompt_layout_and_rules_file(tmp_path):
    text = review_prompt(["A dog on a beach.", "The sun sets."], "What animal?", "A dog.", "A cat.", "conv",
                         DEFAULT_RULES)
    assert text.startswith("[Context]\nA dog on a beach.\nThe sun sets.\n\n[Question]\nWhat animal?\n\n")
    assert "[Assistant 1]\nA dog.\n\n[End of Assistant 1]\n\n[Assistant 2]\nA cat.\n\n[End of Assistant 2]" in text
    assert text.endswith(DEFAULT_RULES["llava_bench_conv"]["prompt"] + "\n\n")
    assert review_prompt("A dog on a beach.\nThe sun sets.", "What animal?", "A dog.", "A cat.", "conv",
                         DEFAULT_RULES) == text  # the caption as one string (the Hugging Face copy)
    # a user's rule.json in LLaVA's shape replaces ours
    rules = {f"llava_bench_{c}": {"role": "Reviewer", "prompt": f"rule {c}"} for c in ("conv", "detail", "complex")}
    path = tmp_path / "rule.json"
    path.write_text(json.dumps({**rules, "default": {"role": "Assistant", "prompt": "x"}}))
    assert "[Reviewer 2]\nA cat." in review_prompt([], "q", "r", "A cat.", "detail", load_rules(path))
    path.write_text(json.dumps({"llava_bench_conv": {"role": "Assistant"}}))
    with pytest.raises(ValueError, match="rule.json: 'llava_bench_conv' needs a 'role' and a 'prompt'"):
        load_rules(path)
    with pytest.raises(ValueError, match="category 'chart' has no rule"):
        review_prompt([], "q", "r", "a", "chart", DEFAULT_RULES)


def test_rows_are_checked_and_named():
    from mmunlearn.eval.llava_bench import parse_row
    row = {"question_id": 7, "question": "What is unusual?", "caption": "A man irons on a taxi.",
           "gpt_answer": "He irons on a moving taxi.", "category": "complex", "image": b"jpeg"}
    assert parse_row(row)["reference"] == "He irons on a moving taxi." and parse_row(row)["id"] == "7"
    with pytest.raises(ValueError, match="row 7: category 'chart' is not one of conv, detail, complex"):
        parse_row({**row, "category": "chart"})
    with pytest.raises(ValueError, match="LLaVA-Bench: row 7: no 'image'"):
        parse_row({**row, "image": None})
