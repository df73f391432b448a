"""One training loop for fine-tuning and every unlearning method.

The loop draws one batch per stream per step (the ``forget`` stream, or ``train``, sets the epoch; a ``retain``
stream is cycled alongside it), calls the method's loss from the registry, and steps AdamW with a linear
schedule. It logs loss and speed, and writes a CSV loss log. Data order is fixed by the seed.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..models.registry import Encoded, VisionLanguageModel
from .losses import get_loss

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    lr: float
    epochs: float
    batch_size: int
    seed: int
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    labels: str = "answer"  # "answer" | "all" (the original's prompt-inclusive labels)
    max_steps: int | None = None
    grad_clip: float | None = None
    log_every: int = 10
    hp: dict = field(default_factory=dict)  # the loss's own hyper-parameters (beta, retain_weight, ...)


def _batches(items: list[Encoded], batch_size: int, rng: random.Random):
    """Endless shuffled batches, reshuffled every pass."""
    while True:
        order = list(range(len(items)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            yield [items[j] for j in order[i:i + batch_size]]


def train(vlm: VisionLanguageModel, method: str, streams: dict[str, list[Encoded]], cfg: TrainConfig,
          refs: dict | None = None, loss_log: str | Path | None = None) -> list[dict]:
    spec = get_loss(method)
    missing = [s for s in spec.streams if not streams.get(s)]
    if missing:
        raise ValueError(f"method '{method}' needs non-empty data streams {missing}")
    lead = spec.streams[0]
    steps_per_epoch = math.ceil(len(streams[lead]) / cfg.batch_size)
    total = cfg.max_steps or max(1, round(steps_per_epoch * cfg.epochs))
    rng = random.Random(cfg.seed)
    iters = {s: _batches(streams[s], cfg.batch_size, random.Random(rng.random())) for s in spec.streams}
    params = [p for p in vlm.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = round(total * cfg.warmup_ratio)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    vlm.model.train()
    history, t0 = [], time.time()
    log.info("training %s: %d steps (%d per epoch over %d '%s' items), batch %d, lr %g",
             method, total, steps_per_epoch, len(streams[lead]), lead, cfg.batch_size, cfg.lr)
    for step in range(1, total + 1):
        batches = {s: vlm.collate(next(iters[s]), "right", labels=cfg.labels) for s in spec.streams}
        loss, logs = spec.fn(vlm.model, batches, refs or {}, cfg.hp)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        schedule.step()
        row = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": loss.item(),
               "lr": schedule.get_last_lr()[0], **logs}
        history.append(row)
        if step % cfg.log_every == 0 or step == total:
            rate = step / (time.time() - t0)
            log.info("step %d/%d loss %.4f %s (%.2f steps/s, eta %.0f s)", step, total, row["loss"],
                     " ".join(f"{k} {v:.4f}" for k, v in logs.items()), rate, (total - step) / rate)
    vlm.model.eval()
    if loss_log:
        with open(loss_log, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
    return history
