"""The tiny LLaVA: built offline from config, LoRA on the language model only, prompt/answer masking, and
batched left-padded greedy decoding equal to one-at-a-time decoding."""
import numpy as np
import pytest
import torch

from mmunlearn.data.synthetic import render_face
from mmunlearn.eval.decode import continuation_logliks, greedy_generate
from mmunlearn.models.registry import VisionLanguageModel
from mmunlearn.models.tiny import build_tiny_llava, train_tokenizer
from mmunlearn.train.stages import add_lora

TINY = dict(vocab_size=300, image_size=16, patch_size=8, vision_hidden=16, vision_layers=2, vision_heads=2,
            hidden=32, intermediate=64, layers=2, heads=2, max_positions=256)
TEXTS = ["USER: <image>\nWhat is the job of this person?\nASSISTANT: baker pilot nurse",
         "Just give ONE letter representing the answer directly. A: B: C: D:"] * 20


@pytest.fixture(scope="module")
def vlm():
    tok = train_tokenizer(TEXTS, TINY["vocab_size"])
    model, processor = build_tiny_llava(tok, TINY, seed=0)
    model.to(torch.float64).eval()
    return VisionLanguageModel(model, processor, "llava")


def test_image_tokens_match_config(vlm):
    assert vlm.image_tokens == (16 // 8) ** 2 == vlm.model.config.image_seq_length


def test_encode_masks_the_prompt(vlm):
    img = render_face(np.zeros((4, 4, 3), dtype=int), 16)
    enc = vlm.encode("USER: <image>\nWhat is the job of this person?\nASSISTANT:", " baker", (img,), append_eos=True)
    assert enc.input_ids[-1] == vlm.tokenizer.eos_token_id
    answer = vlm.collate([enc], labels="answer")["labels"][0]
    assert (answer[: enc.n_prompt] == -100).all() and (answer[enc.n_prompt:] != -100).all()
    everything = vlm.collate([enc], labels="all")["labels"][0]
    assert (everything != -100).all()


def test_lora_only_on_language_model(vlm):
    import copy

    clone = VisionLanguageModel(copy.deepcopy(vlm.model), vlm.processor, "llava")
    adapted = add_lora(clone, {"r": 4, "alpha": 4, "dropout": 0.0}, seed=0)
    assert len(adapted) == TINY["layers"] * 7
    assert all(m.startswith("model.language_model.layers.") for m in adapted)
    trainable = [n for n, p in clone.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "vision" not in n and "projector" not in n for n in trainable)


def test_batched_greedy_equals_sequential(vlm):
    img_a = render_face(np.arange(48).reshape(4, 4, 3) * 5, 16)
    img_b = render_face(np.full((4, 4, 3), 200), 16)
    prompts = [("USER: <image>\nWhat is the job of this person?\nASSISTANT:", (img_a,)),
               ("USER:\nA?\nASSISTANT:", ()),
               ("USER: <image>\nQuestion: x\nCorrect Answer: B\nUSER: <image>\nWhat is the job of this "
                "person? A: baker B: pilot C: nurse D: pilot\nJust give ONE letter representing the answer "
                "directly.\nASSISTANT:", (img_b, img_a)),
               ("USER:\nWhat is the job of Ada Berg, the baker or the pilot or the nurse?\nASSISTANT:", ())]
    items = [vlm.encode(p, images=imgs) for p, imgs in prompts]
    batched = greedy_generate(vlm, items, max_new_tokens=6, batch_size=4)
    single = [greedy_generate(vlm, [it], max_new_tokens=6, batch_size=1)[0] for it in items]
    assert batched == single
    stopped = greedy_generate(vlm, items, max_new_tokens=6, batch_size=4, stop="first_visible")
    for full, short in zip(batched, stopped):  # the stopping rule never changes the first visible character
        assert full.strip()[:1] == short.strip()[:1]


def test_logliks_batched_equal_single(vlm):
    items = [vlm.encode("USER:\nWhat is the job of this person?\nASSISTANT:", f" {w}") for w in
             ("baker", "pilot", "a nurse who flies")]
    batched = continuation_logliks(vlm, items, batch_size=3)
    single = [continuation_logliks(vlm, [it], batch_size=1)[0] for it in items]
    assert batched == pytest.approx(single, abs=1e-9)
    assert all(v < 0 for v in batched)
