"""What a GPU run relies on, checked where it can be on CPU: SDPA attention (what loading asks for) agrees with
eager attention, and a bf16 model trains with LoRA and decodes."""
import numpy as np
import pytest
import torch

from mmunlearn.data.synthetic import render_face
from mmunlearn.eval.decode import greedy_generate
from mmunlearn.models import prompts
from mmunlearn.models.loading import load_model
from mmunlearn.models.tiny import build_tiny_idefics2, build_tiny_llava, train_tokenizer
from mmunlearn.train.losses import mean_nll
from mmunlearn.train.stages import add_lora

TINY = dict(vocab_size=300, image_size=16, patch_size=8, vision_hidden=16, vision_layers=2, vision_heads=2,
            hidden=32, intermediate=64, layers=2, heads=2, max_positions=256, resampler_latents=4)
TEXTS = ["USER: <image>\nWhat is the job of this person?\nASSISTANT: baker pilot nurse User: Assistant:"] * 30
BUILD = {"llava": build_tiny_llava, "idefics2": build_tiny_idefics2}


@pytest.fixture(scope="module", params=["llava", "idefics2"])
def saved(request, tmp_path_factory):
    """A tiny model saved to disk, loaded back the way every stage loads a base (registry: attn sdpa)."""
    fam = request.param
    model, processor = BUILD[fam](train_tokenizer(TEXTS, TINY["vocab_size"], fam), TINY, seed=0)
    path = tmp_path_factory.mktemp(fam)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return fam, path


def _batch(vlm):
    img = render_face(np.arange(48).reshape(4, 4, 3), 16)
    enc = [vlm.encode(prompts.qa_prompt("What is the job of this person?", True), " baker", (img,)),
           vlm.encode(prompts.qa_prompt("What does Ada do?", False), " pilot nurse")]
    return vlm.collate(enc, labels="answer")


def test_sdpa_matches_eager(saved):
    fam, path = saved
    vlm = load_model({"family": fam, "source": "tiny", "dtype": "float64"}, str(path))
    assert vlm.model.config._attn_implementation == "sdpa"
    batch = _batch(vlm)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        sdpa = vlm.model(**inputs).logits
        vlm.model.set_attn_implementation("eager")
        eager = vlm.model(**inputs).logits
    mask = batch["attention_mask"].bool()
    # float64 model, but HF's eager attention takes its softmax in float32: agreement to ~1e-7, not 1e-15
    assert (sdpa[mask] - eager[mask]).abs().max().item() < 1e-6


def test_bf16_trains_with_lora_and_decodes(saved):
    fam, path = saved
    vlm = load_model({"family": fam, "source": "tiny", "dtype": "bfloat16"}, str(path))
    assert vlm.model.dtype == torch.bfloat16
    add_lora(vlm, {"r": 4, "alpha": 8, "dropout": 0.0}, seed=0)
    batch = _batch(vlm)
    assert batch["pixel_values"].dtype == torch.bfloat16
    vlm.model.train()
    loss = mean_nll(vlm.model(**{k: v for k, v in batch.items() if k != "labels"}).logits, batch["labels"])
    loss.backward()
    grads = [p.grad for n, p in vlm.model.named_parameters() if "lora_B" in n]
    assert torch.isfinite(loss) and grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    vlm.model.eval()
    out = greedy_generate(vlm, [vlm.encode(prompts.qa_prompt("What does Ada do?", False))], 4, 1)
    assert isinstance(out[0], str)
