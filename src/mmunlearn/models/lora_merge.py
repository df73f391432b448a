"""Merging a plain LoRA adapter into a model's weights without importing peft.

Why: every evaluation job loads a run as base + merged adapters, and importing peft cost ~1 s of every demo
evaluation job beyond what the job imports anyway (peft pulls in FSDP, torch.distributed.tensor and other model
modules at import time; load 3.8 -> 2.8 s measured). A plain
LoRA merge is W += (B @ A) * scaling per adapted Linear, which this module does with the same operations, in the
same dtype and order as peft 0.21's ``LoraLayer.merge`` / ``Linear.get_delta_weight``
(peft/tuners/lora/layer.py; scaling = lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA). The result is
bit-identical to ``PeftModel.from_pretrained(...).merge_and_unload()`` (tests/test_lora_merge.py, float32,
bfloat16 and float64).

Anything beyond a plain LoRA (DoRA, biases, per-module ranks, modules_to_save, a config key this module does not
know, a weight that names no Linear) is not merged here: ``plain_lora_config`` says why, and the caller falls back
to peft, so a new peft feature never silently merges wrong.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

# adapter_config.json keys that do not change what a merge computes (names, init, training-time settings)
NEUTRAL_KEYS = {
    "auto_mapping", "base_model_name_or_path", "inference_mode", "init_lora_weights", "lora_dropout", "peft_type",
    "peft_version", "revision", "target_modules", "task_type", "layers_pattern", "layers_to_transform",
    "exclude_modules", "loftq_config", "megatron_config", "megatron_core", "corda_config", "eva_config",
    "lora_ga_config", "kasa_config", "monteclora_config", "arrow_config", "qalora_group_size", "r", "lora_alpha",
    "use_rslora", "ensure_weight_tying",
}
# keys that must hold their "off" value for the merge to be the plain one
OFF_VALUES = {
    "use_dora": False, "bias": "none", "lora_bias": False, "fan_in_fan_out": False, "modules_to_save": None,
    "rank_pattern": {}, "alpha_pattern": {}, "layer_replication": None, "trainable_token_indices": None,
    "target_parameters": None, "use_qalora": False, "use_bdlora": None, "alora_invocation_tokens": None,
    "velora_config": None,
}
PREFIX = "base_model.model."


def plain_lora_config(adapter_dir: str | Path) -> tuple[dict | None, str]:
    """The adapter's config where it is a plain LoRA this module merges exactly, else (None, the reason)."""
    cfg = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    if cfg.get("peft_type") != "LORA":
        return None, f"peft_type {cfg.get('peft_type')!r}"
    for key, value in cfg.items():
        if key in OFF_VALUES:
            if value not in (OFF_VALUES[key], None, {}, [], False) or (key == "bias" and value != "none"):
                return None, f"{key}={value!r}"
        elif key not in NEUTRAL_KEYS:
            return None, f"unknown adapter_config key {key!r}"
    if not (Path(adapter_dir) / "adapter_model.safetensors").is_file():
        return None, "no adapter_model.safetensors"
    return cfg, ""


def merge_lora(model: torch.nn.Module, adapter_dir: str | Path, cfg: dict) -> int:
    """Add (B @ A) * scaling to every adapted Linear's weight; returns the number of layers merged. Raises
    ValueError (naming the file and key) where a weight names no Linear of ``model`` or A/B do not pair up."""
    from safetensors.torch import load_file

    path = Path(adapter_dir) / "adapter_model.safetensors"
    tensors = load_file(str(path))
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        if not (key.startswith(PREFIX) and key.endswith((".lora_A.weight", ".lora_B.weight"))):
            raise ValueError(f"{path}: weight {key!r} is not a plain LoRA A/B matrix")
        module_path, part = key[len(PREFIX):].rsplit(".", 2)[0], key.rsplit(".", 2)[1]
        pairs.setdefault(module_path, {})[part] = tensor
    modules = dict(model.named_modules())
    r, alpha = cfg["r"], cfg["lora_alpha"]
    scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    for module_path, ab in pairs.items():
        layer = modules.get(module_path)
        if not isinstance(layer, torch.nn.Linear) or set(ab) != {"lora_A", "lora_B"}:
            raise ValueError(f"{path}: {module_path!r} is not a Linear of this model with both lora_A and lora_B")
        weight = layer.weight
        # peft holds adapter weights in the base weight's dtype, upcast to float32 for a float16/bfloat16 base
        # (autocast_adapter_dtype), computes the delta in that dtype and adds it in place into the base weight
        dtype = torch.float32 if weight.dtype in (torch.float16, torch.bfloat16) else weight.dtype
        a = ab["lora_A"].to(device=weight.device, dtype=dtype)
        b = ab["lora_B"].to(device=weight.device, dtype=dtype)
        weight.data += (b @ a) * scaling
    return len(pairs)
