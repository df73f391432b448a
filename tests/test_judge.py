"""The factuality judge against a real chat-completions server on 127.0.0.1 (tests/judge_server.py): scores,
concurrency, the disk cache, retries on 429 / 500 / timeouts, unparseable replies, no key, and the key never
leaving the environment."""
import json
import logging

import pytest

from judge_server import JudgeServer
from mmunlearn.eval.judge import Judge, JudgeConfig, factuality, parse_score

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
               for r in server.requests)
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
    assert status == "not scored: no API key in $MMU_TEST_JUDGE_KEY" and judged == []
    assert all(r["value"] is None and r["n"] == 0 for r in rows) and sum(r["unscored"] for r in rows) == 12
    assert server.requests == [] and "not scored" in caplog.text


def test_key_is_never_written(server, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    with caplog.at_level(logging.DEBUG):
        judged, rows, _ = factuality(_samples(), _cfg(server, tmp_path))
    written = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert KEY not in written + json.dumps([judged, rows]) + caplog.text + repr(_cfg(server, tmp_path))


def test_faithful_settings_send_no_temperature_and_parse_as_the_original(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MMU_TEST_JUDGE_KEY", KEY)
    judge = Judge(_cfg(server, tmp_path, temperature=None, score_parser="original"))
    assert "temperature" not in judge.request("x")
    assert parse_score('{"Factuality Score": 8,\n"Justification": "ok"}', "original") == (8, "ok")
    assert parse_score('"Factuality Score": 12', "original")[0] == 12  # the original accepts any integer
    assert parse_score('"Factuality Score": 12', "strict")[0] is None
    assert parse_score('Sure! {"Factuality Score": "7", "Justification": "close"}', "strict") == (7, "close")
    assert parse_score("Factuality Score: seven", "original")[0] is None
