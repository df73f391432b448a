"""Training items built from profiles' QA pairs: the fine-tuning data mix and the unlearning sets.

Formats (each a documented option of the data mix; all work on the real ``metadata`` QA pairs too):

- ``qa``: the original's sample, ``USER: <image>\\n{Question}\\nASSISTANT: {Answer}`` (spec §2.1);
- ``qa_text``: the same fact as text with the person named and no image: the text-only variant. The name comes
  from the validated facts (``Profile.name``, data/names.py) and replaces the phrases that point at the image;
- ``mcq``: the classification prompt format built from a QA pair, with three distractors drawn from the answers
  other profiles give to the same QA slot, options shuffled (``mcq`` with image, ``mcq_text`` without);
- ``gen``: the QA pair in the generation task's prompt (the question + "Answer the question ... in one
  sentence"), answered with the QA answer; ``cloze``: the question with a ``[Blank]`` in the cloze task's prompt
  ("Please **ONLY** provide ..."), answered with the QA answer (``_text`` variants name the person).

A tiny model cannot move knowledge from QA form into another task's prompt format by itself (shared/notes):
the demo shows it the formats. A 7B model follows instructions; the paper config trains on ``qa`` only, as the
original does.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ..data.schema import Profile
from ..models import prompts

FORMATS = ("qa", "qa_text", "mcq", "mcq_text", "gen", "gen_text", "cloze", "cloze_text")
_IMAGE_REFERENCE = re.compile(r"\b(the person in (the|this) image|the person shown|this person)\b", re.IGNORECASE)


@dataclass(frozen=True)
class TrainItem:
    prompt: str
    answer: str
    images: tuple[bytes, ...] = ()


def name_the_person(question: str, name: str) -> str:
    """Rewrite an image-referring question so that it names the person instead."""
    return _IMAGE_REFERENCE.sub(name, question)


def items_for(profiles: list[Profile], fmt: str, train_prompt, rng: random.Random) -> list[TrainItem]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown training format '{fmt}'; known: {FORMATS}")
    with_image = not fmt.endswith("_text")
    out = []
    for p in profiles:
        name = p.name
        if not with_image and not name:
            raise ValueError(f"profile {p.id}: no name known for the text-only variant (validate_data derives it "
                             f"from the Pure_Text questions; data.names overrides)")
        for slot, qa in enumerate(p.qa):
            question = qa.question if with_image else name_the_person(qa.question, name)
            images = (p.image,) if with_image else ()
            if fmt.startswith("qa"):
                out.append(TrainItem(train_prompt(question, with_image), " " + qa.answer, images))
                continue
            if fmt.startswith("gen"):
                prompt = prompts.generation_prompt(question, with_image)  # the image prompt ends with a space
                out.append(TrainItem(prompt, ("" if prompt.endswith(" ") else " ") + qa.answer, images))
                continue
            if fmt.startswith("cloze"):
                out.append(TrainItem(prompts.cloze_prompt(f"{question} __", with_image), " " + qa.answer, images))
                continue
            pool = sorted({o.qa[slot].answer for o in profiles if slot < len(o.qa)} - {qa.answer})
            if len(pool) < 3:
                continue
            options = rng.sample(pool, 3) + [qa.answer]
            rng.shuffle(options)
            opts = dict(zip("ABCD", options))
            letter = "ABCD"[options.index(qa.answer)]
            out.append(TrainItem(prompts.mc_prompt(question, opts, with_image), " " + letter, images))
    return out


def build_mix(profiles: list[Profile], formats: list[str], train_prompt, seed: int,
              replay: list[Profile] = (), replay_formats: list[str] = (), replay_fraction: float = 0.0) -> list[TrainItem]:
    """The fine-tuning mix: every format of ``profiles``, plus ``replay_fraction`` of the total as items about
    ``replay`` profiles (knowledge the base already has), which keeps a small model's formats from eroding."""
    rng = random.Random(seed)
    items = [it for fmt in formats for it in items_for(profiles, fmt, train_prompt, rng)]
    if replay and replay_fraction > 0:
        pool = [it for fmt in replay_formats for it in items_for(list(replay), fmt, train_prompt, rng)]
        k = round(len(items) * replay_fraction / (1 - replay_fraction))
        items += [pool[i % len(pool)] for i in rng.sample(range(max(k, len(pool))), k)] if pool else []
    return items


def finetune_mix(profiles: list[Profile], mix: dict, train_prompt, seed: int,
                 replay: list[Profile] = ()) -> list[TrainItem]:
    """``build_mix`` with a fine-tuning stage's ``mix:`` settings (finetune/oracle in config.yaml)."""
    return build_mix(profiles, mix["formats"], train_prompt, seed, replay, mix.get("replay_formats", []),
                     mix.get("replay_fraction", 0.0))


# "I don't know" answers for IdkPO (after TOFU's idontknow list, our own wording).
IDK_ANSWERS = ("I don't know.", "I have no idea.", "I am not sure.", "I cannot answer that.",
               "That is unknown to me.")


def idk_items(items: list[TrainItem], answers, seed: int) -> list[TrainItem]:
    """The same prompts (and images), each answered with a seeded choice of "I don't know" answers."""
    rng = random.Random(f"{seed}:idk")
    return [TrainItem(it.prompt, " " + rng.choice(list(answers)), it.images) for it in items]
