"""Prompt strings, quoted from the original code (spec §2), one place for every stage.

Training prompts depend on the model family (LLaVA: plain ``USER:/ASSISTANT:``; Idefics2: its chat template).
Evaluation prompts are the same LLaVA-style strings for both families, as in the original ``eval.py``.
"""

from __future__ import annotations

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


def parse_letter(output: str, keys) -> str | None:
    """The original's rule (spec §2.2): the first character of the answer, upper-cased, if it is an option key.

    ``output`` is what follows ``ASSISTANT:``; "A: Coding" scores as A, "Answer: B" as A, "The answer is B"
    as no answer.
    """
    text = output.split("ASSISTANT:", 1)[-1].strip()
    first = text[:1].upper()
    return first if first in keys else None
