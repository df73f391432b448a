"""Prompt strings, quoted from the original code (spec §2), one place for every stage.

Training prompts depend on the model family (LLaVA: plain ``USER:/ASSISTANT:``; Idefics2: its chat template).
Evaluation prompts are the same LLaVA-style strings for both families, as in the original ``eval.py``.
"""

from __future__ import annotations

import re

IMAGE_TOKEN = "<image>"
LETTER_INSTRUCTION = "Just give ONE letter representing the answer directly."
CLOZE_INSTRUCTION = "Please **ONLY** provide the correct answer that should replace the [Blank]."


def format_options(options: dict[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in options.items())


def qa_prompt(question: str, with_image: bool) -> str:
    """``USER: <image>\\n{question}\\nASSISTANT:``; the answer follows after one space (spec §2.1)."""
    return f"USER: {IMAGE_TOKEN}\n{question}\nASSISTANT:" if with_image else f"USER:\n{question}\nASSISTANT:"


def mc_demo(question: str, options: dict[str, str], answer: str, with_image: bool) -> str:
    """One few-shot demonstration of the classification task (note: "Question: " only in demos)."""
    head = f"USER: {IMAGE_TOKEN}\n" if with_image else "USER:\n"
    return f"{head}Question: {question}\n{format_options(options)}\nCorrect Answer: {answer}\n"


def mc_prompt(question: str, options: dict[str, str], with_image: bool, fewshot: str = "") -> str:
    head = f"USER: {IMAGE_TOKEN}\n" if with_image else "USER:\n"
    return f"{fewshot}{head}{question}\n{format_options(options)}\n{LETTER_INSTRUCTION}\nASSISTANT:"


GENERATION_INSTRUCTION_IMAGE = "Answer the question based on your trained knowledge in one sentence accurately in ENGLISH."
GENERATION_INSTRUCTION_TEXT = "Answer the question based on your trained knowledge in one sentence in ENGLISH."


def cloze_question(question: str) -> str:
    """The blank rewrite (spec §2.3): ``__`` becomes ``[Blank]``, then the instruction on its own line."""
    return question.replace("__", "[Blank]") + "\n" + CLOZE_INSTRUCTION


def cloze_demo(question: str, answer: str, with_image: bool) -> str:
    """One cloze demonstration; note "USER:<image>" without the space the other prompts have (spec §2.3)."""
    head = f"USER:{IMAGE_TOKEN}\n" if with_image else "USER:\n"
    return f"{head}{cloze_question(question)}\nCorrect Answer: {answer}\n"


def cloze_prompt(question: str, with_image: bool, fewshot: str = "") -> str:
    head = f"USER: {IMAGE_TOKEN}\n" if with_image else "USER:\n"
    return f"{fewshot}{head}{cloze_question(question)}\nASSISTANT:"


def generation_prompt(question: str, with_image: bool) -> str:
    """Open generation, zero-shot (spec §2.4): the image prompt ends with a space, the text prompt has no
    newline after ``USER:`` and no "accurately"."""
    if with_image:
        return f"USER: {IMAGE_TOKEN}\n{question}\n{GENERATION_INSTRUCTION_IMAGE}\nASSISTANT: "
    return f"USER: {question}\n{GENERATION_INSTRUCTION_TEXT}\nASSISTANT:"


def answer_text(output: str, after_answer: bool = False) -> str:
    """The response: text after the first ``ASSISTANT:`` (and, for cloze and generation, else after
    ``Answer:``), stripped, as the original parses it (spec §2.2-2.4)."""
    if "ASSISTANT:" in output:
        return output.split("ASSISTANT:", 1)[1].strip()
    if after_answer and "Answer:" in output:
        return output.split("Answer:", 1)[1].strip()
    return output.strip()


def parse_letter(output: str, keys) -> str | None:
    """The original's rule (spec §2.2): the first character of the answer, upper-cased, if it is an option key.

    ``output`` is what follows ``ASSISTANT:``; "A: Coding" scores as A, "Answer: B" as A, "The answer is B"
    as no answer.
    """
    first = answer_text(output)[:1].upper()
    return first if first and first in keys else None


def parse_answer_letter(output: str, keys) -> str | None:
    """Corrected rule: the first option key standing alone as a word (upper case, so the article "a" is not
    one), after an optional "Answer:" / "The answer is". "A: Coding" -> A, "Answer: B" -> B,
    "The answer is (C)." -> C, "Coding" -> None."""
    text = answer_text(output)
    text = re.sub(r"^(the\s+)?(correct\s+)?answer(\s+is)?\s*[:\-]?\s*", "", text, flags=re.IGNORECASE)
    for match in re.finditer(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])", text):
        return match.group(1) if match.group(1) in keys else None
    return None
