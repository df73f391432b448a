"""Evaluation: the declared tasks' prompts, parsers and few-shot rules, and the decoding fast paths (batching,
shared-prefix KV reuse, the stopping rule) giving exactly the one-at-a-time outputs on a trained tiny model."""
import random

import pytest
import torch

from mmunlearn.data.schema import IMAGE_TEXT, TEXT, read_benchmark_folder
from mmunlearn.data.sets import vanilla_set
from mmunlearn.data.splits import build_split
from mmunlearn.eval.decode import ContextLengthError, DecodeStats
from mmunlearn.eval.runner import evaluate_split
from mmunlearn.eval.tasks import EvalContext, get_task, prepare, rouge_scores, run_task
from mmunlearn.models import prompts
from mmunlearn.models.registry import VisionLanguageModel
from mmunlearn.models.tiny import build_tiny_llava, train_tokenizer
from mmunlearn.train.examples import build_mix
from mmunlearn.train.stages import _all_text, encode_items

TINY = dict(vocab_size=500, image_size=16, patch_size=8, vision_hidden=16, vision_layers=2, vision_heads=2,
            hidden=64, intermediate=128, layers=2, heads=2, max_positions=1024)
FEWSHOT = {"classification": 1, "cloze": 2}


@pytest.fixture(scope="module")
def trained(small_data):
    """A tiny LLaVA fully fine-tuned on the small twin's QA pairs in four formats for 1,000 steps, then cast to
    float64 for the exact comparisons: it knows the people (checked below), so its output distributions are peaked,
    not a random model's near-ties. It trains in float32, 1.8x faster per step here (8.7 against 4.8 s for 100)."""
    torch.manual_seed(0)
    tok = train_tokenizer(_all_text(small_data, "Pretrain_Set"), TINY["vocab_size"])
    model, processor = build_tiny_llava(tok, TINY, seed=0)
    vlm = VisionLanguageModel(model, processor, "llava")
    items = build_mix(vanilla_set(small_data), ["qa", "qa_text", "mcq", "mcq_text"], prompts.qa_prompt, seed=0)
    enc = encode_items(vlm, items, append_eos=True, max_length=None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = random.Random(0)
    model.train()
    for _ in range(1000):
        batch = vlm.collate(rng.sample(enc, 16), labels="answer")
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    model.to(torch.float64).eval()
    return vlm


@pytest.fixture(scope="module")
def split(small_data):
    return build_split(small_data / "MLLMU-Bench", 15, 0, FEWSHOT)


def _cfg(**kw):
    return {"batch_size": 16, "max_new_tokens": {"classification": 12, "cloze": 12, "generation": 12},
            "fewshot": FEWSHOT, **kw}


def test_prompt_strings_are_the_originals():
    assert prompts.generation_prompt("Q?", True) == ("USER: <image>\nQ?\nAnswer the question based on your trained "
                                                     "knowledge in one sentence accurately in ENGLISH.\nASSISTANT: ")
    assert prompts.generation_prompt("Q?", False) == ("USER: Q?\nAnswer the question based on your trained "
                                                      "knowledge in one sentence in ENGLISH.\nASSISTANT:")
    rewritten = "X lives in [Blank].\nPlease **ONLY** provide the correct answer that should replace the [Blank]."
    assert prompts.cloze_demo("X lives in __.", "Oslo", True) == f"USER:<image>\n{rewritten}\nCorrect Answer: Oslo\n"
    assert prompts.cloze_prompt("X lives in __.", False, "D\n") == f"D\nUSER:\n{rewritten}\nASSISTANT:"
    assert prompts.mc_demo("Q?", {"A": "x", "B": "y"}, "B", False) == "USER:\nQuestion: Q?\nA: x\nB: y\nCorrect Answer: B\n"


@pytest.mark.parametrize("output, original, corrected", [
    ("A", "A", "A"), (" B: pilot", "B", "B"), ("Answer: B", "A", "B"), ("The answer is (C).", None, "C"),
    ("Coding", "C", None), ("a cat", "A", None), ("", None, None), ("E", None, None)])
def test_letter_parsers(output, original, corrected):
    assert prompts.parse_letter(output, "ABCD") == original
    assert prompts.parse_answer_letter(output, "ABCD") == corrected


def test_response_rules_of_the_original():
    # decoded whole sequence: the text after the first ASSISTANT:, else (cloze, generation) after Answer:
    assert prompts.answer_text("USER: q\nASSISTANT: Oslo. ASSISTANT: x") == "Oslo. ASSISTANT: x"
    assert prompts.answer_text("q Answer: Oslo", after_answer=True) == "Oslo"
    assert prompts.answer_text("q Answer: Oslo") == "q Answer: Oslo"
    cloze = get_task("cloze")
    q = type("Q", (), {"ground_truth": "New York"})()
    assert cloze.score("she was born in new york city", q, None)["score"]["accuracy"] == 1.0
    assert cloze.score("born in York", q, None)["score"]["accuracy"] == 0.0


def test_rouge_uses_the_stemmer():
    assert rouge_scores("He enjoys fishing", "he enjoyed fish")["rouge1"] == pytest.approx(1.0)
    assert rouge_scores("a b c d", "a b x y")["rougeL"] == pytest.approx(0.5)
    assert rouge_scores("a b", "") == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "bleu": 0.0}


def test_fewshot_rules(small_data, split, trained):
    """The original: demos from the split's own profiles, their questions skipped by index (also on Test_Set);
    held_out: demos from a retain pool that no split scores, identical on every split."""
    bench = small_data / "MLLMU-Bench"
    n_forget = len(split["forget_ids"])
    samples, metrics, _ = evaluate_split(trained, bench, "forget", split, ["classification", "cloze"], _cfg())
    n = {(m["task"], m["input_modality"]): m["n"] for m in metrics if m["metric"] == "accuracy"}
    assert n[("classification", IMAGE_TEXT)] == (n_forget - 1) * 5
    assert n[("cloze", TEXT)] == (n_forget - 2) * 2
    demo_ids = set(split["fewshot_ids"]["forget"]["classification"])
    assert demo_ids <= set(split["forget_ids"])
    assert not any(s["profile_id"] in demo_ids for s in samples if s["task"] == "classification")
    samples, metrics, _ = evaluate_split(trained, bench, "test", split, ["classification"], _cfg())
    assert {m["n"] for m in metrics if m["metric"] == "accuracy"} == {(n_forget - 1) * 5}

    held = _cfg(fewshot_pool="held_out")
    _, metrics, _ = evaluate_split(trained, bench, "forget", split, ["classification", "cloze"], held)
    assert {m["n"] for m in metrics if m["task"] == "cloze"} == {n_forget * 2}
    samples, _, _ = evaluate_split(trained, bench, "retain", split, ["classification"], held)
    scored = {s["profile_id"] for s in samples}
    assert scored == set(split["retain_ids"]) - set(split["fewshot_pool"])
    full = read_benchmark_folder(bench / "Full_Set")[0]
    ctx = EvalContext(trained, "forget", {}, 8, 4, fewshot_profiles=[full[i] for i in split["fewshot_pool"][:1]])
    prep = prepare(get_task("classification"), [], IMAGE_TEXT, ctx)
    assert prep.prefix.count("Correct Answer:") == 5 and len(prep.prefix_images) == 5


def _all_outputs(vlm, bench, split, **options):
    ctx_samples = {}
    for sp in ("forget", "test", "celebrity"):
        samples, _, stats = evaluate_split(vlm, bench, sp, split, ["classification", "cloze", "generation"],
                                           _cfg(**options))
        ctx_samples[sp] = (samples, stats)
    return ctx_samples


def test_batched_prefix_reuse_and_stopping_equal_one_at_a_time(small_data, split, trained):
    """Float64, trained model, prompts from ~20 to ~300 tokens with 0 to 6 images: batching with left padding
    and reusing the few-shot block's KV cache give exactly the one-at-a-time outputs; the stopping rule gives
    exactly the same parsed answers."""
    bench = small_data / "MLLMU-Bench"
    one = _all_outputs(trained, bench, split, batch_size=1, reuse_prefix=False, stopping_rule=False)
    batched = _all_outputs(trained, bench, split, batch_size=16, reuse_prefix=False, stopping_rule=False)
    reused = _all_outputs(trained, bench, split, batch_size=16, reuse_prefix=True, stopping_rule=False)
    fast = _all_outputs(trained, bench, split, batch_size=16, reuse_prefix=True, stopping_rule=True)
    for sp in one:
        raw = [s["raw_output"] for s in one[sp][0]]
        assert [s["raw_output"] for s in batched[sp][0]] == raw
        assert [s["raw_output"] for s in reused[sp][0]] == raw
        assert [(s["prompt_id"], s["task"], s.get("parsed")) for s in fast[sp][0]] == \
               [(s["prompt_id"], s["task"], s.get("parsed")) for s in one[sp][0]]
    # the model is trained (it knows the people: option log-likelihood far above chance), not a random one whose
    # near-ties make any comparison fragile; and it says different things to different prompts
    known = [s["score"]["accuracy_loglik"] for sp in ("forget", "test") for s in one[sp][0]
             if s["task"] == "classification"]
    assert sum(known) / len(known) >= 0.5, sum(known) / len(known)
    assert len({s["raw_output"] for sp in one for s in one[sp][0]}) >= 5
    # the shared prefix was prefilled once, not once per item
    stats_full, stats_reuse = batched["forget"][1]["classification"], reused["forget"][1]["classification"]
    assert stats_reuse["prefilled_tokens"] < stats_full["prefilled_tokens"] / 2
    assert stats_reuse["prompt_tokens"] == stats_full["prompt_tokens"]
    # the stopping rule ends classification at the letter: fewer decoding steps even for a model that emits EOS
    assert fast["forget"][1]["classification"]["generated_tokens"] < stats_full["generated_tokens"]


def test_faithful_whole_sequence_decode_gives_the_same_answers(small_data, split, trained):
    bench = small_data / "MLLMU-Bench"
    new, _, _ = evaluate_split(trained, bench, "forget", split, ["classification", "cloze", "generation"], _cfg())
    seq, _, _ = evaluate_split(trained, bench, "forget", split, ["classification", "cloze", "generation"],
                               _cfg(decode_from="sequence"))
    assert all(s["raw_output"].startswith("USER") or "ASSISTANT:" in s["raw_output"] for s in seq)
    assert [s["score"] for s in new] == [s["score"] for s in seq]


def test_prompt_longer_than_the_context_is_refused(small_data, split):
    tok = train_tokenizer(_all_text(small_data, "Pretrain_Set"), 300)
    model, processor = build_tiny_llava(tok, {**TINY, "max_positions": 120}, seed=0)
    vlm = VisionLanguageModel(model, processor, "llava")
    bench = small_data / "MLLMU-Bench"
    with pytest.raises(ContextLengthError, match=r"forget/classification/image_text: \d+ of \d+ prompts exceed "
                                                 r"the model's context of 120 tokens"):
        evaluate_split(vlm, bench, "forget", split, ["classification"], _cfg())


def test_paper_size_prompts_against_llava_context(small_data):
    """LLaVA-1.5's real image settings (336 px, patch 14, CLS dropped: 576 tokens per image) and its 4,096
    context, on the meta device (no weights): the paper's 1-shot classification prompt (6 images) fits, the
    older 2-shot one (11 images, spec §8 #2) is refused with a clear error."""
    from transformers import LlavaForConditionalGeneration

    from mmunlearn.models.reference import llava_1_5_7b_config, llava_1_5_processor

    tok = train_tokenizer(_all_text(small_data, "Pretrain_Set"), 2000)
    processor = llava_1_5_processor(tok)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(llava_1_5_7b_config(image_token_id=tok.convert_tokens_to_ids("<image>")))
    vlm = VisionLanguageModel(model, processor, "llava")
    assert vlm.image_tokens == 576
    full = read_benchmark_folder(small_data / "MLLMU-Bench" / "Full_Set")[0]
    people = list(full.values())
    task = get_task("classification")
    for k, fits in ((1, True), (2, False)):
        ctx = EvalContext(vlm, "forget", {p.id: p.image for p in people}, 8, 50, fewshot_profiles=people[:k])
        try:
            run_task(task, people[k:k + 1], IMAGE_TEXT, ctx)  # raises before any model call if too long
            ran = True
        except ContextLengthError as exc:
            ran = False
            assert "exceed the model's context of 4096 tokens" in str(exc) and "eval.fewshot" in str(exc)
            assert f"({5 * k + 1} images)" in str(exc)
        except (NotImplementedError, RuntimeError):  # got past the check: the meta model cannot compute
            ran = True
        assert ran == fits


def test_a_model_showing_fewer_demos_takes_a_seeded_subset(small_data, split):
    """models.<m>.eval.fewshot: Idefics2 shows one cloze profile where LLaVA shows two (spec §2.5)."""
    from mmunlearn.eval.runner import demo_profiles

    full = read_benchmark_folder(small_data / "MLLMU-Bench" / "Full_Set")[0]
    drawn = split["fewshot_ids"]["retain"]["cloze"]
    assert len(drawn) == 2
    two = demo_profiles("retain", "cloze", split, full, {"fewshot": {"cloze": 2}})
    one = demo_profiles("retain", "cloze", split, full, {"fewshot": {"cloze": 1}})
    assert [p.id for p in two] == drawn and len(one) == 1 and one[0].id in drawn
    assert [p.id for p in demo_profiles("retain", "cloze", split, full, {"fewshot": {"cloze": 1}})] == [one[0].id]


def test_likelihood_on_the_generation_prefill_equals_scoring_it_alone(small_data, split, trained):
    """Where an evaluation scores both, the likelihood task's gold answers are scored on the generation task's
    prefill (asked in either order): its records equal scoring it alone (float64), the generation's are
    unchanged, and the prompts went through the model once, not twice."""
    bench = small_data / "MLLMU-Bench"
    positions = []
    hook = trained.model.model.register_forward_pre_hook(
        lambda m, a, kw: positions.append(kw["input_ids"].numel()), with_kwargs=True)
    try:
        runs = {}
        for name, tasks in (("likelihood", ["likelihood"]), ("generation", ["generation"]),
                            ("both", ["likelihood", "generation"])):
            positions.clear()
            runs[name] = evaluate_split(trained, bench, "forget", split, tasks, _cfg())[0], sum(positions)
    finally:
        hook.remove()
    both = runs["both"][0]
    assert [s["task"] for s in both] == sorted((s["task"] for s in both), key=["generation", "likelihood"].index)
    for name in ("likelihood", "generation"):
        alone = runs[name][0]
        ridden = [s for s in both if s["task"] == name]
        assert [s["prompt_id"] for s in ridden] == [s["prompt_id"] for s in alone] and alone
        for a, b in zip(ridden, alone):
            assert a.get("raw_output") == b.get("raw_output")
            assert a["score"] == pytest.approx(b["score"], abs=1e-9)
            assert a.get("mia", {}) == pytest.approx(b.get("mia", {}), abs=1e-9)
    # the likelihood task alone prefilled its prompts; riding, it added its answers' tokens only
    answer_tokens = sum(s["answer_tokens"] for s in runs["likelihood"][0])
    assert runs["both"][1] - runs["generation"][1] < runs["likelihood"][1] - answer_tokens


def test_likelihood_task_batched_equals_one_at_a_time(small_data, split, trained):
    """The teacher-forced privacy task (and the option probabilities beside classification): every per-item
    statistic batched equals one item at a time (float64); the model that learnt these people's QA pairs
    memorises them far more than an untrained one."""
    bench = small_data / "MLLMU-Bench"
    tasks = ["likelihood", "likelihood_qa", "classification"]
    batched, metrics, _ = evaluate_split(trained, bench, "forget", split, tasks, _cfg())
    single, _, _ = evaluate_split(trained, bench, "forget", split, tasks, _cfg(batch_size=1))
    assert [s["prompt_id"] for s in batched] == [s["prompt_id"] for s in single]
    for a, b in zip(batched, single):
        assert a["score"] == pytest.approx(b["score"], abs=1e-9)
        if a["task"].startswith("likelihood"):
            assert a["mia"] == pytest.approx(b["mia"], abs=1e-9) and a["answer_tokens"] == b["answer_tokens"] > 0
        else:
            assert a["truth_ratio_raw"] == pytest.approx(b["truth_ratio_raw"], rel=1e-9)
            assert 0 < a["score"]["option_prob"] <= 1 and 0 < a["score"]["truth_ratio"] <= 1  # min(R, 1/R)
    n_items = sum(len([q for q in p.generation if q.modality == IMAGE_TEXT])
                  for p in read_benchmark_folder(bench / "Full_Set")[0].values() if p.id in split["forget_ids"])
    got = {(m["task"], m["input_modality"], m["metric"]): m for m in metrics}
    assert got[("likelihood", IMAGE_TEXT, "answer_nll")]["n"] == n_items
    tok = trained.tokenizer
    model, processor = build_tiny_llava(tok, TINY, seed=1)
    untrained = VisionLanguageModel(model.to(torch.float64).eval(), processor, "llava")
    _, fresh, _ = evaluate_split(untrained, bench, "forget", split, ["likelihood_qa"], _cfg())
    fresh = {(m["input_modality"], m["metric"]): m["value"] for m in fresh}
    for modality in (IMAGE_TEXT, TEXT):
        assert got[("likelihood_qa", modality, "exact_memorisation")]["value"] > \
            fresh[(modality, "exact_memorisation")] + 0.2
        assert got[("likelihood_qa", modality, "answer_nll")]["value"] < fresh[(modality, "answer_nll")] - 1
