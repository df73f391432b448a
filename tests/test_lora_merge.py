"""The peft-free LoRA merge (models/lora_merge.py) against peft's own merge_and_unload, bit for bit."""
import json
import subprocess
import sys

import pytest
import torch

from mmunlearn.models.lora_merge import merge_lora, plain_lora_config
from mmunlearn.models.registry import LLAVA_LORA_TARGET
from mmunlearn.models.tiny import build_tiny_llava, train_tokenizer

TINY = dict(vocab_size=300, image_size=16, patch_size=8, vision_hidden=16, vision_layers=2, vision_heads=2,
            hidden=32, intermediate=64, layers=2, heads=2, max_positions=256)
TEXTS = ["USER: <image>\nWhat is the job of this person?\nASSISTANT: baker pilot nurse"] * 20


def trained_adapter(model, out, seed, rslora=False, **extra):
    """A LoRA adapter with non-zero A and B (as after training), saved as the trainer saves one."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=LLAVA_LORA_TARGET,
                                                  use_rslora=rslora, **extra))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.3)
    peft_model.save_pretrained(out)
    return peft_model.unload()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny LLaVA saved as a base, plus two chained adapters (vanilla, then an unlearning run on the merge)."""
    from peft import PeftModel

    root = tmp_path_factory.mktemp("lora")
    model, processor = build_tiny_llava(train_tokenizer(TEXTS, TINY["vocab_size"]), TINY, seed=0)
    model.save_pretrained(root / "base")
    processor.save_pretrained(root / "base")
    model = trained_adapter(model, root / "a1", seed=1)
    merged = PeftModel.from_pretrained(model, root / "a1").merge_and_unload()
    trained_adapter(merged, root / "a2", seed=2, rslora=True)
    return root


def load_base(root, dtype):
    from transformers import LlavaForConditionalGeneration

    return LlavaForConditionalGeneration.from_pretrained(root / "base", dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_merge_equals_peft_bit_for_bit(base, dtype):
    from peft import PeftModel

    ours, theirs = load_base(base, dtype), load_base(base, dtype)
    for adapter in (base / "a1", base / "a2"):
        cfg, why = plain_lora_config(adapter)
        assert cfg is not None, why
        assert merge_lora(ours, adapter, cfg) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
        theirs = PeftModel.from_pretrained(theirs, adapter).merge_and_unload()
    theirs_params = dict(theirs.named_parameters())
    changed = 0
    for name, p in ours.named_parameters():
        assert p.dtype == dtype
        assert torch.equal(p, theirs_params[name]), name
        changed += not torch.equal(p, dict(load_base(base, dtype).named_parameters())[name]) if "proj" in name else 0
    assert changed > 0  # the adapters did change the weights


def test_load_model_merges_without_importing_peft(base):
    """The evaluation's load path: a two-adapter chain, merged, with peft never imported (~3 s per job)."""
    for i, adapter in enumerate(("a1", "a2")):
        run = base / f"run{i}"
        run.mkdir(exist_ok=True)
        (run / "adapter").mkdir(exist_ok=True)
        for f in (base / adapter).iterdir():
            (run / "adapter" / f.name).write_bytes(f.read_bytes())
        (run / "run.json").write_text(json.dumps({"parent_run": str(base / "run0") if i else None}))
    code = ("import sys, torch; from mmunlearn.models.loading import load_model; "
            f"vlm = load_model({{'family': 'llava', 'source': 'tiny', 'dtype': 'float32'}}, {str(base / 'base')!r}, "
            f"{str(base / 'run1')!r}); print('peft' in sys.modules, type(vlm.model).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "LlavaForConditionalGeneration"]


@pytest.mark.parametrize("change, reason", [
    ({"use_dora": True}, "use_dora=True"),
    ({"bias": "lora_only"}, "bias='lora_only'"),
    ({"rank_pattern": {"q_proj": 8}}, "rank_pattern"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ({"some_new_peft_feature": 1}, "unknown adapter_config key 'some_new_peft_feature'"),
])
def test_anything_beyond_plain_lora_goes_to_peft(base, tmp_path, change, reason):
    cfg = json.loads((base / "a1" / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps({**cfg, **change}))
    (tmp_path / "adapter_model.safetensors").write_bytes((base / "a1" / "adapter_model.safetensors").read_bytes())
    plain, why = plain_lora_config(tmp_path)
    assert plain is None and reason in why


def test_a_weight_naming_no_linear_is_an_error(base, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(base / "a1" / "adapter_model.safetensors"))
    module = next(iter(tensors)).rsplit(".lora_", 1)[0]  # move one module's A and B to a layer that does not exist
    for part in ("lora_A", "lora_B"):
        tensors[f"{module}.{part}.weight".replace("layers.0", "layers.9")] = tensors.pop(f"{module}.{part}.weight")
    save_file(tensors, str(tmp_path / "adapter_model.safetensors"))
    cfg, _ = plain_lora_config(base / "a1")
    with pytest.raises(ValueError, match=r"adapter_model.safetensors.*layers\.9.*not a Linear"):
        merge_lora(load_base(base, torch.float32), tmp_path, cfg)
