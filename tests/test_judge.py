"""The factuality judge against a real chat-completions server on 127.0.0.1 (tests/judge_server.py): scores,
concurrency, the disk cache, retries on 429 / 500 / timeouts, unparseable replies, JSON mode and the reply
styles of real judge models, no key (the cache alone), the key never leaving the environment, and a judge job
that starts without loading torch."""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from judge_server import JudgeServer
from mmunlearn.eval.judge import Judge, JudgeConfig, factuality, judge_prompt, parse_score

KEY = "sk-test-7f3a9c0e5b1d"


def _samples(n=12):
    out = []
    for i in range(n):
        right = i % 3 != 0
        out.append({"prompt_id": f"p{i}/{'image_text' if i % 2 else 'text'}/0", "profile_id": f"p{i}",
                    "task": "generation", "input_modality": "image_text" if i % 2 else "text",
                    "question": f"What does person {i} do?", "gold": f"Person {i} works as a baker.",
                    "parsed": "A baker by trade." if right else "Pilot."})
    out.append({"prompt_id": "x", "task": "classification", "input_modality": "text"})  # not judged
    return out


@pytest.fixture
def server():
    with JudgeServer(KEY, slow_s=1.5) as s:
        yield s


def _cfg(server, tmp_path, **kw):
    settings = dict(base_url=server.url, api_key_env="MMU_TEST_JUDGE_KEY", cache_dir=str(tmp_path / "cache"),
                    timeout_s=0.5, max_retries=3, max_concurrency=4)
    return JudgeConfig(**{**settings, **kw})


def test_scores_per_modality_and_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    server.latency_s = 0.2  # an instant reply can finish before the next request starts; 0.2 s < the 0.5 s timeout
    judged, rows, status = factuality(_samples(), _cfg(server, tmp_path))
    assert status == "scored" and len(judged) == 12 and len(server.requests) == 12
    assert all(r["auth_ok"] and r["body"]["temperature"] == 0.0 and r["body"]["model"] == "gpt-4o-mini-2024-07-18"
               and r["body"]["response_format"] == {"type": "json_object"} for r in server.requests)
    assert server.max_active > 1  # requests ran concurrently
    by = {r["input_modality"]: r for r in rows}
    # odd i: image_text, i % 3 == 0 wrong (i = 3, 9) -> scores 9, 2, 9, 9, 2, 9
    assert by["image_text"]["value"] == pytest.approx((9 * 4 + 2 * 2) / 6) and by["image_text"]["n"] == 6
    assert by["text"]["value"] == pytest.approx((9 * 4 + 2 * 2) / 6) and by["text"]["unscored"] == 0
    # a rerun (or the rerun after a crash) pays nothing: every reply comes from the disk cache
    again, rows2, _ = factuality(_samples(), _cfg(server, tmp_path))
    assert len(server.requests) == 12 and rows2 == rows and again == judged


def test_retries_on_429_500_and_timeouts(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    server.faults.extend(["429", "500", "slow"])
    judged, rows, _ = factuality(_samples(3), _cfg(server, tmp_path, max_concurrency=1))
    assert [j["factuality"] for j in judged] == [2, 9, 9]
    # 429, 500, then the slow reply the client gave up on, then the retry that succeeded; then items 2 and 3
    seen = [(r["status"], r["fault"] or "") for r in server.requests]  # the slow reply may be recorded late
    assert seen[:2] == [(429, "429"), (500, "500")]
    assert sorted(seen[2:]) == [(200, "")] * 3 + [(200, "slow")]


def test_retries_exhausted_fail_loudly_and_keep_what_was_paid_for(server, tmp_path, monkeypatch):
    from openai import InternalServerError

    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    cfg = _cfg(server, tmp_path, max_concurrency=1, max_retries=1)
    factuality(_samples(2), cfg)  # two items answered and cached
    server.faults.extend(["500", "500"])
    with pytest.raises(InternalServerError):
        factuality(_samples(4), cfg)
    answered = {json.dumps(r["body"]) for r in server.requests if r["status"] == 200}
    paid = len(server.requests)
    judged, rows, _ = factuality(_samples(4), cfg)  # the rerun asks only for what was never answered
    rerun = [json.dumps(r["body"]) for r in server.requests[paid:]]
    assert rerun and not answered & set(rerun) and len(answered) + len(rerun) == 4
    assert all(j["factuality"] for j in judged)


def test_unparseable_reply_is_unscored_and_reported(server, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    server.faults.extend(["malformed"])
    with caplog.at_level(logging.WARNING):
        judged, rows, _ = factuality(_samples(1), _cfg(server, tmp_path, max_concurrency=1))
    assert judged[0]["factuality"] is None and judged[0]["judge_output"] == "I think it is fine."
    text = {r["input_modality"]: r for r in rows}["text"]
    assert text == {"input_modality": "text", "task": "generation", "metric": "factuality", "value": None, "n": 0,
                    "unscored": 1}
    assert "no parseable score" in caplog.text and "p0/text/0" in caplog.text


def test_without_a_key_nothing_is_sent_and_nothing_is_a_number(server, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("MMU_TEST_JUDGE_KEY", raising=False)
    with caplog.at_level(logging.WARNING):
        judged, rows, status = factuality(_samples(), _cfg(server, tmp_path))
    assert status == "not scored: no API key in $MMU_TEST_JUDGE_KEY (12 of 12 replies not cached)" and judged == []
    assert all(r["value"] is None and r["n"] == 0 for r in rows) and sum(r["unscored"] for r in rows) == 12
    assert server.requests == [] and "not scored" in caplog.text


def test_without_a_key_the_cache_alone_answers(server, tmp_path, monkeypatch):
    """A key unset later loses no score: every reply cached -> the same scores, nothing sent; one reply
    missing -> not scored, with the count, and still nothing sent."""
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    scored = factuality(_samples(), _cfg(server, tmp_path))
    factuality(_samples(6), _cfg(server, tmp_path, model="other-judge"))  # half of them under another model
    paid = len(server.requests)
    monkeypatch.delenv("MMU_TEST_JUDGE_KEY")
    assert factuality(_samples(), _cfg(server, tmp_path)) == scored
    judged, rows, status = factuality(_samples(), _cfg(server, tmp_path, model="other-judge"))
    assert status == "not scored: no API key in $MMU_TEST_JUDGE_KEY (6 of 12 replies not cached)" and judged == []
    assert all(r["value"] is None for r in rows) and len(server.requests) == paid


def test_key_is_never_written(server, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    with caplog.at_level(logging.DEBUG):
        judged, rows, _ = factuality(_samples(), _cfg(server, tmp_path))
    written = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert KEY not in written + json.dumps([judged, rows]) + caplog.text + repr(_cfg(server, tmp_path))


def test_faithful_settings_send_no_temperature_and_parse_as_the_original(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    judge = Judge(_cfg(server, tmp_path, temperature=None, score_parser="original"))
    # the request (and so the cache key) the faithful settings always made: no temperature, no JSON mode
    assert judge.request("x") == {"model": "gpt-4o-mini-2024-07-18", "max_tokens": 700, "messages": [
        {"role": "system", "content": "You are an expert at evaluating the factuality of answers."},
        {"role": "user", "content": "x"}]}
    assert parse_score('{"Factuality Score": 8,\n"Justification": "ok"}', "original") == (8, "ok")
    assert parse_score('"Factuality Score": 12', "original")[0] == 12  # the original accepts any integer
    assert parse_score('"Factuality Score": 12', "strict")[0] is None
    assert parse_score('Sure! {"Factuality Score": "7", "Justification": "close"}', "strict") == (7, "close")
    assert parse_score("Factuality Score: seven", "original")[0] is None


# parse_score("strict"): each free-text style real judge models answer in, and each ambiguous reply (unscored)
PARSED = [
    ('{"Factuality Score": 8, "Justification": "close"}', 8),
    ('Sure! {"Factuality Score": "7", "Justification": "close"}', 7),
    ('```json\n{\n  "Factuality Score": 6,\n  "Justification": "partly"\n}\n```', 6),
    ('```json\n{"Factuality Score": "8/10"}\n```', 8),
    ("Factuality Score: 8\nJustification: close", 8),
    ("**Factuality Score:** 6/10\n\n**Justification:** partly right", 6),
    ("__Factuality Score__: 9", 9),
    ("*Factuality Score*: 3", 3),
    ("Score: 4", 4),
    ("Factuality Score - 7", 7),
    ("**Factuality Score** – 5/10", 5),
    ("Factuality Score (1-10): 2", 2),
    ("Factuality: 9 out of 10", 9),
    ("Factuality Score: 8. So the final Score: 8/10", 8),  # the same score twice
    ("Factuality Score: 10", 10),
]
AMBIGUOUS = [
    "Factuality Score: 8\nOn reflection, Score: 6",  # two different scores
    '{"Factuality Score": 8} {"Factuality Score": 6}',
    "Factuality Score: 11",  # outside 1-10
    "Factuality Score: 0/10",
    '{"Factuality Score": 12}',
    "Factuality Score: 8.5",  # not an integer
    '{"Factuality Score": 8.5}',
    "Factuality Score: 7/100",  # another scale
    "The score is between 6 and 8.",  # a range
    "Factuality Score: between 6 and 8",
    "Factuality Score: 6-8",
    "Score: 6 to 8",
    "I think it is fine.",  # no score at all
    '{"Factuality Score": "high"}',
    '{"Factuality Score": true}',
]


@pytest.mark.parametrize("reply,score", PARSED + [(a, None) for a in AMBIGUOUS])
def test_strict_parser_reads_each_style_and_leaves_ambiguity_unscored(reply, score):
    assert parse_score(reply, "strict")[0] == score


def test_markdown_justification_is_clean():
    assert parse_score("**Factuality Score:** 6/10\n**Justification:** partly right") == (6, "partly right")


def test_markdown_replies_are_scored_end_to_end(server, tmp_path, monkeypatch):
    """An endpoint answering in every style (JSON mode off): all scored, as the JSON reply would be."""
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    server.styles.extend(["markdown", "dash", "plain", "fenced", "json"] * 3)
    cfg = _cfg(server, tmp_path, max_concurrency=1, json_mode=False)
    judged, rows, _ = factuality(_samples(), cfg)
    assert "response_format" not in server.requests[0]["body"]
    assert [j["factuality"] for j in judged] == [2, 9, 9, 2, 9, 9, 2, 9, 9, 2, 9, 9]
    assert all(r["unscored"] == 0 for r in rows)
    assert judged[0]["judge_output"].startswith("**Factuality Score:** 2/10")


def test_json_mode_dropped_once_when_the_endpoint_rejects_it(server, tmp_path, monkeypatch, caplog):
    """A 400 naming response_format: that request is asked again without it, the rest of the run never sends it,
    and the (markdown) replies are scored and cached under the configured request."""
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    server.reject_response_format = True
    server.styles.extend(["markdown"] * 20)
    cfg = _cfg(server, tmp_path, max_concurrency=1)
    with caplog.at_level(logging.WARNING):
        judged, rows, status = factuality(_samples(4), cfg)
    sent = [("response_format" in r["body"], r["status"]) for r in server.requests]
    assert sent == [(True, 400), (False, 200), (False, 200), (False, 200), (False, 200)]
    assert status == "scored" and [j["factuality"] for j in judged] == [2, 9, 9, 2]
    assert "rejects JSON mode" in caplog.text
    assert factuality(_samples(4), cfg)[0] == judged and len(server.requests) == 5  # a rerun: from the cache


def test_json_mode_request_says_json_and_other_bad_requests_still_fail(server, tmp_path, monkeypatch):
    """OpenAI refuses JSON mode unless the messages say "JSON" (the server checks as it does): ours do. A 400
    about anything else is an error, not a refusal of JSON mode."""
    from openai import BadRequestError

    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    judge = Judge(_cfg(server, tmp_path))
    body = judge.request(judge_prompt(_samples(1)[0]))
    assert body["response_format"] == {"type": "json_object"} and "JSON" in body["messages"][0]["content"]
    assert parse_score(judge.send(body)[0]) == (2, "no overlap") and judge.send(body)[1] is True
    server.faults.append("400")
    with pytest.raises(BadRequestError):
        judge.send(body)
    assert [r["status"] for r in server.requests] == [200, 200, 400]


def test_judge_job_starts_without_torch(server, tmp_path):
    """The judge's script, run as Snakemake runs it (a fresh process) with a key against the endpoint, loads
    no torch, transformers, PIL or pyarrow; and a torch imported later still uses the job's threads."""
    repo = Path(__file__).resolve().parents[1]
    samples = tmp_path / "s.samples.jsonl"
    samples.write_text("".join(json.dumps(s) + "\n" for s in _samples(4)))
    job = {"input": {"samples": str(samples)}, "threads": 1, "rule": "judge", "log": [str(tmp_path / "judge.log")],
           "output": {"metrics": str(tmp_path / "f.json"), "samples": str(tmp_path / "f.jsonl")},
           "params": {"judge_cfg": {"base_url": server.url, "api_key_env": "MMU_TEST_JUDGE_KEY",
                                    "cache_dir": str(tmp_path / "cache")}, "seed": 1},
           "wildcards": {"model": "tiny", "run": "vanilla", "split": "forget_10"}, "config": {}}
    code = f"""
import json, runpy, sys
from types import SimpleNamespace
from snakemake.iocontainers import Namedlist
job = json.loads({json.dumps(json.dumps(job))})
smk = SimpleNamespace(**{{k: Namedlist(fromdict=v) if k in ("input", "output", "params", "wildcards") else v
                          for k, v in job.items()}})
runpy.run_path({str(repo / "workflow_scripts/judge.py")!r}, init_globals={{"snakemake": smk}})
loaded = [m for m in ("torch", "transformers", "PIL", "pyarrow") if m in sys.modules]
assert not loaded, loaded
import torch
assert torch.get_num_threads() == 1, torch.get_num_threads()
"""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", code], env={**env, "MMU_TEST_JUDGE_KEY": KEY},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "f.json").read_text())["status"] == "scored" and len(server.requests) == 4
