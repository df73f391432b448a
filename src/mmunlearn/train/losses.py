"""The unlearning-loss registry: each method is one small function of the current batches.

A loss gets the model, a dict of batches by stream name (``forget``, ``retain``, or ``train`` for plain
fine-tuning), the frozen reference models it declared (``vanilla`` for KL-Min, ``oracle`` for NPO) and its
hyper-parameters; it returns the scalar to minimise and a dict of numbers to log. Adding a method is one
``@register_loss`` function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossSpec:
    name: str
    fn: Callable
    streams: tuple[str, ...]
    refs: tuple[str, ...] = ()


LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, streams: tuple[str, ...], refs: tuple[str, ...] = ()):
    def wrap(fn):
        LOSSES[name] = LossSpec(name, fn, streams, refs)
        return fn
    return wrap


def get_loss(name: str) -> LossSpec:
    if name not in LOSSES:
        raise KeyError(f"unknown unlearning method '{name}'; known: {sorted(LOSSES)}")
    return LOSSES[name]


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence summed NLL and per-sequence token counts (next-token shift, -100 ignored)."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != -100
    nll = F.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none") * mask
    return nll.sum(1), mask.sum(1)


def mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The HF loss: mean over every labelled token of the batch."""
    total, count = token_nll(logits, labels)
    return total.sum() / count.sum().clamp(min=1)


def _forward(model, batch):
    return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


@register_loss("nll", streams=("train",))
def nll(model, batches, refs, hp):
    loss = mean_nll(_forward(model, batches["train"]), batches["train"]["labels"])
    return loss, {"nll": loss.item()}


@register_loss("ga", streams=("forget",))
def gradient_ascent(model, batches, refs, hp):
    """GA: ascend the forget NLL (spec §4)."""
    forget = mean_nll(_forward(model, batches["forget"]), batches["forget"]["labels"])
    return -forget, {"forget_nll": forget.item()}


@register_loss("grad_diff", streams=("forget", "retain"))
def gradient_difference(model, batches, refs, hp):
    """GradDiff: ascend forget NLL, descend retain NLL, weighted by ``retain_weight``."""
    forget = mean_nll(_forward(model, batches["forget"]), batches["forget"]["labels"])
    retain = mean_nll(_forward(model, batches["retain"]), batches["retain"]["labels"])
    return -forget + hp.get("retain_weight", 1.0) * retain, {"forget_nll": forget.item(), "retain_nll": retain.item()}


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, over: str) -> torch.Tensor:
    """KL(p_ref || p_theta). ``over="all"``: summed over every position and the vocabulary, divided by batch size
    (the original, spec §4, pads and prompt included); ``"answer"``: mean over labelled answer tokens."""
    logp = F.log_softmax(logits.float(), -1)
    p_ref = F.softmax(ref_logits.float(), -1)
    if over == "all":
        return F.kl_div(logp, p_ref, reduction="batchmean")
    per_pos = F.kl_div(logp, p_ref, reduction="none").sum(-1)[:, :-1]
    mask = (labels[:, 1:] != -100).float()
    return (per_pos * mask).sum() / mask.sum().clamp(min=1)


@register_loss("kl_min", streams=("forget", "retain"), refs=("vanilla",))
def kl_minimisation(model, batches, refs, hp):
    """KL-Min: ascend forget NLL; on retain, NLL plus KL to the frozen vanilla model."""
    forget = mean_nll(_forward(model, batches["forget"]), batches["forget"]["labels"])
    logits = _forward(model, batches["retain"])
    with torch.no_grad():
        ref_logits = _forward(refs["vanilla"], batches["retain"])
    retain = mean_nll(logits, batches["retain"]["labels"])
    kl = kl_to_reference(logits, ref_logits, batches["retain"]["labels"], hp.get("kl_over", "answer"))
    return -forget + retain + kl, {"forget_nll": forget.item(), "retain_nll": retain.item(), "kl": kl.item()}


def npo_loss(nll_theta: torch.Tensor, nll_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """-(2/β) log σ(β (NLL_θ - NLL_ref)), averaged; tends to forget-NLL ascent (GA) as β -> 0."""
    return (-(2.0 / beta) * F.logsigmoid(beta * (nll_theta - nll_ref))).mean()


@register_loss("npo", streams=("forget",), refs=("oracle",))
def negative_preference(model, batches, refs, hp):
    """NPO with the oracle (retain-only fine-tune) as reference. ``npo_level``: "batch" uses the batch-mean
    token NLLs as the original (spec §4); "sequence" uses per-sequence NLLs as the NPO paper."""
    batch = batches["forget"]
    logits = _forward(model, batch)
    with torch.no_grad():
        ref_logits = _forward(refs["oracle"], batch)
    if hp.get("npo_level", "sequence") == "batch":
        theta, ref = mean_nll(logits, batch["labels"]), mean_nll(ref_logits, batch["labels"])
    else:
        theta, ref = token_nll(logits, batch["labels"])[0], token_nll(ref_logits, batch["labels"])[0]
    loss = npo_loss(theta, ref, hp["beta"])
    return loss, {"forget_nll": theta.mean().item(), "ref_nll": ref.mean().item()}
