"""Measuring what a rule's job needs, on the machine the preflight runs on: peak accelerator and host memory,
time per training step or evaluation batch, and token throughput, with the study's own code (loading, LoRA,
gradient checkpointing, losses and frozen references, the trainer, the evaluation tasks with prefix reuse).

Where the weights come from (``ModelSource``): the hub snapshot in the Hugging Face cache when it holds weights
(as the study loads it); otherwise the same architecture at full size with random weights, from the cached
``config.json`` or, for LLaVA-1.5-7B, the architecture written out in models/reference.py; a tiny model is built
from its config block. Memory and speed do not depend on the weights' values; a random model never stops early,
so its generation runs to ``max_new_tokens``: an upper bound of a trained model's.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..models import reference
from ..models.loading import default_device, load_model
from ..models.registry import DTYPES, VisionLanguageModel, family
from ..models.tiny import train_tokenizer

log = logging.getLogger(__name__)

GB = 1e9  # memory in GB of 10^9 bytes, as resources.gpu_mem_gb and the README's memory table


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def process_age_s() -> float:
    """Seconds since this process started (Linux /proc; 0 elsewhere): called after a job script's imports, the
    start-up every job of the study pays before it loads a model."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return max(0.0, float(f.read().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return 0.0


class Meter:
    """Peak memory and wall time of a block: the accelerator's (torch's allocator peak of reserved memory, reset
    on entry: what an out-of-memory error is decided on) and the host's (this process's resident set, sampled
    every ``interval`` seconds by a thread, since a model load can peak and fall between two reads)."""

    def __init__(self, device: torch.device, interval: float = 0.01):
        self.cuda = device.type == "cuda"
        self.interval = interval
        self.peak_host_mb = 0.0
        self.peak_gpu_gb: float | None = None
        self.seconds = 0.0

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak_host_mb = max(self.peak_host_mb, rss_mb())

    def __enter__(self):
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self.peak_host_mb = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self._t0
        self._stop.set()
        self._thread.join()
        self.peak_host_mb = max(self.peak_host_mb, rss_mb())
        if self.cuda:
            self.peak_gpu_gb = torch.cuda.max_memory_reserved() / GB
        return False


def synchronized_time(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


class TokenCounter:
    """Token positions a model computes (padding included), counted at its forward: training batches, prefill
    and every decode step alike."""

    def __init__(self, model: torch.nn.Module):
        self.tokens = 0
        self._handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None and kwargs.get("inputs_embeds") is not None:
            ids = kwargs["inputs_embeds"][..., 0]
        self.tokens += int(ids.numel()) if ids is not None else 0

    def close(self) -> int:
        self._handle.remove()
        return self.tokens


@dataclass
class ModelSource:
    """How the preflight gets one configured model, and what it measured on (recorded in the report)."""

    name: str
    family: str
    weights: str  # "hub cache", "random: tiny config", "random: cached hub config", "random: built-in ..."
    tokenizer: str  # the model's own, or a stand-in trained on the dataset's text (text token counts differ)
    load: Callable[[], VisionLanguageModel]


def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The hub snapshot in the Hugging Face cache, if any (never downloads)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (LocalEntryNotFoundError and friends): the caller says so
        return None


def _qwen_config(tok):
    ids = {k: tok.convert_tokens_to_ids(t) for k, t in (("image_token_id", "<|image_pad|>"),
                                                         ("video_token_id", "<|video_pad|>"),
                                                         ("vision_start_token_id", "<|vision_start|>"),
                                                         ("vision_end_token_id", "<|vision_end|>"))}
    return reference.qwen2_5_vl_7b_config(**ids)


def _qwen_processor(tok, model_cfg):
    from ..models.processors import ImageTextProcessor, qwen2_vl_image_processor

    return ImageTextProcessor(tok, qwen2_vl_image_processor(patch_size=14, merge_size=2, temporal_patch_size=2,
                                                            **(model_cfg.get("processor") or {})))


# Architectures written out for offline use (models/reference.py), by hub id:
# (config(tokenizer), processor(tokenizer, model config entry))
BUILT_IN = {
    "llava-hf/llava-1.5-7b-hf": (
        lambda tok: reference.llava_1_5_7b_config(image_token_id=tok.convert_tokens_to_ids("<image>")),
        lambda tok, model_cfg: reference.llava_1_5_processor(tok)),
    "Qwen/Qwen2.5-VL-7B-Instruct": (_qwen_config, _qwen_processor)}


def random_model(config, dtype: torch.dtype, device: torch.device):
    """The architecture of ``config`` with random weights, built on ``device`` in ``dtype`` with the attention
    implementation the study loads (sdpa)."""
    from transformers import AutoModelForImageTextToText

    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def model_source(name: str, model_cfg: dict, base_source: str, corpus_text: Callable[[], list[str]],
                 seed: int, weights: str = "auto") -> ModelSource:
    """Where the preflight's copy of model ``name`` comes from (module docstring). ``corpus_text()``: the
    dataset's text, for a tiny model's tokenizer or a stand-in one. ``weights: random`` skips cached weights."""
    fam = family(model_cfg["family"])
    dtype = DTYPES[model_cfg["dtype"]]
    if model_cfg["source"] == "tiny":
        tiny = model_cfg["tiny"]
        tokenizer = train_tokenizer(corpus_text(), tiny["vocab_size"], fam.name)

        def load_tiny():
            model, processor = fam.build_tiny(tokenizer, {**tiny, **(model_cfg.get("processor") or {})}, seed)
            return VisionLanguageModel(model.to(dtype).to(default_device()).eval(), processor, fam.name)

        return ModelSource(name, fam.name, "random: tiny config", "its own (trained on the dataset)", load_tiny)
    hub_id, revision = model_cfg["hub_id"], model_cfg.get("revision")
    snapshot = cached_snapshot(hub_id, revision)
    if weights != "random" and snapshot is not None and any(snapshot.glob("*.safetensors")):
        return ModelSource(name, fam.name, "hub cache", "its own",
                           lambda: load_model(model_cfg, base_source))
    if snapshot is not None and (snapshot / "config.json").is_file():
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(snapshot)
        processor = fam.processor(snapshot, None, **(model_cfg.get("processor") or {}))  # as load_model builds it
        return ModelSource(name, fam.name, "random: cached hub config", "its own",
                           lambda: VisionLanguageModel(random_model(config, dtype, default_device()), processor,
                                                       fam.name))
    if hub_id in BUILT_IN:
        make_config, make_processor = BUILT_IN[hub_id]
        tokenizer = train_tokenizer(corpus_text(), 32000, fam.name)
        config, processor = make_config(tokenizer), make_processor(tokenizer, model_cfg)
        return ModelSource(name, fam.name, f"random: built-in {hub_id} architecture",
                           "stand-in trained on the dataset (its text token counts differ from the real tokenizer's;"
                           " image tokens are the real processor's)",
                           lambda: VisionLanguageModel(random_model(config, dtype, default_device()), processor,
                                                       fam.name))
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    raise ValueError(f"preflight: models.{name}: neither weights nor a config.json of {hub_id} are in the Hugging "
                     f"Face cache ({home}) and no built-in architecture is known for it: fetch it first "
                     f"(snakemake results/models/{name}/hub.json, on a node with internet)")


def timed_load(source: ModelSource, device: torch.device) -> tuple[VisionLanguageModel, float, float | None]:
    """The model, the seconds its load took, and the accelerator memory its weights hold (None on CPU)."""
    t0 = synchronized_time(device)
    vlm = source.load()
    load_s = synchronized_time(device) - t0
    return vlm, load_s, torch.cuda.memory_allocated() / GB if device.type == "cuda" else None


def _longest(items: list, batch_size: int, key) -> list[int]:
    """Indices of the ``batch_size`` longest items by ``key``."""
    order = sorted(range(len(items)), key=lambda i: key(items[i]), reverse=True)
    return sorted(order[:batch_size])


def probe_training(source: ModelSource, method: str, stream_items: dict[str, list], hp: dict, seed: int,
                   steps: int, lora: bool = True) -> dict:
    """A few optimiser steps of one training rule: the model loaded as the study loads it, the method's frozen
    references, LoRA (``lora=False``: a full fine-tune, the tiny base's pre-training) and gradient checkpointing
    as configured. ``stream_items``: the job's training items per data stream. One warm-up step, then ``steps``
    steps on the longest batch (each stream's ``batch_size`` longest items by tokens: the memory peak), then
    ``steps`` steps drawn as the job draws them (the config's batching, from a seeded sample of the items: the
    time per step the projection uses; the longest batch's is reported beside it)."""
    import random

    from ..train.losses import get_loss
    from ..train.stages import add_lora, enable_gradient_checkpointing, encode_items, reference_models, train_config
    from ..train.trainer import train

    spec = get_loss(method)
    device = default_device()
    batch = hp["batch_size"]
    with Meter(device) as whole:
        vlm, load_s, model_gb = timed_load(source, device)
        longest, typical = {}, {}
        rng = random.Random(seed)

        def encode(items):
            return encode_items(vlm, items, hp.get("append_eos", False), hp.get("max_length"))

        for s in (s for s in spec.streams if s not in spec.paired):
            items = stream_items[s]
            # candidates by characters (an item's images are the same in a stream), then the longest by tokens
            short = _longest(items, 4 * batch, lambda it: len(it.prompt) + len(it.answer))
            encoded = encode([items[i] for i in short])
            chosen = [short[i] for i in _longest(encoded, batch, lambda e: len(e.input_ids))]
            sample = sorted(rng.sample(range(len(items)), min(len(items), 2 * steps * batch)))
            longest[s], typical[s] = encode([items[i] for i in chosen]), encode([items[i] for i in sample])
            for paired, lead in spec.paired.items():  # the same items' pairs (IdkPO's "I don't know" answers)
                if lead == s:
                    longest[paired] = encode([stream_items[paired][i] for i in chosen])
                    typical[paired] = encode([stream_items[paired][i] for i in sample])
        refs = reference_models(spec, vlm, lambda: source.load().model)
        if lora:
            add_lora(vlm, hp["lora"], seed)
        if hp.get("gradient_checkpointing"):
            enable_gradient_checkpointing(vlm)
        cfg = dataclasses.replace(train_config(hp, seed), log_every=10 ** 9, checkpoint_every=None,
                                  epochs=steps + 1)
        train(vlm, method, longest, dataclasses.replace(cfg, max_steps=1), refs)  # warm-up: kernels, allocator
        timed = {}
        for name, streams in (("longest", longest), ("typical", typical)):
            counter = TokenCounter(vlm.model)
            t0 = synchronized_time(device)
            train(vlm, method, streams, dataclasses.replace(cfg, max_steps=steps), refs)
            timed[name] = (synchronized_time(device) - t0, counter.close())
    del vlm, refs
    gc.collect()
    (seconds, tokens), (worst, _) = timed["typical"], timed["longest"]
    return {"peak_gpu_gb": whole.peak_gpu_gb, "peak_host_mb": whole.peak_host_mb, "model_gb": model_gb,
            "load_s": load_s, "step_s": seconds / steps, "step_s_longest": worst / steps,
            "tokens_per_s": tokens / seconds,
            "longest_batch_tokens": {s: sum(len(e.input_ids) for e in items) for s, items in longest.items()},
            "steps_measured": steps, "gradient_checkpointing": bool(hp.get("gradient_checkpointing"))}


@dataclass
class EvalSplit:
    """One split (or utility benchmark) the study evaluates, as ``score_tasks`` would: its people or units,
    their images, its tasks and the few-shot chooser."""

    name: str  # forget_10, celebrity, mmmu, ...
    tasks: list[str]
    profiles: list
    images: dict
    fewshot: Callable
    options: dict = dataclasses.field(default_factory=dict)


def probe_evaluation(source: ModelSource, splits: list[EvalSplit], probe_splits: dict[str, str], eval_cfg: dict,
                     seed: int) -> dict:
    """Counts every split's items per task and input modality, then times one batch of ``eval.batch_size`` of the
    longest prompts (most images, then longest text: the few-shot prompts) per task and modality, on the split
    ``probe_splits[task]`` names, with the study's decoding (stopping rule, prefix reuse). Per split, the
    projected seconds follow (preflight/plan.py ``split_seconds``)."""
    from ..eval.runner import task_context
    from ..eval.tasks import get_task, prepare, run_task
    from .plan import split_seconds

    device = default_device()
    batch = eval_cfg["batch_size"]
    by_name = {s.name: s for s in splits}
    with Meter(device) as whole:
        vlm, load_s, model_gb = timed_load(source, device)
        items: dict[str, dict[str, int]] = {}
        for sp in splits:
            counts = items.setdefault(sp.name, {})
            for task_name in sp.tasks:
                task = get_task(task_name)
                ctx = task_context(vlm, sp.name, sp.images, task_name, eval_cfg, sp.fewshot(task_name), seed,
                                   sp.options)
                for modality in task.modalities:
                    counts[f"{task_name}/{modality}"] = len(prepare(task, sp.profiles, modality, ctx).records)
        batches = {}
        for task_name, split_name in probe_splits.items():
            sp, task = by_name[split_name], get_task(task_name)
            ctx = task_context(vlm, sp.name, sp.images, task_name, eval_cfg, sp.fewshot(task_name), seed, sp.options)
            for modality in task.modalities:
                prep = prepare(task, sp.profiles, modality, ctx)
                if not prep.records:
                    continue
                order = sorted(range(len(prep.records)), key=lambda k: (len(prep.images[k]), len(prep.prompts[k])),
                               reverse=True)
                chosen, n = [], 0
                for k in order:  # the people of the longest prompts, until they hold a batch
                    pid = prep.records[k]["profile_id"]
                    if pid not in chosen:
                        chosen.append(pid)
                        n = sum(r["profile_id"] in chosen for r in prep.records)
                    if n >= batch:
                        break
                people = [p for p in sp.profiles if getattr(p, "id", None) in chosen]
                run_task(task, people[:1], modality, ctx)  # warm-up: kernels, allocator, the scorer's imports
                counter = TokenCounter(vlm.model)
                t0 = synchronized_time(device)
                scored = run_task(task, people, modality, ctx)
                seconds = synchronized_time(device) - t0
                tokens = counter.close()
                done = max(1, len(scored))
                batches[f"{task_name}/{modality}"] = {
                    "split": split_name, "items": len(scored), "seconds": seconds,
                    "batch_s": seconds * batch / done if done >= batch else seconds,
                    "tokens_per_s": tokens / seconds if seconds else 0.0,
                    "max_new_tokens": ctx.max_new_tokens}
    del vlm
    gc.collect()
    batch_s = {k: v["batch_s"] for k, v in batches.items()}
    for counts in items.values():  # a task scored on no probe item (no such people) costs nothing elsewhere
        for key in [k for k in counts if k not in batch_s]:
            if counts[key]:
                raise ValueError(f"preflight: {key} has items but was not measured (probe split "
                                 f"{probe_splits.get(key.split('/')[0])})")
            del counts[key]
    tokens = sum(b["tokens_per_s"] * b["seconds"] for b in batches.values())
    seconds = sum(b["seconds"] for b in batches.values())
    return {"peak_gpu_gb": whole.peak_gpu_gb, "peak_host_mb": whole.peak_host_mb, "model_gb": model_gb,
            "load_s": load_s, "batch_size": batch, "batches": batches, "items": items,
            "tokens_per_s": tokens / seconds if seconds else 0.0,
            "split_s": {name: split_seconds(counts, batch_s, batch) for name, counts in items.items()}}


def device_description() -> dict:
    """The accelerator the preflight measured on."""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(default_device())
        return {"kind": "cuda", "name": props.name, "memory_gb": round(props.total_memory / GB, 1),
                "torch": torch.__version__, "cuda": torch.version.cuda}
    return {"kind": "cpu", "name": f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads",
            "memory_gb": None, "torch": torch.__version__, "cuda": None}

