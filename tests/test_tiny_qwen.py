"""The tiny Qwen2.5-VL (issue 20): images of any size become their own number of tokens, prompts go through the
chat template, batched decoding and scoring equal one item at a time in float64 with 0 to 6 images of different
sizes, the few-shot prefix is not reused (multimodal rotary positions) with the same outputs, the context check
names an over-long prompt's token count, and LoRA reaches the language model only."""
import io
import logging
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from mmunlearn.eval.decode import (DecodeStats, check_context, continuation_logliks, greedy_generate,
                                   grouped_continuation_logliks)
from mmunlearn.eval.tasks import EvalContext, get_task, run_task
from mmunlearn.models import prompts
from mmunlearn.models.registry import VisionLanguageModel, qwen_chat, qwen_train_prompt
from mmunlearn.models.tiny import QWEN2_VL_CHAT_TEMPLATE, build_tiny_qwen2_5_vl, train_tokenizer
from mmunlearn.train.examples import TrainItem
from mmunlearn.train.stages import add_lora, encode_items, train_config
from mmunlearn.train.trainer import train
from conftest import full_logits_loglik

TINY = dict(vocab_size=300, patch_size=8, vision_hidden=16, vision_layers=2, vision_heads=2, hidden=32,
            intermediate=64, layers=2, heads=2, max_positions=1024, min_pixels=16 * 16, max_pixels=48 * 48)
TEXTS = ["USER: <image>\nWhat is the job of this person? Just give ONE letter. A: B: C: D: ASSISTANT: baker"] * 20
SIZES = [(16, 16), (32, 16), (48, 16), (32, 32), (48, 32), (100, 100)]  # (width, height)


def png(size, shade):
    buf = io.BytesIO()
    Image.new("RGB", size, (shade, 255 - shade, (3 * shade) % 256)).save(buf, "PNG")
    return buf.getvalue()


IMAGES = tuple(png(size, 40 * i) for i, size in enumerate(SIZES))


@pytest.fixture(scope="module")
def vlm():
    tok = train_tokenizer(TEXTS, TINY["vocab_size"], "qwen2_5_vl")
    model, processor = build_tiny_qwen2_5_vl(tok, TINY, seed=0)
    return VisionLanguageModel(model.to(torch.float64).eval(), processor, "qwen2_5_vl")


def test_an_image_is_as_many_tokens_as_its_merged_patches(vlm):
    counts = [vlm.image_token_count(img) for img in IMAGES]
    # one token per 16 x 16 block (patch 8 x merge 2); 100 x 100 is over max_pixels (2304): scaled to 48 x 48
    assert counts == [1, 2, 3, 4, 6, 9]
    assert vlm.image_policy == {"min_pixels": 256, "max_pixels": 2304, "patch_size": 8, "merge_size": 2}
    ids = vlm.tokenize(f"USER: {prompts.IMAGE_TOKEN}{prompts.IMAGE_TOKEN}\nx", IMAGES[1:3])
    assert ids.count(vlm.tokenizer.convert_tokens_to_ids("<|image_pad|>")) == 2 + 3
    with pytest.raises(ValueError, match="2 image placeholders but 1 images"):
        vlm.tokenize(f"{prompts.IMAGE_TOKEN}{prompts.IMAGE_TOKEN}", IMAGES[:1])


def test_encoding_many_items_at_once_equals_one_at_a_time(vlm):
    """encode_all with images of different sizes (each its own token count) equals tokenising each item alone."""
    from conftest import encode_one_at_a_time

    rows = [(qwen_train_prompt("Who?", True), " Ada", IMAGES[k:k + 1]) for k in range(4)]
    rows += [(qwen_train_prompt("Who is Ada?", False), " a pilot", ()), (rows[0][0], "", IMAGES[:1])]
    got = vlm.encode_all(*(list(c) for c in zip(*rows)), append_eos=True)
    assert got == [encode_one_at_a_time(vlm, *row, append_eos=bool(row[1])) for row in rows]
    assert len({len(e.input_ids) for e in got[:4]}) == 4  # four image sizes, four lengths


def test_tokenisation_equals_the_processors_rule(vlm):
    """Qwen's processor: the chat template renders an image as <|vision_start|><|image_pad|><|vision_end|>, then
    each <|image_pad|> becomes grid.prod() // merge_size**2 of them (transformers' Qwen2_5_VLProcessor
    .replace_image_token, called here on our image processor's grids)."""
    from transformers import Qwen2_5_VLProcessor

    rendered = vlm.tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Who?"}]}],
        chat_template=QWEN2_VL_CHAT_TEMPLATE, tokenize=False, add_generation_prompt=True)
    grids = vlm.processor.image_processor([Image.open(io.BytesIO(i)).convert("RGB") for i in IMAGES[1:3]],
                                          return_tensors="pt")["image_grid_thw"]
    proc = SimpleNamespace(image_token="<|image_pad|>", image_processor=vlm.processor.image_processor)
    parts = rendered.split("<|image_pad|>")
    theirs = parts[0] + "".join(Qwen2_5_VLProcessor.replace_image_token(proc, {"image_grid_thw": grids}, i) + part
                                for i, part in enumerate(parts[1:]))
    ours = qwen_train_prompt(f"{prompts.IMAGE_TOKEN}Who?", True)
    assert vlm.tokenize(ours, IMAGES[1:3]) == vlm.tokenizer(theirs)["input_ids"]


def test_prompts_go_through_the_chat_template(vlm):
    for with_image in (True, False):
        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": "Who is this?"}]
        rendered = vlm.tokenizer.apply_chat_template([{"role": "user", "content": content}],
                                                     chat_template=QWEN2_VL_CHAT_TEMPLATE, tokenize=False,
                                                     add_generation_prompt=True)
        ours = qwen_train_prompt("Who is this?", with_image)
        assert ours.replace(prompts.IMAGE_TOKEN, "<|vision_start|><|image_pad|><|vision_end|>") == rendered
    # an evaluation prompt keeps the paper's wording inside the user turn; ASSISTANT: becomes the template's turn
    mc = prompts.mc_prompt("Job?", dict(zip("ABCD", "wxyz")), True, fewshot="USER: <image>\nQuestion: Q\nA: a\n")
    chat = qwen_chat(mc)
    assert chat.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nUSER: <image>")
    assert chat.endswith(f"{prompts.LETTER_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n")
    assert "ASSISTANT:" not in chat and vlm.render(mc) == chat


def prompts_with_images(k_max=6):
    """One prompt per image count 0..6, the images of different sizes."""
    return [(qwen_chat("".join(f"USER: {prompts.IMAGE_TOKEN}\nQuestion {i}\n" for i in range(k))
                       + "USER:\nWhat is the name?\nASSISTANT:"), IMAGES[:k]) for k in range(k_max + 1)]


@pytest.mark.parametrize("stop", ["eos", "first_visible"])
def test_batched_generation_equals_one_at_a_time(vlm, stop):
    items = [vlm.encode(p, images=imgs) for p, imgs in prompts_with_images()]
    assert len({len(e.input_ids) for e in items}) == 7  # different lengths: left padding in the batch
    batched = greedy_generate(vlm, items, 6, batch_size=7, stop=stop)
    single = [greedy_generate(vlm, [e], 6, batch_size=1, stop=stop)[0] for e in items]
    assert batched == single


def test_batched_scoring_equals_one_at_a_time(vlm):
    items = [vlm.encode(p, " Ada Lovelace", images=imgs) for p, imgs in prompts_with_images()]
    single = [continuation_logliks(vlm, [e], 1)[0] for e in items]
    assert continuation_logliks(vlm, items, 7) == pytest.approx(single, abs=1e-9)
    assert single == pytest.approx([full_logits_loglik(vlm, e) for e in items], abs=1e-9)  # the head's own logits
    # options of one question share its prompt: scored whole for this family (no cache reuse), the same values
    groups = [items[:3], items[3:]]
    grouped = grouped_continuation_logliks(vlm, groups, 8)
    assert grouped[0] + grouped[1] == pytest.approx(single, abs=1e-9)


def test_the_fewshot_prefix_is_not_reused_and_outputs_are_the_same(vlm, caplog):
    from mmunlearn.data.schema import MCQuestion, Profile

    def person(i):
        q = MCQuestion(f"What is the job of person {i}?", dict(zip("ABCD", ("baker", "nurse", "pilot", "cook"))), "B")
        return Profile(id=str(i), images=(IMAGES[i % 6],), biography="", classification={"image_text": [q],
                                                                                         "text": [q]})

    people = [person(i) for i in range(5)]
    outputs = {}
    for reuse in (True, False):
        ctx = EvalContext(vlm=vlm, split="forget", images={p.id: p.image for p in people}, batch_size=4,
                          max_new_tokens=3, fewshot_profiles=people[3:], reuse_prefix=reuse, stats=DecodeStats())
        with caplog.at_level(logging.INFO):
            records = run_task(get_task("classification"), people[:3], "image_text", ctx)
        outputs[reuse] = [(r["raw_output"], r["loglik"]) for r in records]
    assert outputs[True] == outputs[False]
    assert "few-shot prefix not reused for qwen2_5_vl: multimodal rotary positions" in caplog.text


def test_likelihood_beside_generation_is_scored_whole_with_the_same_records(vlm):
    """Qwen2.5-VL cannot continue a cache (multimodal rotary positions): asked beside generation, the likelihood
    task's answers are scored whole, not on generation's prefill, and both tasks' records equal each task alone."""
    from mmunlearn.data.schema import OpenQuestion, Profile
    from mmunlearn.eval.runner import score_tasks

    people = [Profile(id=str(i), images=[IMAGES[i]], generation=[
        OpenQuestion("What is the job of this person?", ["a baker", "a nurse who flies", "pilot"][i], "image_text"),
        OpenQuestion(f"What is the job of person {i}?", ["a cook", "baker", "a pilot and nurse"][i], "text")])
        for i in range(3)]
    cfg = {"batch_size": 2, "max_new_tokens": {"generation": 4}}
    images = {p.id: p.image for p in people}
    runs = {tuple(tasks): score_tasks(vlm, "forget", people, images, tasks, cfg)[0]
            for tasks in (["likelihood"], ["generation"], ["likelihood", "generation"])}
    both = runs["likelihood", "generation"]
    for task in ("likelihood", "generation"):
        alone = runs[(task,)]
        ridden = [r for r in both if r["task"] == task]
        assert len(alone) == 6 and [r["prompt_id"] for r in ridden] == [r["prompt_id"] for r in alone]
        for a, b in zip(ridden, alone):
            assert a.get("raw_output") == b.get("raw_output")
            assert a["score"] == pytest.approx(b["score"], abs=1e-12)
            assert a.get("mia", {}) == pytest.approx(b.get("mia", {}), abs=1e-12)


def test_the_context_check_names_the_token_count(vlm):
    item = vlm.encode(qwen_chat(f"USER: {prompts.IMAGE_TOKEN * 6}\n" + "word " * 900 + "\nASSISTANT:"),
                      images=IMAGES)
    with pytest.raises(ValueError, match=f"has {len(item.input_ids)} prompt tokens \\+ 50 new tokens \\(6 images\\)"):
        check_context(vlm, [item], 50, "forget/generation/image_text", ["p/0"])


def test_lora_on_the_language_model_only_and_training_runs(vlm):
    import copy

    local = VisionLanguageModel(copy.deepcopy(vlm.model).float(), vlm.processor, "qwen2_5_vl")
    adapted = add_lora(local, {"r": 4, "alpha": 8, "dropout": 0.0}, seed=0)
    assert adapted and all(m.startswith("model.language_model.layers.") for m in adapted)
    items = [TrainItem(qwen_train_prompt("What is the job of this person?", k > 0), " baker", IMAGES[:k][-1:])
             for k in range(4)]
    encoded = encode_items(local, items, append_eos=False, max_length=None)
    assert local.tokenizer.decode(encoded[0].input_ids[encoded[0].n_prompt:]) == " baker<|im_end|>"
    history = train(local, "nll", {"train": encoded}, train_config({"lr": 1e-2, "epochs": 3, "batch_size": 4}, 0))
    assert len(history) == 3 and history[-1]["loss"] < history[0]["loss"]
