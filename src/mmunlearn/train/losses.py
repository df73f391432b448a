"""The unlearning-loss registry: each method is one small function of the current batches.

A loss gets the model, a dict of batches by stream name (``forget``, ``retain``, or ``train`` for plain
fine-tuning), the frozen reference models it declared (``vanilla`` for KL-Min, ``oracle`` for NPO) and its
hyper-parameters; it returns the scalar to minimise and a dict of numbers to log. Under the ``sequential``
schedule (the original GradDiff / KL-Min) a step carries one stream only, so losses with several streams add
the terms of the streams present. Adding a method is one ``@register_loss`` function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossSpec:
    name: str
    fn: Callable
    streams: tuple[str, ...]
    refs: tuple[str, ...] = ()
    paired: dict = field(default_factory=dict)  # stream -> stream whose items it pairs with one by one


LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, streams: tuple[str, ...], refs: tuple[str, ...] = (), paired: dict | None = None):
    def wrap(fn):
        LOSSES[name] = LossSpec(name, fn, streams, refs, dict(paired or {}))
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
    # use_cache=False: a training forward never decodes, and the models default to building a KV cache that every
    # layer fills (1.5 % of a demo fine-tune step, py-spy; at paper size, memory held until the step ends)
    return model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits


@register_loss("nll", streams=("train",))
def nll(model, batches, refs, hp):
    loss = mean_nll(_forward(model, batches["train"]), batches["train"]["labels"])
    return loss, {"nll": loss.item()}


@register_loss("ga", streams=("forget",))
def gradient_ascent(model, batches, refs, hp):
    """GA: ascend the forget NLL (spec §4)."""
    forget = mean_nll(_forward(model, batches["forget"]), batches["forget"]["labels"])
    return -forget, {"forget_nll": forget.item()}


def _stream_nll(model, batches, name):
    return mean_nll(_forward(model, batches[name]), batches[name]["labels"])


@register_loss("grad_diff", streams=("forget", "retain"))
def gradient_difference(model, batches, refs, hp):
    """GradDiff: ascend forget NLL, descend retain NLL weighted by ``retain_weight`` (the original: 1)."""
    loss, logs = 0.0, {}
    if "forget" in batches:
        forget = _stream_nll(model, batches, "forget")
        loss, logs["forget_nll"] = loss - forget, forget.item()
    if "retain" in batches:
        retain = _stream_nll(model, batches, "retain")
        loss, logs["retain_nll"] = loss + hp.get("retain_weight", 1.0) * retain, retain.item()
    return loss, logs


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
    loss, logs = 0.0, {}
    if "forget" in batches:
        forget = _stream_nll(model, batches, "forget")
        loss, logs["forget_nll"] = loss - forget, forget.item()
    if "retain" in batches:
        batch = batches["retain"]
        logits = _forward(model, batch)
        with torch.no_grad():
            ref_logits = _forward(refs["vanilla"], batch)
        retain = mean_nll(logits, batch["labels"])
        kl = kl_to_reference(logits, ref_logits, batch["labels"], hp.get("kl_over", "answer"))
        loss = loss + hp.get("retain_weight", 1.0) * retain + kl
        logs.update(retain_nll=retain.item(), kl=kl.item())
    return loss, logs


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


@register_loss("simnpo", streams=("forget", "retain"))
def simple_npo(model, batches, refs, hp):
    """SimNPO (Fan et al. 2024), beyond the paper: reference-free NPO on the length-normalised forget NLL,
    ``-(2/β) log σ(β·NLL/|y| - γ)`` per sequence, plus ``retain_weight`` × retain NLL."""
    batch = batches["forget"]
    total, count = token_nll(_forward(model, batch), batch["labels"])
    per_token = total / count.clamp(min=1)
    forget = (-(2.0 / hp["beta"]) * F.logsigmoid(hp["beta"] * per_token - hp.get("gamma", 0.0))).mean()
    retain = _stream_nll(model, batches, "retain")
    return forget + hp.get("retain_weight", 1.0) * retain, {"forget_nll": per_token.mean().item(),
                                                           "retain_nll": retain.item()}


def dpo_loss(chosen_theta, chosen_ref, rejected_theta, rejected_ref, beta: float) -> torch.Tensor:
    """DPO with NLLs (log-likelihood = -NLL): -(2/β) log σ(β[(ll_θ(c) - ll_ref(c)) - (ll_θ(r) - ll_ref(r))]).
    The 2/β scale matches NPO's; mean over the batch."""
    margin = (chosen_ref - chosen_theta) - (rejected_ref - rejected_theta)
    return (-(2.0 / beta) * F.logsigmoid(beta * margin)).mean()


@register_loss("idkpo", streams=("forget", "forget_idk", "retain"), refs=("vanilla",),
               paired={"forget_idk": "forget"})
def idk_preference(model, batches, refs, hp):
    """IdkPO (TOFU's IdkDPO), beyond the paper: prefer an "I don't know" answer over the true one on each
    forget question (DPO against the vanilla model), plus ``retain_weight`` × retain NLL."""
    true, idk = batches["forget"], batches["forget_idk"]
    theta_true = token_nll(_forward(model, true), true["labels"])[0]
    theta_idk = token_nll(_forward(model, idk), idk["labels"])[0]
    with torch.no_grad():
        ref_true = token_nll(_forward(refs["vanilla"], true), true["labels"])[0]
        ref_idk = token_nll(_forward(refs["vanilla"], idk), idk["labels"])[0]
    pref = dpo_loss(theta_idk, ref_idk, theta_true, ref_true, hp["beta"])
    retain = _stream_nll(model, batches, "retain")
    return pref + hp.get("retain_weight", 1.0) * retain, {
        "forget_nll": theta_true.mean().item(), "idk_nll": theta_idk.mean().item(), "retain_nll": retain.item()}
