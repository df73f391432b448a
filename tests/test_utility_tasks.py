"""The utility benchmarks as declared tasks (issue 17): MMMU and LLaVA-Bench answered by a tiny LLaVA through the
same runner as the MLLMU-Bench tasks, and LLaVA-Bench reviewed through a loopback OpenAI-compatible server."""
import json

import pytest
import torch

from judge_server import JudgeServer
from mmunlearn.eval import mmmu
from mmunlearn.eval.llava_bench import DEFAULT_RULES, review, reviewer_config
from mmunlearn.eval.runner import benchmark_breakdown, benchmark_units, evaluate_benchmark
from mmunlearn.eval.tasks import TASKS, utility_prompt
from mmunlearn.models.registry import VisionLanguageModel
from mmunlearn.models.tiny import build_tiny_llava, train_tokenizer

TINY = dict(vocab_size=300, image_size=32, patch_size=8, vision_hidden=16, vision_layers=1, vision_heads=2,
            hidden=32, intermediate=64, layers=2, heads=2, max_positions=512)
KEY = "sk-utility-test"


@pytest.fixture(scope="module")
def twins(utility_twins):
    return utility_twins


@pytest.fixture(scope="module")
def vlm(twins):
    """A random tiny LLaVA in float64 (its outputs are arbitrary; what is tested is the path, and that batching
    changes none of them)."""
    texts = [q["question"] + " " + " ".join(q.get("options", [])) for name in ("mmmu", "llava_bench")
             for u in benchmark_units(twins / name, name) for q in u.questions]
    model, processor = build_tiny_llava(train_tokenizer(texts * 5, TINY["vocab_size"]), TINY, seed=0)
    return VisionLanguageModel(model.to(torch.float64).eval(), processor, "llava")


def _cfg(batch_size=8, mmmu_tokens=6, llava_tokens=8):
    return {"batch_size": batch_size, "max_new_tokens": {"mmmu": mmmu_tokens, "llava_bench": llava_tokens},
            "fewshot": {}}


def test_registered_as_tasks_of_their_benchmark():
    assert TASKS["mmmu"].benchmark == "mmmu" and TASKS["llava_bench"].benchmark == "llava_bench"
    assert TASKS["mmmu"].modalities == ("image_text",) and TASKS["mmmu"].splits == ("mmmu",)


def test_prompt_places_each_image_once_in_order_of_reference():
    item = mmmu.parse_item({"id": "validation_Art_1",
                            "question": "Compare <image 2> with <image 1>; is <image 2> older?", "options": "['yes', 'no']", "answer": "A", "question_type": "multiple-choice",
                            "image_1": b"a", "image_2": b"b"})
    assert item["images"] == ["image_2", "image_1"]
    assert utility_prompt(mmmu.prompt(item)) == (
        "USER: Compare <image> with <image>; is image 2 older?\nA. yes\nB. no\n\n"
        "Answer with the option's letter from the given choices directly.\nASSISTANT:")


def test_mmmu_scores_every_question_batched_as_one_at_a_time(vlm, twins):
    samples, metrics, _ = evaluate_benchmark(vlm, twins / "mmmu", "mmmu", _cfg(), {"parser": "mmmu"}, seed=42)
    one, _, _ = evaluate_benchmark(vlm, twins / "mmmu", "mmmu", _cfg(batch_size=1), {"parser": "mmmu"}, seed=42)
    assert [s["raw_output"] for s in samples] == [s["raw_output"] for s in one]
    flat = lambda runs: [v for s in runs if "loglik" in s for v in s["loglik"].values()]  # noqa: E731
    assert flat(samples) == pytest.approx(flat(one), abs=1e-9) and len(flat(samples)) == 24 * 4
    units = benchmark_units(twins / "mmmu", "mmmu")
    assert len(samples) == 30 and {s["question_id"] for s in samples} == {u.id for u in units}
    by_metric = {m["metric"]: m for m in metrics}
    acc = [s["score"]["accuracy"] for s in samples]
    assert by_metric["accuracy"]["value"] == pytest.approx(sum(acc) / 30) and by_metric["accuracy"]["n"] == 30
    assert by_metric["accuracy_loglik"]["n"] == 24  # multiple choice only
    assert by_metric["accuracy"]["not_scored"] == 0
    for s in samples:  # every score is what the reference parser gives on the recorded answer
        item = next(q for u in units for q in u.questions if q["id"] == s["question_id"])
        assert s["score"]["accuracy"] == float(mmmu.score(item, s["raw_output"], 42)["correct"])
        assert s["parse"] in ("bracket", "letter", "content", "random", "open")
    subjects = benchmark_breakdown("mmmu", samples)["accuracy_by_subject"]
    assert subjects["Overall"] == {"accuracy": pytest.approx(sum(acc) / 30), "n": 30}
    assert sum(v["n"] for k, v in subjects.items() if k.startswith("Overall-")) == 30


def test_prompts_past_the_context_are_counted_not_scored(vlm, twins):
    samples, metrics, _ = evaluate_benchmark(vlm, twins / "mmmu", "mmmu", _cfg(mmmu_tokens=490), {}, seed=42)
    long = [s for s in samples if "not_scored" in s]
    assert long and all("context 512" in s["not_scored"] and s["score"] == {} for s in long)
    row = next(m for m in metrics if m["metric"] == "accuracy")
    assert row["not_scored"] == len(long) and row["n"] == 30 - len(long)


@pytest.fixture()
def answers(vlm, twins):
    samples, metrics, _ = evaluate_benchmark(vlm, twins / "llava_bench", "llava_bench", _cfg(), {}, seed=42)
    assert metrics == [] and len(samples) == 12
    return samples


def test_llava_bench_review_through_an_openai_compatible_server(answers, tmp_path, monkeypatch):
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    # the reference answers' words in one answer: the server's reviewer gives it 7, the others 3
    answers[0]["parsed"] = answers[0]["gold"]
    with JudgeServer(KEY) as server:
        # the third reply has no scores on its first line; the fifth request fails (500, no retries left)
        server.faults.extend([None, None, "malformed", None, "500"])
        cfg = reviewer_config({"base_url": server.url, "api_key_env": "MMU_TEST_JUDGE_KEY", "max_retries": 0,
                               "max_concurrency": 1, "cache_dir": str(tmp_path / "cache")}, {"judge_model": "reviewer-x"})
        records, rows, status = review(answers, cfg, DEFAULT_RULES)
        bodies = [r["body"] for r in server.requests]
    assert status == "scored" and len(records) == 12
    assert all(b["model"] == "reviewer-x" and "response_format" not in b for b in bodies)
    assert "[Context]\n" + answers[0]["caption"] in bodies[0]["messages"][1]["content"]
    scored = [r for r in records if r["scores"] is not None]
    assert len(scored) == 10 and records[2]["scores"] is None and records[2]["score"] == {}
    assert records[4]["scores"] is None and records[4]["review"] is None
    assert records[0]["scores"] == (8.0, 7.0)
    overall = next(r for r in rows if r["metric"] == "relative_score")
    assert overall["unscored"] == 2 and overall["n"] == 10
    ours = [r["scores"][1] for r in scored]
    assert overall["value"] == pytest.approx(sum(ours) / len(ours) / 8 * 100)
    per_category = {r["metric"]: r for r in rows}
    assert set(per_category) == {"relative_score", "relative_score_conv", "relative_score_detail",
                                 "relative_score_complex"}
    assert sum(r["n"] + r["unscored"] for m, r in per_category.items() if m != "relative_score") == 12


def test_llava_bench_without_a_key_is_not_scored(answers, tmp_path, monkeypatch):
    monkeypatch.delenv("MMU_TEST_JUDGE_KEY", raising=False)
    cfg = reviewer_config({"base_url": "http://127.0.0.1:9", "api_key_env": "MMU_TEST_JUDGE_KEY",
                           "cache_dir": str(tmp_path / "cache")}, {})
    records, rows, status = review(answers, cfg, DEFAULT_RULES)
    assert records == [] and status.startswith("not scored: no API key")
    assert all(r["value"] is None and r["n"] == 0 for r in rows)
    assert json.dumps(rows)  # the rows are written as they are


def _reviews(ours: list[float]) -> list[dict]:
    """Review records of 12 questions on 4 images (3 each): the reference scored 8, ours as given."""
    return [{"prompt_id": f"{k // 3}/image_text/{k % 3}", "profile_id": str(k // 3), "task": "llava_bench",
             "input_modality": "image_text", "score": {"reviewer_reference": 8.0, "reviewer_model": x}}
            for k, x in enumerate(ours)]


def test_llava_bench_relative_score_intervals_are_over_images_and_paired():
    """The relative score's interval resamples images (the ratio recomputed per replicate), and a run's change
    against vanilla is the difference of the two ratios on the same draws."""
    from mmunlearn.report.intervals import Intervals
    from mmunlearn.report.items import item_scores
    from mmunlearn.report.uncertainty import Bootstrap

    vanilla = [6.0] * 12
    ga = [2.0, 2.0, 2.0] + [5.0] * 9  # image 0 answered badly
    scores = item_scores({("m", "vanilla", "llava_bench"): _reviews(vanilla),
                          ("m", "ga_multimodal_5", "llava_bench"): _reviews(ga)})
    iv = Intervals(scores, Bootstrap(samples=2000, seed=0))
    value = sum(ga) / 12 / 8 * 100
    low, high = iv.cell("m", "ga_multimodal_5", "llava_bench", "llava_bench", "image_text", "relative_score", value)
    assert low < value < high and low >= 2 / 8 * 100 and high <= 5 / 8 * 100  # within what images can give
    assert iv.cell("m", "vanilla", "llava_bench", "llava_bench", "image_text", "relative_score", 75.0) == (75.0, 75.0)
    row = next(r for r in iv.difference_rows(0) if r["metric"] == "relative_score")
    assert row["comparison"] == "vs_vanilla" and row["value"] == pytest.approx(value - 75.0)
    assert row["ci_low"] == pytest.approx(low - 75.0) and row["ci_high"] == pytest.approx(high - 75.0)
    assert row["excludes_zero"] and row["n"] == 12
    assert not any(r["metric"].startswith("reviewer_") for r in iv.difference_rows(0))
