"""The tiny LLaVA: built offline from config, LoRA on the language model only, prompt/answer masking, and
batched left-padded greedy decoding equal to one-at-a-time decoding."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from mmunlearn.data.synthetic import render_face
from mmunlearn.eval.decode import (answer_token_stats, continuation_logliks, generate_and_score, greedy_generate,
                                   grouped_continuation_logliks)
from mmunlearn.models.registry import VisionLanguageModel
from mmunlearn.models.tiny import build_tiny_llava, train_tokenizer
from mmunlearn.train.stages import add_lora
from conftest import REPO, encode_one_at_a_time, full_logits_loglik

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


def test_scoring_a_model_under_training_runs_its_adapters(vlm):
    """A LoRA-wrapped model (peft, as in training): scoring unwraps it to run the LM head at the scored
    positions, and the adapters still count (equal to the wrapped model's own logits, float64)."""
    import copy

    clone = VisionLanguageModel(copy.deepcopy(vlm.model), vlm.processor, "llava")
    add_lora(clone, {"r": 4, "alpha": 4, "dropout": 0.0}, seed=0)
    torch.manual_seed(1)
    for name, p in clone.model.named_parameters():
        if "lora_B" in name:  # peft starts B at 0: make the adapters change the outputs
            p.data.normal_(0, 0.5)
    clone.model.eval()
    img = render_face(np.arange(48).reshape(4, 4, 3) * 5, 16)
    items = [vlm.encode("USER: <image>\nWhat is the job of this person?\nASSISTANT:", " a nurse", images=(img,)),
             vlm.encode("USER:\nJob?\nASSISTANT:", " baker pilot")]
    wrapped = [full_logits_loglik(clone, e) for e in items]
    assert continuation_logliks(clone, items, 2) == pytest.approx(wrapped, abs=1e-9)
    assert [sum(t.logp) for t in answer_token_stats(clone, items, 2)] == pytest.approx(wrapped, abs=1e-9)
    assert wrapped != pytest.approx([full_logits_loglik(vlm, e) for e in items], abs=1e-3)  # the adapters count


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
    assert batched == pytest.approx([full_logits_loglik(vlm, it) for it in items], abs=1e-9)


def test_grouped_logliks_equal_scoring_each_item_whole(vlm):
    """A question's options share their prompt (tokens and image), run once; every option's score is the one
    of scoring it whole. Groups of different sizes and prompt lengths, with and without an image, a group whose
    items show different images (scored whole), and batches that split groups unevenly."""
    img1, img2 = render_face(np.arange(48).reshape(4, 4, 3) * 5, 16), render_face(np.full((4, 4, 3), 200), 16)
    question = lambda q, image: f"USER: {'<image>' if image else ''}\n{q}\nASSISTANT:"  # noqa: E731
    groups = [
        [vlm.encode(question("What is the job of this person?", True), f" {w}", images=(img1,))
         for w in ("baker", "pilot", "a nurse who flies", "nurse")],
        [vlm.encode(question("Job?", False), f" {w}") for w in ("pilot", "baker")],
        [vlm.encode(question("What is the job?", True), " baker", images=(img,)) for img in (img1, img2)],
        [vlm.encode(question("What is the job of this person? Answer:", False), f" {w}")
         for w in ("nurse who flies", "baker pilot nurse", "A", "B", "C")],
    ]
    whole = [[continuation_logliks(vlm, [e], batch_size=1)[0] for e in g] for g in groups]
    for batch_size in (1, 5, 64):
        grouped = grouped_continuation_logliks(vlm, groups, batch_size=batch_size)
        for got, want in zip(grouped, whole):
            assert got == pytest.approx(want, abs=1e-9)


def test_answer_token_stats_batched_equal_single_and_by_hand(vlm):
    """Teacher-forced per-token statistics of answers (privacy metrics): batched (sorted, right-padded, with and
    without images) equal one item at a time, and equal a direct computation from the full logits (float64)."""
    img = render_face(np.arange(48).reshape(4, 4, 3) * 5, 16)
    items = [vlm.encode("USER: <image>\nWhat is the job of this person?\nASSISTANT:", " a nurse who flies",
                        images=(img,)),
             vlm.encode("USER:\nJob?\nASSISTANT:", " baker"),
             vlm.encode("USER:\nWhat is the job of this person? Answer:", " baker pilot nurse")]
    batched = answer_token_stats(vlm, items, batch_size=3)
    for item, got in zip(items, batched):
        single = answer_token_stats(vlm, [item], batch_size=1)[0]
        assert got.top1 == single.top1
        for field in ("logp", "mean_logp", "std_logp"):
            assert getattr(got, field) == pytest.approx(getattr(single, field), abs=1e-12)
        batch = vlm.collate([item])
        with torch.no_grad():
            logp = torch.log_softmax(vlm.model(**batch).logits[0], -1)
        answer = item.input_ids[item.n_prompt:]
        rows = logp[item.n_prompt - 1:len(item.input_ids) - 1]  # position t predicts token t + 1
        assert len(got.logp) == len(answer) >= 1
        assert got.logp == pytest.approx([rows[t, tok].item() for t, tok in enumerate(answer)], abs=1e-12)
        assert got.top1 == [int(rows[t].argmax()) == tok for t, tok in enumerate(answer)]
        for t in range(len(answer)):
            p = rows[t].exp()
            mean = float((p * rows[t]).sum())
            assert got.mean_logp[t] == pytest.approx(mean, abs=1e-12)
            assert got.std_logp[t] == pytest.approx(float((p * (rows[t] - mean) ** 2).sum()) ** 0.5, abs=1e-9)
        assert sum(got.logp) == pytest.approx(continuation_logliks(vlm, [item], 1)[0], abs=1e-9)


def test_answer_token_stats_of_items_on_one_image_run_their_prefix_once(vlm):
    """A person's QA pairs on their photo (likelihood_qa) share the image and the template before the question:
    that prefix runs once per group of at most batch_size items, and every statistic equals scoring the item
    whole (float64). Two photos, a group larger than the batch, a lone image item and text items mixed in."""
    img1, img2 = render_face(np.arange(48).reshape(4, 4, 3) * 5, 16), render_face(np.full((4, 4, 3), 200), 16)
    qa = [("What is the job of this person?", " baker"), ("Job?", " a nurse who flies"),
          ("What does this person do?", " pilot"), ("Where was this person born?", " Oslo"),
          ("What is the job of this person? Answer:", " baker pilot nurse")]
    items = ([vlm.encode(f"USER: <image>\n{q}\nASSISTANT:", a, images=(img1,)) for q, a in qa]
             + [vlm.encode(f"USER: <image>\n{q}\nASSISTANT:", a, images=(img2,)) for q, a in qa[:2]]
             + [vlm.encode(f"USER:\n{q}\nASSISTANT:", a) for q, a in qa[:3]])
    whole = [answer_token_stats(vlm, [item], batch_size=1)[0] for item in items]
    prefilled, head_rows = [], []
    hooks = [vlm.model.model.register_forward_pre_hook(lambda m, a, kw: prefilled.append(kw["input_ids"].numel()),
                                                       with_kwargs=True),
             vlm.model.lm_head.register_forward_pre_hook(lambda m, a: head_rows.append(a[0][..., 0].numel()))]
    try:
        grouped = answer_token_stats(vlm, items, batch_size=3)  # img1's 5 items: groups of 3 and 2
    finally:
        for hook in hooks:
            hook.remove()
    for got, want in zip(grouped, whole):
        assert got.top1 == want.top1
        for field in ("logp", "mean_logp", "std_logp"):
            assert getattr(got, field) == pytest.approx(getattr(want, field), abs=1e-12)
    # the image groups' prompts ran as prefixes (image tokens once per group), so fewer positions went in
    assert prefilled and sum(prefilled) < sum(len(e.input_ids) for e in items) - 3 * vlm.image_tokens
    # and the LM head ran on the answer tokens only, not on every position of every prompt
    assert sum(head_rows) == sum(len(e.input_ids) - e.n_prompt for e in items)


def test_answers_scored_on_the_generation_prefill_equal_scoring_them_whole(vlm):
    """The likelihood task's gold answers continue the generation prompts: scored on the KV cache generation
    leaves (cut back to the prompts), each statistic equals scoring the answer whole (float64), the generated text
    equals greedy_generate's, and the prompts are not prefilled a second time. Left-padded batches of prompts of
    different lengths, with and without an image, one whose last token (a space) the answer does not share, a
    shared few-shot prefix, rows that finish early, and answers that cannot ride (none given, other images) come
    back None."""
    img1, img2 = render_face(np.arange(48).reshape(4, 4, 3) * 5, 16), render_face(np.full((4, 4, 3), 200), 16)
    shots = "USER: <image>\nQuestion: x\nAnswer: pilot\n"
    cases = [(f"{shots}USER: <image>\nWhat is the job of this person?\nASSISTANT: ", " a nurse who flies",
              (img2, img1)),
             (f"{shots}USER: <image>\nJob?\nASSISTANT:", " baker", (img2, img2)),
             (f"{shots}USER:\nWhat is the job of Ada Berg, the baker or the pilot?\nASSISTANT:", " pilot nurse",
              (img2,)),
             (f"{shots}USER:\nA?\nASSISTANT:", " baker pilot nurse baker", (img2,)),
             (f"{shots}USER:\nB?\nASSISTANT:", None, (img2,))]
    items = [vlm.encode(p, images=imgs) for p, _, imgs in cases]
    # as the likelihood task's: the prompt without trailing whitespace (the first ends in a space token of its own)
    answers = [vlm.encode(p.rstrip(), a, images=imgs) if a else None for p, a, imgs in cases]
    assert items[0].input_ids[:-1] == answers[0].input_ids[:len(items[0].input_ids) - 1] != items[0].input_ids
    answers[1] = vlm.encode(cases[0][0], " baker", images=cases[0][2])  # another prompt's answer: does not ride
    prefix = vlm.encode(shots, images=(img2,))
    for batch_size, few_shot in ((5, None), (2, None), (5, prefix), (3, prefix)):
        calls = {"alone": [], "riding": []}
        for key in calls:
            hook = vlm.model.model.register_forward_pre_hook(
                lambda m, a, kw, key=key: calls[key].append(kw["input_ids"].shape[1]), with_kwargs=True)
            try:
                if key == "alone":
                    want = greedy_generate(vlm, items, 5, batch_size, prefix=few_shot)
                else:
                    got, tokens = generate_and_score(vlm, items, answers, 5, batch_size, prefix=few_shot)
            finally:
                hook.remove()
        assert got == want
        assert [t is None for t in tokens] == [False, True, False, False, True]
        for k in (0, 2, 3):
            whole = answer_token_stats(vlm, [answers[k]], batch_size=1)[0]
            assert tokens[k].top1 == whole.top1
            for field in ("logp", "mean_logp", "std_logp"):
                assert getattr(tokens[k], field) == pytest.approx(getattr(whole, field), abs=1e-12)
        # generation ran as before, plus one pass per batch with answers: their own tokens and the prompt's
        # last tokens, never a whole prompt again (without the few-shot block every prompt is longer than that)
        extra = Counter(calls["riding"]) - Counter(calls["alone"])
        longest = max(len(answers[k].input_ids) - len(items[k].input_ids) + 2 for k in (0, 2, 3))
        assert Counter(calls["alone"]) - Counter(calls["riding"]) == Counter()
        assert 1 <= extra.total() <= -(-len(items) // batch_size) and max(extra) <= longest
        assert few_shot or longest < min(len(e.input_ids) for e in items)


def test_encoding_many_items_at_once_equals_one_at_a_time(vlm):
    """encode_all (one tokenizer call for the prompts, one for the prompts with their continuations, each distinct
    text once) gives each item's tokens and scored span as tokenising it alone: repeated prompts (a question's
    options), no continuation, images, a continuation that merges with the prompt's last token, EOS appended."""
    img = render_face(np.arange(48).reshape(4, 4, 3) * 5, 16)
    question = "USER: <image>\nWhat is the job of this person?\nASSISTANT:"
    rows = [(question, " baker", (img,)), (question, " pilot", (img,)), (question, "", (img,)),
            ("USER:\nJob?\nASSISTANT:", " a nurse who flies", ()), ("USER:\nJob?\nASSISTANT", ": baker", ()),
            (question, " baker", (img,))]
    for append_eos in (False, True):
        got = vlm.encode_all(*(list(c) for c in zip(*rows)), append_eos=append_eos)
        want = [encode_one_at_a_time(vlm, *row, append_eos=append_eos and bool(row[1])) for row in rows]
        assert got == want
        assert got[0].input_ids is not got[5].input_ids  # equal texts, separate lists
    assert vlm.encode_all([]) == []


def test_imported_full_vanilla_model_starts_the_chain(vlm, tmp_path):
    """models.<m>.vanilla: a released merged checkpoint is recorded, not copied, and loading goes through it."""
    from mmunlearn.models.loading import load_model
    from mmunlearn.train.stages import import_vanilla

    full = tmp_path / "released"  # stands in for MLLMMU/LLaVA_Vanilla: weights only, no processor (spec §3)
    vlm.model.save_pretrained(full)
    base = tmp_path / "base"
    vlm.model.save_pretrained(base)
    vlm.processor.save_pretrained(base)
    with torch.no_grad():  # make the "released" model differ from the base
        released = type(vlm.model).from_pretrained(full)
        released.lm_head.weight.add_(1.0)
        released.save_pretrained(full)
    run = tmp_path / "vanilla"
    import_vanilla({"source": "local", "id": str(full)}, run, {}, seed=0)
    assert not (run / "adapter").exists()
    cfg = {"family": "llava", "source": "tiny", "dtype": "float64"}
    loaded = load_model(cfg, str(base), run)
    assert torch.equal(loaded.model.lm_head.weight, released.lm_head.weight.to(torch.float64))
    with pytest.raises(ValueError, match="not a local model folder"):
        import_vanilla({"source": "local", "id": str(tmp_path / "nothing")}, tmp_path / "v2", {}, seed=0)


def test_gradient_checkpointing_with_lora_gives_the_same_gradients():
    from mmunlearn.train.losses import mean_nll
    from mmunlearn.train.stages import enable_gradient_checkpointing

    grads = []
    for checkpointing in (False, True):
        tok = train_tokenizer(TEXTS, TINY["vocab_size"])
        model, processor = build_tiny_llava(tok, TINY, seed=0)
        v = VisionLanguageModel(model.to(torch.float64), processor, "llava")
        add_lora(v, {"r": 4, "alpha": 8, "dropout": 0.0, "init": "gaussian"}, seed=0)
        if checkpointing:
            enable_gradient_checkpointing(v)
        v.model.train()
        img = render_face(np.arange(48).reshape(4, 4, 3), 16)
        batch = v.collate([v.encode("USER: <image>\nWhat is the job of this person?\nASSISTANT:", " baker", (img,))],
                          labels="answer")
        logits = v.model(**{k: t for k, t in batch.items() if k != "labels"}).logits
        mean_nll(logits, batch["labels"]).backward()
        grads.append({n: p.grad.clone() for n, p in v.model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    # B starts at zero, so only B has a gradient at step 0: every B of every adapted layer must get one
    assert all(g.abs().sum() > 0 for n, g in grads[1].items() if "lora_B" in n)
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-10), name


@pytest.mark.parametrize("labels", ["answer", "all"])
def test_length_chunks_give_the_whole_batch_gradient(vlm, labels):
    """A batch run as length-sorted chunks (trainer._chunks), token-weighted, has the whole batch's loss and
    gradient, whatever the chunk sizes (float64 model; the loss casts logits to float32, hence the tolerance);
    and each chunk is padded to its own longest item only."""
    from mmunlearn.train.losses import get_loss
    from mmunlearn.train.trainer import _chunks

    img = render_face(np.arange(48).reshape(4, 4, 3) % 255, 16)
    items = [vlm.encode("USER: <image>\n" + "What is the job of this person? " * k + "\nASSISTANT:",
                        " baker" * (1 + k % 3), (img,), append_eos=True) for k in range(7)]
    items += [vlm.encode("USER:\nWhat is the job of Ann?\nASSISTANT:", " nurse pilot", (), append_eos=True)]
    nll = get_loss("nll").fn
    params = [p for p in vlm.model.parameters()]

    def grads(pieces):
        vlm.model.zero_grad()
        total = 0.0
        for batch, share in pieces:
            loss, _ = nll(vlm.model, {"train": batch}, {}, {})
            (loss * share).backward()
            total += loss.item() * share
        return total, [p.grad.clone() if p.grad is not None else None for p in params]

    whole_loss, whole = grads([(vlm.collate(items, "right", labels=labels), 1.0)])
    for n in (2, 3, 8):
        pieces = _chunks(vlm, items, n, labels)
        assert sum(share for _, share in pieces) == pytest.approx(1.0)
        widths = [b["input_ids"].shape[1] for b, _ in pieces]
        assert widths == sorted(widths) and widths[0] < max(len(e.input_ids) for e in items)
        loss, chunked = grads(pieces)
        assert loss == pytest.approx(whole_loss, rel=1e-6)
        for a, b in zip(whole, chunked):
            assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, rtol=1e-5, atol=1e-8))


def test_training_with_length_chunks_ends_where_whole_batches_do():
    """The trainer's loop with length_chunks (epoch-stepped schedule, checkpoints on): the same weights and
    loss history as whole batches (float64), so the option is a speed setting only."""
    from mmunlearn.train.trainer import TrainConfig, train

    img = render_face(np.arange(48).reshape(4, 4, 3) % 255, 16)
    results = []
    for chunks in (1, 3):
        tok = train_tokenizer(TEXTS, TINY["vocab_size"])
        model, processor = build_tiny_llava(tok, TINY, seed=0)
        vlm = VisionLanguageModel(model.to(torch.float64), processor, "llava")
        items = [vlm.encode("USER: <image>\n" + "What is the job? " * (k % 4) + "\nASSISTANT:",
                            " baker" * (1 + k % 3), (img,), append_eos=True) for k in range(12)]
        cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=6, seed=0, lr_step="epoch", checkpoint_every=1,
                          length_chunks=chunks)
        history = train(vlm, "nll", {"train": items}, cfg)
        results.append(([p.detach().clone() for p in vlm.model.parameters()], [h["loss"] for h in history]))
    (w1, h1), (w3, h3) = results
    assert len(h1) == len(h3) == 4 and h3 == pytest.approx(h1, rel=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-8) for a, b in zip(w1, w3))


def test_a_job_stopped_after_its_last_step_resumes_at_the_end_and_only_writes(tmp_path, caplog):
    """The trainer checkpoints its last step and the job leaves its checkpoints in place when it writes its run:
    the workflow removes them once it has accepted the run. A job killed after its last step (a time limit), or
    marked failed by its cluster after writing (Snakemake then deletes the run), restarts from the untrained model,
    resumes after the last step, trains nothing, and writes the same weights and history."""
    import logging

    from mmunlearn.train.stages import _save
    from mmunlearn.train.trainer import TrainConfig, train
    from mmunlearn.workflow import checkpoint_root, remove_finished_checkpoints

    img = render_face(np.arange(48).reshape(4, 4, 3) % 255, 16)
    tok = train_tokenizer(TEXTS, TINY["vocab_size"])
    # 4 steps, checkpoints every 3: the last step's checkpoint is the end's, not the period's
    cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=6, seed=0, checkpoint_every=3)
    checkpoints, runs = tmp_path / "checkpoints", tmp_path / "results" / "models"
    run = runs / "tiny" / "seed0" / "oracle_10"
    root = Path(checkpoint_root(run, checkpoints, runs))  # where the training rules put this run's checkpoints
    assert root == checkpoints / "tiny" / "seed0" / "oracle_10"

    def fresh(seed):
        model, processor = build_tiny_llava(tok, TINY, seed=seed)
        vlm = VisionLanguageModel(model, processor, "llava")
        items = [vlm.encode("USER: <image>\nWhat is the job?\nASSISTANT:", " baker" * (1 + k % 3), (img,),
                            append_eos=True) for k in range(12)]
        return vlm, items

    vlm, items = fresh(0)
    history = train(vlm, "nll", {"train": items}, cfg, checkpoint_root=root)
    trained = [p.detach().clone() for p in vlm.model.parameters()]
    (saved,) = root.rglob("checkpoint.pt")
    assert torch.load(saved, weights_only=False)["step"] == len(history) == 4
    # killed here. The restart's model is initialised differently: only a resume can give the trained weights
    again, items = fresh(1)
    assert not all(torch.equal(a, b) for a, b in zip(trained, again.model.parameters()))
    with caplog.at_level(logging.INFO, logger="mmunlearn.train.trainer"):
        resumed = train(again, "nll", {"train": items}, cfg, checkpoint_root=root)
    assert "at step 5/4" in caplog.text and "step 4/4 loss" not in caplog.text  # no step ran
    assert resumed == history
    assert all(torch.equal(a, b) for a, b in zip(trained, again.model.parameters()))
    _save(again, run, {"stage": "test"}, resumed, adapter=False)
    assert (run / "run.json").is_file() and saved.is_file()  # written, and still resumable
    # the workflow's success removes the checkpoints of runs in place, and only those
    unfinished = Path(checkpoint_root(runs / "tiny" / "seed0" / "vanilla", checkpoints, runs))
    (unfinished / "0123456789abcdef").mkdir(parents=True)
    (unfinished / "0123456789abcdef" / "checkpoint.pt").write_bytes(b"")
    assert remove_finished_checkpoints(checkpoints, runs) == [root]
    assert not root.exists() and (unfinished / "0123456789abcdef" / "checkpoint.pt").is_file()


def test_every_training_rule_keeps_its_checkpoints_beside_its_run():
    """A run's checkpoints are found, and removed once the workflow succeeds, by its folder's path alone: every rule
    that passes a ``checkpoints`` root takes it from its run (a literal root would keep its checkpoints forever)."""
    from mmunlearn.workflow import checkpoint_root

    assert checkpoint_root("results/models/tiny-llava/seed42/ga_text_10") == "checkpoints/tiny-llava/seed42/ga_text_10"
    assert checkpoint_root("results/models/tiny-llava/base") == "checkpoints/tiny-llava/base"
    with pytest.raises(ValueError, match="results/merged/tiny-llava/seed42/ga_text_10: not under results/models"):
        checkpoint_root("results/merged/tiny-llava/seed42/ga_text_10")
    # the rules whose script resumes from smk.params.checkpoints, each read as its own block of text
    resuming = {f.name for f in (REPO / "workflow_scripts").glob("*.py") if "smk.params.checkpoints" in f.read_text()}
    blocks = [block for smk in sorted((REPO / "rules").glob("*.smk")) for block in smk.read_text().split("\nrule ")[1:]]
    training = [block for block in blocks if any(f"workflow_scripts/{name}" in block for name in resuming)]
    # the parse found the four training rules there are today, so the check below is not vacuous
    assert {"pretrain_tiny_base", "finetune_vanilla", "finetune_oracle", "unlearn"} <= {
        block.split(":")[0] for block in training}
    for block in training:
        assert "checkpoints=lambda wc, output: checkpoint_root(output.run)," in block, block.split(":")[0]
