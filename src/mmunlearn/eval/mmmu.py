"""MMMU's answer parsing and scoring (issue 17), so that our MMMU accuracy is comparable with published numbers.

Specification: the benchmark's own evaluation code, MMMU-Benchmark/MMMU ``mmmu/utils/eval_utils.py`` at bb0b95a
(formerly ``eval/eval_utils.py``; functions ``parse_multi_choice_response``, ``parse_open_response``,
``normalize_str``, ``extract_numbers``, ``eval_multi_choice``, ``eval_open``). lmms-eval's ``mmmu_val`` task
copies them, except its multiple-choice parser, which differs (``parser="lmms_eval"`` below). Reimplemented
here; ``tests/test_mmmu.py`` checks the references' behaviour case by case, their quirks included:

- Multiple choice: the response loses its leading/trailing punctuation, one character class after another in
  the reference's order (``, . ! ? ; : '``); then a letter in brackets "(B)" wins; else a bare letter between
  spaces; else, only for a response longer than five words, an option's *text* found in it. Several
  candidates: the one that occurs last. None: a random letter.
- The random fallback. The reference draws from Python's global RNG seeded once (``random.seed(42)``), so an
  item's draw depends on how many items failed to parse before it, in file order. Ours draws from a generator
  seeded by (seed, item id): the same answer whatever the order, the batch or the shard, and every fallback is
  counted (``parse: random``) so a reader sees how much of an accuracy is chance.
- Open questions: the response is lower-cased *before* it is split into sentences at ". " + capital letter, so
  in effect it is split at line breaks only (as in the reference); the "key" tail of each line after an indicator ("is", "so", "therefore", "answer", ...,
  and "=" in the last sentence), the shortest per sentence; the numbers in them; every candidate normalised
  (numbers to floats rounded to 2 decimals, text lower-cased, a single character padded with a space so that
  "a" does not match every answer). Correct if a numeric candidate equals a normalised gold number, or a
  normalised gold string occurs inside a text candidate.
"""

from __future__ import annotations

import random
import re

STRIP_ORDER = (",", ".", "!", "?", ";", ":", "'")  # the reference strips these one after another
KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
TRIVIAL_KEYS = {":", ",", ".", "!", "?", ";", "'"}

# numbers as the reference finds them: with thousands separators, in scientific notation, and plain
_NUMBER_WITH_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUMBER_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUMBER_PLAIN = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")
_SENTENCE_BREAK = re.compile(r"\.\s(?=[A-Z])|\n")


PARSERS = ("mmmu", "lmms_eval")


def parse_choice(response: str, letters: list[str], option_text: dict[str, str], seed: int = 42,
                 item_id: str = "", parser: str = "mmmu") -> tuple[str, str]:
    """(predicted letter, how it was found: "bracket" | "letter" | "letter_dot" | "content" | "random").

    ``parser="lmms_eval"`` follows lmms-eval's copy (``lmms_eval/tasks/mmmu/utils.py``
    ``parse_multi_choice_response`` at 02bc1c0), which departs from the official one: a bare letter needs only
    a space *after* it ("B is" counts, so does the "D" ending "ABCD "), and "B." is tried before the option
    texts; several such candidates are still ranked by their last " B " (absent: -1)."""
    if parser not in PARSERS:
        raise ValueError(f"MMMU parser must be one of {', '.join(PARSERS)}, got '{parser}'")
    for char in STRIP_ORDER:
        response = response.strip(char)
    padded = f" {response} "
    how = "bracket"
    found = [x for x in letters if f"({x})" in padded]
    if not found:
        how = "letter"
        found = [x for x in letters if (f"{x} " if parser == "lmms_eval" else f" {x} ") in padded]
    if not found and parser == "lmms_eval":
        how = "letter_dot"
        found = [x for x in letters if f"{x}." in padded]
    if not found and len(padded.split()) > 5:
        how = "content"
        found = [x for x, text in option_text.items() if text.lower() in padded.lower()]
    if not found:
        return random.Random(f"{seed}:{item_id}").choice(letters), "random"
    if len(found) == 1:
        return found[0], how

    def last_position(x: str) -> int:
        if how == "bracket":
            return padded.rfind(f"({x})")
        if how in ("letter", "letter_dot"):
            return padded.rfind(f" {x} ")
        return padded.lower().rfind(option_text[x].lower())

    positions = [last_position(x) for x in found]
    return found[positions.index(max(positions))], how  # the first of equal maxima, as numpy's argmax


def is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def normalise(text: str) -> list:
    """A number -> [float rounded to 2 decimals]; text -> [lower case], a single character -> [" x", "x "]."""
    text = text.strip()
    if is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def extract_numbers(text: str) -> list[str]:
    return (_NUMBER_WITH_COMMAS.findall(text) + _NUMBER_SCIENTIFIC.findall(text) + _NUMBER_PLAIN.findall(text))


def _key_parts(response: str) -> list[str]:
    """Per sentence, the shortest tail after a key indicator; the whole response when no sentence has one."""
    response = response.strip().strip(".").lower()
    sentences = _SENTENCE_BREAK.split(response)
    keys = []
    for k, sentence in enumerate(sentences):
        indicators = KEY_INDICATORS + (("=",) if k == len(sentences) - 1 else ())
        shortest = None
        for ind in indicators:
            if ind in sentence:
                tail = sentence.split(ind)[-1].strip()
                # as the reference: an empty tail so far is replaced by the next one, whatever its length;
                # otherwise only a strictly shorter tail replaces it
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in TRIVIAL_KEYS:
            keys.append(shortest)
    return keys or [response]


def parse_open(response: str) -> list:
    """The normalised candidate answers of a free-form response (a set: order carries no meaning)."""
    keys = _key_parts(response)
    candidates = keys + [n for key in keys for n in extract_numbers(key)]
    out = []
    for c in candidates:
        for x in normalise(c):
            if x not in out:
                out.append(x)
    return out


def choice_correct(gold: str | list[str], predicted: str) -> bool:
    return predicted in gold if isinstance(gold, list) else predicted == gold


def open_correct(gold: str | list[str], candidates: list) -> bool:
    answers = [x for g in (gold if isinstance(gold, list) else [gold]) for x in normalise(g)]
    for c in candidates:
        if isinstance(c, str):
            if any(isinstance(a, str) and a in c for a in answers):
                return True
        elif c in answers:
            return True
    return False


# MMMU's 30 subjects in its six disciplines (the benchmark's taxonomy; lmms-eval ``DOMAIN_CAT2SUB_CAT``).
DISCIPLINES = {
    "Art and Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health and Medicine": ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
                            "Pharmacy", "Public_Health"),
    "Humanities and Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech and Engineering": ("Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
                             "Energy_and_Power", "Materials", "Mechanical_Engineering"),
}
_ITEM_ID = re.compile(r"^(?P<split>[a-z]+)_(?P<subject>.+?)_(?P<n>\d+)$")


def subject_of(item_id: str) -> str:
    """"validation_Art_Theory_12" -> "Art_Theory"; an id of another shape is an error naming it."""
    m = _ITEM_ID.match(item_id)
    if not m:
        raise ValueError(f"MMMU item id '{item_id}' is not <split>_<Subject>_<n>")
    return m["subject"]


def accuracy_by_subject(correct: dict[str, bool]) -> dict[str, tuple[float, int]]:
    """{item id: correct} -> {subject, "Overall-<discipline>", "Overall": (accuracy, n)}; the overall and
    discipline accuracies are over items (the benchmark's "instance-level" accuracy), not means of subjects."""
    groups: dict[str, list[bool]] = {}
    for item, ok in correct.items():
        subject = subject_of(item)
        groups.setdefault(subject, []).append(ok)
        discipline = next((d for d, subjects in DISCIPLINES.items() if subject in subjects), None)
        if discipline:
            groups.setdefault(f"Overall-{discipline}", []).append(ok)
        groups.setdefault("Overall", []).append(ok)
    return {name: (sum(oks) / len(oks), len(oks)) for name, oks in sorted(groups.items())}


# -- items and prompts ---------------------------------------------------------------------------------------
# The Hugging Face dataset MMMU/MMMU (one config per subject, split "validation": 900 questions) stores a
# question's options as the *string* of a Python list, and up to seven images in image_1 .. image_7, referred to
# in the question or the options as "<image 1>" .. "<image 7>".
IMAGE_TOKEN = re.compile(r"<image (\d+)>")
QUESTION_TYPES = ("multiple-choice", "open")
# LLaVA-1.5's evaluation instructions, which lmms-eval's mmmu_val used as its defaults
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
OPEN_INSTRUCTION = "Answer the question using a single word or phrase."


def parse_item(row: dict, where: str = "MMMU") -> dict:
    """A dataset row as the task uses it: id, subject, question type, question, option texts (a list), gold
    (a letter, or for open questions the answer string or list), and the image columns the text refers to, in
    order of first reference. A malformed row is an error naming the row's id and field."""
    item_id = row.get("id", "?")
    for key in ("id", "question", "options", "answer", "question_type"):
        if key not in row:
            raise ValueError(f"{where}: row {item_id}: no '{key}' field")
    if row["question_type"] not in QUESTION_TYPES:
        raise ValueError(f"{where}: row {item_id}: question_type '{row['question_type']}' is not one of "
                         f"{', '.join(QUESTION_TYPES)}")
    options = row["options"]
    if isinstance(options, str):
        import ast

        try:
            options = ast.literal_eval(options) if options.strip() else []
        except (ValueError, SyntaxError):
            raise ValueError(f"{where}: row {item_id}: 'options' is not a list: {row['options'][:80]!r}") from None
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValueError(f"{where}: row {item_id}: 'options' must be a list of strings")
    if row["question_type"] == "multiple-choice" and not options:
        raise ValueError(f"{where}: row {item_id}: a multiple-choice question without options")
    text = "\n".join([row["question"], *options])
    images = list(dict.fromkeys(f"image_{n}" for n in IMAGE_TOKEN.findall(text)))
    missing = [key for key in images if row.get(key) is None and key in row]
    if missing:
        raise ValueError(f"{where}: row {item_id}: the text refers to {', '.join(missing)}, which is empty")
    return {"id": item_id, "subject": subject_of(item_id), "question_type": row["question_type"],
            "question": row["question"], "options": options, "answer": row["answer"], "images": images}


def letters(options: list[str]) -> list[str]:
    return [chr(ord("A") + k) for k in range(len(options))]


def prompt(item: dict, mc_instruction: str = MC_INSTRUCTION, open_instruction: str = OPEN_INSTRUCTION) -> str:
    """The question as lmms-eval's mmmu_val builds it (``construct_prompt``): the question, then for multiple
    choice one "A. option" line per option, a blank line and the instruction; the image tokens stay in the text
    (each model's processor places its images)."""
    if item["question_type"] == "multiple-choice":
        listed = "\n".join(f"{x}. {o}" for x, o in zip(letters(item["options"]), item["options"]))
        return f"{item['question']}\n{listed}\n\n{mc_instruction}"
    return f"{item['question']}\n\n{open_instruction}"


def score(item: dict, response: str, seed: int = 42, parser: str = "mmmu") -> dict:
    """{parsed, how, correct} of one response (how: the multiple-choice parse step, or "open")."""
    if item["question_type"] == "multiple-choice":
        options = dict(zip(letters(item["options"]), item["options"]))
        letter, how = parse_choice(response, list(options), options, seed, item["id"], parser)
        return {"parsed": letter, "how": how, "correct": choice_correct(item["answer"], letter)}
    candidates = parse_open(response)
    return {"parsed": candidates, "how": "open", "correct": open_correct(item["answer"], candidates)}
