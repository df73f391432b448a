"""MMMU's answer parsing (eval/mmmu.py) reproduces the reference, MMMU-Benchmark/MMMU ``mmmu/utils/eval_utils.py``
at bb0b95a: every expected value below is what the reference returns for the input (computed by running it; a
differential fuzz of 20,000 generated responses against it, and of 30,000 against lmms-eval's multiple-choice
copy, agreed on every parse and on when each falls back to chance), its quirks included."""

import pytest

from mmunlearn.eval.mmmu import choice_correct, extract_numbers, normalise, open_correct, parse_choice, parse_open

OPTIONS = {"A": "apple", "B": "banana", "C": "red car", "D": "blue car"}
LETTERS = list(OPTIONS)


@pytest.mark.parametrize("response, letter, how", [
    ("The answer is (B).", "B", "bracket"),
    ("B", "B", "letter"),
    ("(A) or (C)? I pick (C)", "C", "bracket"),           # several: the last one
    ("A and B, but B", "B", "letter"),
    ("Answer: D", "D", "letter"),
    (",C.", "C", "letter"),                               # leading and trailing punctuation stripped
    ("I think the fruit here is a banana for sure", "B", "content"),   # > 5 words: option text
    ("It could be a red car but the real answer is blue car", "D", "content"),
    ("It could be a red car or blue car, red car", "C", "content"),    # the text that occurs last
])
def test_choice_as_the_reference(response, letter, how):
    assert parse_choice(response, LETTERS, OPTIONS) == (letter, how)


@pytest.mark.parametrize("response", [
    "banana",            # option text, but only 1 word: the reference reads text only beyond 5 words
    "'A,.",              # stripped in the reference's order (, . ! ? ; : '): "A," is left, not a bare letter
    "A. apple",          # "A." is not " A " and the response is too short for a content match
    "the answer: (a)",   # letters are case-sensitive
])
def test_unparseable_choice_falls_back_to_a_seeded_letter(response):
    letter, how = parse_choice(response, LETTERS, OPTIONS, seed=42, item_id="validation_Art_1")
    assert how == "random" and letter in LETTERS
    # the same item gets the same letter whatever was parsed before it; other items spread over the letters
    assert parse_choice(response, LETTERS, OPTIONS, seed=42, item_id="validation_Art_1")[0] == letter
    drawn = {parse_choice(response, LETTERS, OPTIONS, seed=42, item_id=f"item{k}")[0] for k in range(40)}
    assert drawn == set(LETTERS)


@pytest.mark.parametrize("response, official, lmms_eval", [
    ("A. apple", None, ("A", "letter_dot")),           # official: no bare letter, too short for text
    ("B is right", ("B", "letter"), ("B", "letter")),
    ("ABCD", None, ("D", "letter")),                   # lmms-eval: "D " needs no space before it
    ("I choose D, not A.", ("A", "letter"), ("A", "letter")),
    ("A.B.", None, ("B", "letter")),
    ("The answer is (B).", ("B", "bracket"), ("B", "bracket")),
])
def test_official_and_lmms_eval_parsers_differ_as_their_code_does(response, official, lmms_eval):
    """Expected values: MMMU's function and lmms-eval's copy (lmms_eval/tasks/mmmu/utils.py at 02bc1c0), run on
    each response; None = the reference falls back to a random letter."""
    for parser, expected in (("mmmu", official), ("lmms_eval", lmms_eval)):
        got = parse_choice(response, LETTERS, OPTIONS, parser=parser)
        assert got[1] == "random" if expected is None else got == expected, (parser, got)
    with pytest.raises(ValueError, match="MMMU parser"):
        parse_choice("A", LETTERS, OPTIONS, parser="vlmevalkit")


@pytest.mark.parametrize("response, candidates", [
    ("The answer is 12,345.", {12345.0, 345.0}),          # the plain-number pattern also finds "345"
    ("x = 3.14159", {3.14}),                              # "=" is a key in the last sentence; 2 decimals
    ("So the result is B", {" b", "b "}),                 # a single character is padded: no trivial match
    ("Therefore, the final answer is 1e5 meters", {100000.0, "1e5 meters", 5.0}),
    ("line one is 4\nso it is 7", {4.0, 7.0}),            # one key per line
    ("answer is \nfoo", {"is"}),                          # an empty tail gives way to the next indicator's
    ("nothing here", {"nothing here"}),                   # no indicator: the whole response
])
def test_open_candidates_as_the_reference(response, candidates):
    assert set(parse_open(response)) == candidates


@pytest.mark.parametrize("gold, response, correct", [
    ("12345", "The answer is 12,345.", True),
    (["3.14"], "x = 3.14159", True),
    ("b", "So the result is B", True),
    ("b", "the result is abc", False),                    # " b" / "b " are not in "abc"
    ("a", "the answer is a cat", True),                   # "a " is in "a cat": the reference's containment
    (["7", "seven"], "line one is 4\nso it is 7", True),
    ("8", "line one is 4\nso it is 7", False),
])
def test_open_scoring_as_the_reference(gold, response, correct):
    assert open_correct(gold, parse_open(response)) is correct


def test_helpers():
    assert normalise(" 1,000.456 ") == [1000.46] and normalise("Paris") == ["paris"] and normalise("x") == [" x", "x "]
    # the three patterns overlap, as in the reference: "2.5e-3" also yields "2" and "-3", "1,234" also "234"
    assert extract_numbers("-3 and 2.5e-3 and 1,234") == ["1,234", "2.5e-3", "-3", "2", "-3", "234"]
    assert choice_correct(["A", "C"], "C") and not choice_correct("A", "C")


def test_subjects_disciplines_and_instance_level_accuracy():
    from mmunlearn.eval.mmmu import accuracy_by_subject, subject_of
    assert subject_of("validation_Art_Theory_12") == "Art_Theory"
    assert subject_of("validation_Diagnostics_and_Laboratory_Medicine_3") == "Diagnostics_and_Laboratory_Medicine"
    with pytest.raises(ValueError, match="validation-Art-1"):
        subject_of("validation-Art-1")
    got = accuracy_by_subject({"validation_Art_1": True, "validation_Art_2": False, "validation_Music_1": True,
                               "validation_Math_1": False})
    assert got["Art"] == (0.5, 2) and got["Overall-Art and Design"] == (2 / 3, 3)
    assert got["Overall-Science"] == (0.0, 1)
    assert got["Overall"] == (0.5, 4)  # over items: (1 + 0 + 1 + 0) / 4, not the mean of subject accuracies


def _row(**over):
    row = {"id": "validation_Art_Theory_3", "question": "Which style is shown in <image 1>?",
           "options": "['Baroque', 'Cubism', 'see <image 2>']", "answer": "B", "question_type": "multiple-choice",
           "image_1": b"png", "image_2": b"png", "image_3": None}
    return {**row, **over}


def test_items_prompts_and_scores():
    from mmunlearn.eval.mmmu import parse_item, prompt, score
    item = parse_item(_row())
    assert (item["subject"], item["options"], item["images"]) == ("Art_Theory", ["Baroque", "Cubism", "see <image 2>"],
                                                                  ["image_1", "image_2"])
    assert prompt(item) == ("Which style is shown in <image 1>?\nA. Baroque\nB. Cubism\nC. see <image 2>\n\n"
                            "Answer with the option's letter from the given choices directly.")
    assert score(item, "B") == {"parsed": "B", "how": "letter", "correct": True}
    assert score(item, "(A)")["correct"] is False
    open_item = parse_item(_row(question_type="open", options="[]", answer="1,200"))
    assert prompt(open_item).endswith("\n\nAnswer the question using a single word or phrase.")
    assert score(open_item, "The total is 1200 dollars")["correct"] is True


@pytest.mark.parametrize("over, message", [
    ({"options": "['a', 'b'"}, "row validation_Art_Theory_3: 'options' is not a list"),
    ({"question_type": "yes/no"}, "question_type 'yes/no' is not one of"),
    ({"image_2": None}, "refers to image_2, which is empty"),
    ({"options": "[]"}, "a multiple-choice question without options"),
])
def test_bad_rows_are_named(over, message):
    from mmunlearn.eval.mmmu import parse_item
    with pytest.raises(ValueError, match=message):
        parse_item(_row(**over), where="MMMU/Art_Theory")
    row = _row()
    del row["answer"]
    with pytest.raises(ValueError, match="no 'answer' field"):
        parse_item(row)
