"""The tiny Idefics2: its processor's exact tokenisation, the chat-template training prompt (spec §2.1), LoRA on
the text model only, per-example image batching, learning, and batched greedy decoding."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from mmunlearn.data.synthetic import render_face
from mmunlearn.eval.decode import (answer_token_stats, continuation_logliks, generate_and_score, greedy_generate,
                                   grouped_continuation_logliks)
from mmunlearn.models import prompts
from mmunlearn.models.registry import VisionLanguageModel, idefics2_train_prompt
from mmunlearn.models.tiny import build_tiny_idefics2, train_tokenizer
from mmunlearn.train.losses import mean_nll
from mmunlearn.train.stages import add_lora, encode_items
from mmunlearn.train.examples import TrainItem
from conftest import full_logits_loglik

TINY = dict(vocab_size=300, image_size=16, patch_size=8, vision_hidden=16, vision_layers=2, vision_heads=2,
            hidden=32, intermediate=64, layers=2, heads=2, max_positions=256, resampler_latents=4)
TEXTS = ["User:<image>What is the job of this person?<end_of_utterance>\nAssistant: baker pilot nurse",
         "USER: <image>\nJust give ONE letter representing the answer directly. A: B: C: D:"] * 20
QUESTION = "What is the job of this person?"


def face(seed):
    return render_face(np.random.default_rng(seed).integers(0, 256, (4, 4, 3)), 16)


@pytest.fixture()
def vlm():
    tok = train_tokenizer(TEXTS, TINY["vocab_size"], "idefics2")
    model, processor = build_tiny_idefics2(tok, TINY, seed=0)
    return VisionLanguageModel(model.to(torch.float64), processor, "idefics2")


@pytest.mark.parametrize("prompt", [prompts.qa_prompt(QUESTION, True), idefics2_train_prompt(QUESTION, True) + " x",
                                    prompts.mc_prompt(QUESTION, dict(zip("ABCD", "wxyz")), True)])
def test_tokenisation_equals_the_processor(vlm, prompt):
    image = Image.open(io.BytesIO(face(0))).convert("RGB")
    theirs = vlm.processor(text=[prompt], images=[[image] * prompt.count("<image>")], return_tensors="pt")
    assert vlm.tokenize(prompt) == theirs["input_ids"][0].tolist()
    assert vlm.image_tokens == TINY["resampler_latents"]


def test_training_prompt_is_the_chat_template(vlm):
    """The original trains Idefics2 on apply_chat_template(...).strip() (spec §2.1)."""
    for with_image in (True, False):
        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": QUESTION}]
        messages = [{"role": "user", "content": content},
                    {"role": "assistant", "content": [{"type": "text", "text": "baker"}]}]
        rendered = vlm.processor.apply_chat_template(messages, add_generation_prompt=False).strip()
        item = TrainItem(idefics2_train_prompt(QUESTION, with_image), " baker")
        assert rendered == item.prompt + item.answer + vlm.family.answer_suffix
        encoded = encode_items(vlm, [item], append_eos=False, max_length=None)[0]
        assert vlm.tokenizer.decode(encoded.input_ids[encoded.n_prompt:]) == " baker<end_of_utterance>"


def test_lora_reaches_the_text_model_only(vlm):
    adapted = add_lora(vlm, {"r": 4, "alpha": 8, "dropout": 0.0}, seed=0)
    assert adapted and all(m.startswith("model.text_model.layers.") for m in adapted)
    trainable = [n for n, p in vlm.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "text_model" in n for n in trainable)


def test_mixed_batch_learns(vlm):
    """Image and text-only items in one batch (per-example image layout, zero padding images) and a few steps
    of training lower the loss. Full fine-tuning: LoRA on a randomly initialised model learns slowly (for LLaVA
    alike), which is why the demo pre-trains its tiny base first."""
    items = [TrainItem(idefics2_train_prompt(QUESTION, True), " baker", (face(1),)),
             TrainItem(idefics2_train_prompt("What does Ada do?", False), " pilot")]
    batch = vlm.collate(encode_items(vlm, items, append_eos=True, max_length=None), labels="answer")
    assert batch["pixel_values"].shape[:2] == (2, 1) and batch["pixel_values"][1].abs().sum() == 0
    optimizer = torch.optim.AdamW(vlm.model.parameters(), lr=1e-2)
    losses = []
    vlm.model.train()
    for _ in range(25):
        loss = mean_nll(vlm.model(**{k: v for k, v in batch.items() if k != "labels"}).logits, batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


def test_batched_greedy_equals_one_at_a_time(vlm):
    vlm.model.eval()
    encs = [vlm.encode(prompts.qa_prompt(QUESTION, True), images=(face(2),)),
            vlm.encode(prompts.qa_prompt("What does Ada Berg do for a living?", False)),
            vlm.encode(prompts.qa_prompt(QUESTION, True), images=(face(3),))]
    batched = greedy_generate(vlm, encs, max_new_tokens=5, batch_size=3)
    single = [greedy_generate(vlm, [e], max_new_tokens=5, batch_size=1)[0] for e in encs]
    assert batched == single


def test_answers_on_the_generation_prefill_equal_scoring_them_whole(vlm):
    """Idefics2's KV cache (the image's resampled tokens in it) continued with the gold answers after generation:
    every statistic equals scoring the answer whole (float64), with and without an image, in one left-padded
    batch."""
    vlm.model.eval()
    cases = [(prompts.generation_prompt(QUESTION, True), " a baker", (face(2),)),
             (prompts.generation_prompt("What does Ada Berg do for a living?", False), " pilot nurse", ()),
             (prompts.qa_prompt(QUESTION, True), " nurse", (face(3),))]
    items = [vlm.encode(p, images=imgs) for p, _, imgs in cases]
    answers = [vlm.encode(p.rstrip(), a, images=imgs) for p, a, imgs in cases]
    outputs, tokens = generate_and_score(vlm, items, answers, 5, batch_size=3)
    assert outputs == greedy_generate(vlm, items, max_new_tokens=5, batch_size=3)
    for got, answer in zip(tokens, answers):
        whole = answer_token_stats(vlm, [answer], batch_size=1)[0]
        assert got.top1 == whole.top1
        for field in ("logp", "mean_logp", "std_logp"):
            assert getattr(got, field) == pytest.approx(getattr(whole, field), abs=1e-12)


def test_shared_prefix_reuse_equals_full_prefill(vlm):
    """Idefics2 batches images per example: the few-shot block's images go to the cached prefix, each item's
    own image (or none) to its suffix; outputs equal prefilling everything one item at a time (float64)."""
    demos = "".join(prompts.mc_demo(f"Q{i}?", dict(zip("ABCD", "wxyz")), "B", True) for i in range(2))
    prefix_images = (face(1), face(2))
    suffixes = [(prompts.mc_prompt(QUESTION, dict(zip("ABCD", "wxyz")), True), (face(3),)),
                (prompts.mc_prompt("Who?", dict(zip("ABCD", "pqrs")), False), ()),
                (prompts.mc_prompt(QUESTION + " Really, what?", dict(zip("ABCD", "wxyz")), True), (face(4),))]
    items = [vlm.encode(demos + s, images=prefix_images + imgs) for s, imgs in suffixes]
    prefix = vlm.encode(demos, images=prefix_images)
    reused = greedy_generate(vlm, items, max_new_tokens=5, batch_size=3, prefix=prefix)
    single = [greedy_generate(vlm, [it], max_new_tokens=5, batch_size=1)[0] for it in items]
    assert reused == single


def test_grouped_option_logliks_equal_scoring_each_whole(vlm):
    """Options sharing a question's prompt and image (Idefics2's per-example image layout): the prompt runs once,
    each option on its cache, and every score is the one of scoring the option whole (float64)."""
    vlm.model.eval()
    groups = [[vlm.encode(prompts.qa_prompt(QUESTION, True), f" {w}", images=(face(5),)) for w in ("x", "w z", "y")],
              [vlm.encode(prompts.qa_prompt("Who?", False), f" {w}") for w in ("pilot", "baker")]]
    whole = [[continuation_logliks(vlm, [e], batch_size=1)[0] for e in g] for g in groups]
    grouped = grouped_continuation_logliks(vlm, groups, batch_size=8)
    for got, want, g in zip(grouped, whole, groups):
        assert got == pytest.approx(want, abs=1e-9)
        assert want == pytest.approx([full_logits_loglik(vlm, e) for e in g], abs=1e-9)  # the head's own logits


def test_a_loaded_model_gets_the_familys_processor_with_the_configured_options(vlm, tmp_path):
    """load_model builds the processor as the family says (``Family.processor``; Idefics2: image splitting off,
    even where the saved processor turns it on), with the model entry's ``processor`` options on top."""
    from mmunlearn.models.loading import load_model

    vlm.processor.image_processor.do_image_splitting = True
    vlm.model.save_pretrained(tmp_path)
    vlm.processor.save_pretrained(tmp_path)
    cfg = {"family": "idefics2", "source": "tiny", "dtype": "float64"}
    loaded = load_model(cfg, str(tmp_path))
    assert loaded.processor.image_processor.do_image_splitting is False
    assert loaded.processor.image_processor.size == vlm.processor.image_processor.size
    resized = load_model({**cfg, "processor": {"size": {"longest_edge": 32, "shortest_edge": 16}}}, str(tmp_path))
    assert resized.processor.image_processor.size["longest_edge"] == 32
    assert resized.processor.image_processor.do_image_splitting is False
