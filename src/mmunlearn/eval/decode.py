"""Batched scoring primitives: greedy generation with left padding and a stopping rule, and option
log-likelihoods. Items are sorted by length so that batches carry little padding; results come back in the
caller's order."""

from __future__ import annotations

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ..models.registry import Encoded, VisionLanguageModel


class FirstVisibleCharacter(StoppingCriteria):
    """Stop a row once it has produced a token with a non-whitespace character.

    The letter parser reads only the first visible character of the answer, so no later token can change a
    parsed answer. Vectorised: one lookup table over the vocabulary, no per-token Python.
    """

    def __init__(self, visible: torch.Tensor, prompt_width: int):
        self.visible, self.prompt_width = visible, prompt_width

    def __call__(self, input_ids, scores, **kwargs):
        new = input_ids[:, self.prompt_width:]
        return self.visible[new].any(dim=1)


def visible_tokens(vlm: VisionLanguageModel) -> torch.Tensor:
    """Boolean table over the vocabulary: does the token decode to a non-whitespace character? Built once per
    model (decoding every token id is slow for a 32k vocabulary)."""
    if getattr(vlm, "_visible_tokens", None) is None:
        tok = vlm.tokenizer
        special = set(tok.all_special_ids)
        size = max(len(tok), vlm.model.config.get_text_config().vocab_size)
        visible = torch.zeros(size, dtype=torch.bool)
        pieces = tok.batch_decode([[i] for i in range(len(tok))])
        for i, piece in enumerate(pieces):
            visible[i] = i not in special and piece.strip() != ""
        vlm._visible_tokens = visible.to(vlm.device)
    return vlm._visible_tokens


def _order(items: list[Encoded]) -> list[int]:
    return sorted(range(len(items)), key=lambda i: len(items[i].input_ids))


@torch.inference_mode()
def greedy_generate(vlm: VisionLanguageModel, items: list[Encoded], max_new_tokens: int, batch_size: int,
                    stop: str = "eos") -> list[str]:
    """Greedy continuations of every prompt; ``stop="first_visible"`` ends a row at its first visible char."""
    outputs: list[str] = [""] * len(items)
    order = _order(items)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = vlm.collate([items[i] for i in idx], padding_side="left")
        width = batch["input_ids"].shape[1]
        criteria = StoppingCriteriaList([FirstVisibleCharacter(visible_tokens(vlm), width)]) if stop == "first_visible" else None
        gen = vlm.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 stopping_criteria=criteria, pad_token_id=vlm.tokenizer.pad_token_id)
        texts = vlm.tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
        for i, text in zip(idx, texts):
            outputs[i] = text
    return outputs


@torch.inference_mode()
def continuation_logliks(vlm: VisionLanguageModel, items: list[Encoded], batch_size: int) -> list[float]:
    """Sum of log p over each item's continuation tokens (those past ``n_prompt``)."""
    out = [0.0] * len(items)
    order = _order(items)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = vlm.collate([items[i] for i in idx], padding_side="right", labels="answer")
        labels = batch.pop("labels")
        logits = vlm.model(**batch).logits[:, :-1].float()
        target = labels[:, 1:]
        logp = torch.log_softmax(logits, -1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        sums = (logp * (target != -100)).sum(1)
        for i, v in zip(idx, sums.tolist()):
            out[i] = v
    return out
