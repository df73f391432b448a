"""Loading a model run: the base weights, then the chain of adapters that made it.

A run is stored as a LoRA adapter (safetensors) plus the processor, never as a merged model. An unlearning
run's adapter was trained on top of the merged vanilla model, so loading it means: base, merge the vanilla
adapter, apply (and for evaluation merge) the run's own adapter. ``run.json`` beside each adapter names its
parent, so the chain is read from disk rather than re-derived.

A vanilla model may also be *imported* instead of trained (``models.<m>.vanilla``): the authors' released
merged checkpoint (``MLLMMU/LLaVA_Vanilla``), any full local model, or a local LoRA adapter. A full model is
recorded in the run's ``run.json`` as ``model_source`` and becomes the base of every chain through that run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from .lora_merge import merge_lora, plain_lora_config
from .registry import DTYPES, VisionLanguageModel, family

log = logging.getLogger(__name__)


def adapter_chain(run_dir: str | Path | None) -> tuple[dict | None, list[Path]]:
    """The full model the chain starts from (None: the configured base) and the adapters to apply, in order."""
    chain, source = [], None
    while run_dir:
        run_dir = Path(run_dir)
        meta = json.loads((run_dir / "run.json").read_text())
        if meta.get("model_source"):
            source = {"source": meta["model_source"], "revision": meta.get("model_revision")}
            break
        chain.insert(0, run_dir / "adapter")
        run_dir = meta.get("parent_run")
    return source, chain


def default_device() -> torch.device:
    """This process's accelerator: the GPU of its local rank (one process per GPU under accelerate/torchrun),
    else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def load_model(model_cfg: dict, base_source: str, run_dir: str | Path | None = None, dtype: str | None = None,
               device_map=None, merge: bool = True) -> VisionLanguageModel:
    """Base model (or the imported full model the chain starts from) plus every adapter of ``run_dir``'s chain,
    merged into the weights. ``device_map`` (e.g. "auto" to shard one model over several GPUs) or, when None,
    the whole model on ``default_device()``."""
    fam = family(model_cfg["family"])
    torch_dtype = DTYPES[dtype or model_cfg["dtype"]]
    revision = model_cfg.get("revision") if model_cfg.get("source") == "hub" else None
    start, chain = adapter_chain(run_dir)
    if start is None:
        model = fam.load(base_source, revision, torch_dtype, device_map)
        processor = fam.processor(base_source, revision, **(model_cfg.get("processor") or {}))
    else:
        # the authors' released checkpoints hold weights only (spec §3): the processor is the base model's, as it
        # is (no revision of the checkpoint's applies)
        log.info("starting from the imported model %s", start["source"])
        model = fam.load(start["source"], start["revision"], torch_dtype, device_map)
        processor = fam.processor(base_source, None, **(model_cfg.get("processor") or {}))
    if device_map is None:
        model.to(default_device())
    for adapter in chain:
        log.info("applying adapter %s", adapter)
        plain, why_not = plain_lora_config(adapter) if merge else (None, "merge=False")
        if plain is not None:
            merge_lora(model, adapter, plain)  # what peft's merge computes, without importing peft (lora_merge.py)
            continue
        from peft import PeftModel

        if merge:
            log.info("merging through peft: %s", why_not)
        model = PeftModel.from_pretrained(model, adapter)
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return VisionLanguageModel(model, processor, model_cfg["family"])
