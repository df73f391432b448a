from mmunlearn.models import prompts
from mmunlearn.train.examples import name_the_person


def test_parse_letter_follows_the_original():
    keys = ["A", "B", "C", "D"]
    assert prompts.parse_letter(" B", keys) == "B"
    assert prompts.parse_letter("a: Coding", keys) == "A"
    assert prompts.parse_letter("Answer: B", keys) == "A"  # the original's first-character rule (spec §2.2)
    assert prompts.parse_letter("The answer is B", keys) is None
    assert prompts.parse_letter("", keys) is None


def test_classification_prompt_matches_spec():
    opts = {"A": "x", "B": "y", "C": "z", "D": "w"}
    demo = prompts.mc_demo("Q1?", opts, "B", with_image=True)
    assert demo == "USER: <image>\nQuestion: Q1?\nA: x\nB: y\nC: z\nD: w\nCorrect Answer: B\n"
    target = prompts.mc_prompt("Q2?", opts, with_image=False, fewshot=demo)
    assert target == demo + "USER:\nQ2?\nA: x\nB: y\nC: z\nD: w\nJust give ONE letter representing the answer directly.\nASSISTANT:"


def test_text_only_variant_names_the_person():
    assert name_the_person("What is the job of this person?", "Ada Berg") == "What is the job of Ada Berg?"
    assert name_the_person("Where was the person in the image born?", "Ada Berg") == "Where was Ada Berg born?"
