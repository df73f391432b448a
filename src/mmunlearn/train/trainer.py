"""One training loop for fine-tuning and every unlearning method.

Before the first step the loop fixes, from the seed alone, the whole *plan*: which items of which stream each
step uses. Two schedules (``TrainConfig.schedule``):

- ``interleaved``: every step draws one batch from each of the method's streams; the first stream (``forget``,
  or ``train``) sets the epoch, the others are cycled alongside it;
- ``sequential`` (the original GradDiff / KL-Min, spec §4): each epoch is one pass over all ``forget`` batches,
  then one pass over all ``retain`` batches; a step sees one stream, and the loss uses the terms of that stream.

Streams a method declares as *paired* (``LossSpec.paired``, e.g. IdkPO's ``forget_idk``) use the same item
indices as the stream they pair with. The learning rate follows a linear schedule stepped every optimiser step
(``lr_step: step``) or, as the original GradDiff / KL-Min, once per epoch (``lr_step: epoch``).

Effective batch = ``batch_size`` (per process and micro-step) x processes x ``grad_accum``. Several processes
(``accelerate launch --num_processes N`` or ``torchrun``; one per GPU, or CPU processes over gloo) train one
DistributedDataParallel model: every plan step is a global batch of ``batch_size`` x N items, each process
takes every N-th item of it, and DDP averages the gradients. ``grad_accum`` consecutive plan steps make one
optimiser step. With one process and ``grad_accum: 1`` the loop is the plain one.

Resumable: with a checkpoint folder, the loop saves trainable weights, optimiser, scheduler, RNG state and the
loss history every ``checkpoint_every`` steps and after the last one (atomically), and on start continues from a
checkpoint whose key (config, method, data fingerprint) matches. A fixed plan plus restored RNG state gives the
same result as an uninterrupted run. The checkpoints outlive the job: the workflow removes them once it has
accepted the run (``workflow.remove_finished_checkpoints``), so a job stopped after its last step, or marked failed
by its cluster after writing its run (which Snakemake then deletes), resumes after the last step and only writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..io import atomic_file
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
    schedule: str = "interleaved"  # "interleaved" | "sequential" (see module docstring)
    lr_step: str = "step"  # "step" | "epoch"
    checkpoint_every: int | None = None
    grad_accum: int = 1
    group_by_length: bool = False  # batches of similar length (less padding); see _passes
    length_chunks: int = 1  # nll only: each batch runs as N length-sorted chunks, same gradient (see _chunks)
    hp: dict = field(default_factory=dict)  # the loss's own hyper-parameters (beta, retain_weight, ...)


GROUP_SPAN = 16  # batches per length-sorted group (``group_by_length``)


def _passes(n: int, batch_size: int, rng: random.Random, lengths: list[int] | None = None):
    """Endless shuffled batches of indices, reshuffled every pass. With ``lengths`` (``group_by_length``): each
    shuffled pass is cut into groups of ``GROUP_SPAN`` batches, each group sorted by length and cut into
    batches, and the pass's batches shuffled again; a batch then holds items of similar length, so little of it
    is padding, and every item is still seen once per pass in a seeded random order of batches."""
    while True:
        order = list(range(n))
        rng.shuffle(order)
        if lengths is None:
            yield from (order[i:i + batch_size] for i in range(0, n, batch_size))
            continue
        span = batch_size * GROUP_SPAN
        batches = []
        for g in range(0, n, span):
            group = sorted(order[g:g + span], key=lambda i: lengths[i])
            batches += [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
        rng.shuffle(batches)
        yield from batches


def make_plan(sizes: dict[str, int], streams: tuple[str, ...], paired: dict[str, str], cfg: TrainConfig,
              lengths: dict[str, list[int]] | None = None):
    """The list of steps ({stream: item indices}) and each step's epoch number (1-based). ``lengths`` (tokens per
    item, per stream) groups batches by length when ``cfg.group_by_length``."""
    rng = random.Random(cfg.seed)
    own = [s for s in streams if s not in paired]
    by_length = lengths if cfg.group_by_length and lengths else {}
    iters = {s: _passes(sizes[s], cfg.batch_size, random.Random(rng.random()), by_length.get(s)) for s in own}
    per_epoch = {s: math.ceil(sizes[s] / cfg.batch_size) for s in own}
    plan, epochs = [], []
    if cfg.schedule == "interleaved":
        total = cfg.max_steps or max(1, round(per_epoch[own[0]] * cfg.epochs))
        for step in range(total):
            plan.append({s: next(iters[s]) for s in own})
            epochs.append(step // per_epoch[own[0]] + 1)
    elif cfg.schedule == "sequential":
        for epoch in range(1, math.ceil(cfg.epochs) + 1):
            for s in own:
                for _ in range(per_epoch[s]):
                    plan.append({s: next(iters[s])})
                    epochs.append(epoch)
        if cfg.max_steps:
            plan, epochs = plan[:cfg.max_steps], epochs[:cfg.max_steps]
    else:
        raise ValueError(f"unknown schedule '{cfg.schedule}'; known: interleaved, sequential")
    for step in plan:
        for s, lead in paired.items():
            if lead in step:
                step[s] = step[lead]
    return plan, epochs


def _fingerprint(streams: dict[str, list[Encoded]]) -> str:
    h = hashlib.sha256()
    for name in sorted(streams):
        h.update(name.encode())
        for e in streams[name]:
            h.update(str((e.input_ids, e.n_prompt, len(e.images))).encode())
            for img in e.images:
                h.update(hashlib.sha256(img).digest())
    return h.hexdigest()


def _chunks(vlm: VisionLanguageModel, items: list[Encoded], n: int, labels: str) -> list[tuple[dict, float]]:
    """One batch as ``n`` chunks of items of similar length, each collated on its own (so padded to its own
    longest item, not the batch's), with its share of the batch's labelled tokens. The token-mean NLL of the
    batch is the share-weighted sum of the chunks' token means: the same loss and gradient as the whole batch
    (up to float rounding), with less padding to compute."""
    ordered = sorted(items, key=lambda e: len(e.input_ids))
    size = math.ceil(len(ordered) / n)
    batches = [vlm.collate(ordered[i:i + size], "right", labels=labels) for i in range(0, len(ordered), size)]
    counts = [int((b["labels"][:, 1:] != -100).sum()) for b in batches]
    total = max(1, sum(counts))
    return [(b, c / total) for b, c in zip(batches, counts)]


class Checkpoints:
    """Checkpoints of one run in ``root/<key>/``; the key changes with anything that changes the result."""

    def __init__(self, root: str | Path, key: str):
        self.dir = Path(root) / key[:16]
        self.file = self.dir / "checkpoint.pt"

    def load(self):
        return torch.load(self.file, map_location="cpu", weights_only=False) if self.file.is_file() else None

    def save(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.file) as tmp:
            torch.save(state, tmp)


def parallel_state() -> tuple[int, int]:
    """(processes, this process's rank); starts the process group when launched by accelerate/torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 1, 0
    from accelerate import PartialState

    # init_process_group: nccl on GPUs; on CPU, accelerate joins gloo only when told it runs on CPU
    state = PartialState(cpu=not torch.cuda.is_available())
    return state.num_processes, state.process_index


def train(vlm: VisionLanguageModel, method: str, streams: dict[str, list[Encoded]], cfg: TrainConfig,
          refs: dict | None = None, checkpoint_root: str | Path | None = None,
          identity: dict | None = None) -> list[dict]:
    """Train ``vlm.model``'s trainable parameters with ``method``'s loss; returns the loss history. ``identity``
    names what the data fingerprint cannot see (the input models' content) for the checkpoint key."""
    spec = get_loss(method)
    if cfg.length_chunks > 1 and method != "nll":
        raise ValueError(f"length_chunks applies to the token-mean NLL of fine-tuning, not to '{method}'")
    missing = [s for s in spec.streams if not streams.get(s)]
    if missing:
        raise ValueError(f"method '{method}' needs non-empty data streams {missing}")
    for s, lead in spec.paired.items():
        if len(streams[s]) != len(streams[lead]):
            raise ValueError(f"stream '{s}' must pair item by item with '{lead}'")
    world, rank = parallel_state()
    plan, epoch_of = make_plan({s: len(streams[s]) for s in spec.streams}, spec.streams, spec.paired,
                               dataclasses.replace(cfg, batch_size=cfg.batch_size * world),
                               {s: [len(e.input_ids) for e in streams[s]] for s in spec.streams})
    groups = [list(range(i, min(i + cfg.grad_accum, len(plan)))) for i in range(0, len(plan), cfg.grad_accum)]
    epoch_of = [epoch_of[g[-1]] for g in groups]  # an optimiser step belongs to the epoch of its last micro-step
    total = len(groups)
    params = [p for p in vlm.model.parameters() if p.requires_grad]
    names = [n for n, p in vlm.model.named_parameters() if p.requires_grad]
    model = vlm.model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        # A full fine-tune (the tiny base's pre-training) trains the vision tower and projector too, which a
        # text-only piece of a batch never reaches: DDP must look for parameters without a gradient. LoRA on the
        # language model is reached by every piece, so it skips that walk over the graph.
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                        find_unused_parameters=any("lora_" not in n for n in names))
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched_total = epoch_of[-1] if cfg.lr_step == "epoch" else total
    warmup = round(sched_total * cfg.warmup_ratio)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup
        else max(0.0, (sched_total - s) / max(1, sched_total - warmup)))

    history, start = [], 1
    ckpt = None
    if checkpoint_root is not None:
        # the process count is in the key: it sets the global batch, so the plan
        key = hashlib.sha256(json.dumps([method, asdict(cfg), world, _fingerprint(streams), names, identity],
                                        sort_keys=True, default=str).encode()).hexdigest()
        ckpt = Checkpoints(checkpoint_root, key)
        state = ckpt.load()
        if state is not None:
            with torch.no_grad():
                for p, saved in zip(params, state["params"]):
                    p.copy_(saved)
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["torch_rng"])
            if state.get("cuda_rng") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            history, start = state["history"], state["step"] + 1
            log.info("resuming %s from checkpoint %s at step %d/%d", method, ckpt.file, start, total)

    vlm.model.train()
    t0 = time.time()
    log.info("training %s: %d steps (%s schedule, %s), batch %d x %d processes x %d accumulation, lr %g", method,
             total, cfg.schedule, ", ".join(f"{len(streams[s])} '{s}' items" for s in spec.streams),
             cfg.batch_size, world, cfg.grad_accum, cfg.lr)
    for step in range(start, total + 1):
        optimizer.zero_grad(set_to_none=True)
        micro = groups[step - 1]
        losses, logs = [], {}
        for j, m in enumerate(micro):
            # this process's share of the global batch (every world-th item; never empty, DDP needs every rank)
            mine = {s: [streams[s][i] for i in (idx[rank::world] or idx[-1:])] for s, idx in plan[m].items()}
            if cfg.length_chunks > 1:
                pieces = [({"train": b}, share) for b, share in _chunks(vlm, mine["train"], cfg.length_chunks,
                                                                       cfg.labels)]
            else:
                pieces = [({s: vlm.collate(items, "right", labels=cfg.labels) for s, items in mine.items()}, 1.0)]
            micro_loss = 0.0
            for k, (batches, share) in enumerate(pieces):
                # DDP all-reduces on the last piece of the last micro-step only
                sync = world == 1 or (j == len(micro) - 1 and k == len(pieces) - 1)
                with contextlib.nullcontext() if sync else model.no_sync():
                    loss, logs = spec.fn(model, batches, refs or {}, cfg.hp)
                    (loss * share / len(micro)).backward()
                micro_loss += loss.item() * share
            logs = {"nll": micro_loss} if len(pieces) > 1 else logs
            losses.append(micro_loss)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        if cfg.lr_step == "step" or step == total or epoch_of[step] != epoch_of[step - 1]:
            schedule.step()
        row = {"step": step, "epoch": epoch_of[step - 1], "streams": "+".join(plan[micro[-1]]),
               "loss": sum(losses) / len(losses), "lr": lr, **logs}
        history.append(row)
        if rank == 0 and (step % cfg.log_every == 0 or step == total):
            rate = (step - start + 1) / (time.time() - t0)
            log.info("step %d/%d loss %.4f %s (%.2f steps/s, eta %.0f s)", step, total, row["loss"],
                     " ".join(f"{k} {v:.4f}" for k, v in logs.items()), rate, (total - step) / rate)
        # the last step too: a job stopped before its run is written, or failed by its cluster after the write (Snakemake
        # then deletes the run), resumes at the end and trains nothing
        if rank == 0 and ckpt and cfg.checkpoint_every and (step % cfg.checkpoint_every == 0 or step == total):
            ckpt.save({"step": step, "params": [p.detach().clone() for p in params],
                       "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                       "torch_rng": torch.get_rng_state(), "history": history,
                       "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None})
    vlm.model.eval()
    return history
