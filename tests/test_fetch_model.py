"""fetch_model (a localrule on the submitting node) fills the Hugging Face cache from the Hub (a loopback server
speaking its API); a job with HF_HUB_OFFLINE=1, as cluster jobs run, then loads the model from that cache alone."""
import hashlib
import json
import os
import subprocess
import sys

import pytest

from hub_server import HubServer, repo_from_folder
from mmunlearn.data.fetch import FetchError
from mmunlearn.models.fetch import fetch_model
from mmunlearn.models.tiny import build_tiny_llava, train_tokenizer

COMMIT = hashlib.sha1(b"tiny llava v1").hexdigest()
TINY = dict(vocab_size=300, image_size=16, patch_size=8, vision_hidden=16, vision_layers=2, vision_heads=2,
            hidden=32, intermediate=64, layers=2, heads=2, max_positions=256)
LOAD = """
import json, sys
from mmunlearn.models.loading import load_model
cfg = json.loads(sys.argv[1])
vlm = load_model(cfg, cfg["hub_id"])
print("loaded", sum(p.numel() for p in vlm.model.parameters()))
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("repo")
    tok = train_tokenizer(["USER: <image>\nWho is this?\nASSISTANT: a baker"] * 20, TINY["vocab_size"])
    model, processor = build_tiny_llava(tok, TINY, seed=0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "pytorch_model.bin").write_bytes(b"duplicate weights: must not be downloaded")
    with HubServer({"org/tiny-llava": repo_from_folder(folder, "model", COMMIT)}) as server:
        yield server


def model_cfg(revision=None):
    return {"family": "llava", "source": "hub", "hub_id": "org/tiny-llava", "revision": revision, "dtype": "float32"}


def load_offline(cfg, hf_home):
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, "-c", LOAD, json.dumps(cfg)], env=env, capture_output=True, text=True,
                          timeout=300)


def test_fetched_model_loads_offline(hub, tmp_path, monkeypatch, caplog):
    hf_home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    # before the fetch, an offline job cannot load the model: the cache is what makes it work
    assert load_offline(model_cfg(), hf_home).returncode != 0
    record = fetch_model("tiny", model_cfg(), tmp_path / "hub.json", endpoint=hub.url)
    assert record["commit"] == COMMIT and json.loads((tmp_path / "hub.json").read_text()) == record
    assert "model.safetensors" in record["files"] and "pytorch_model.bin" not in record["files"]
    assert any("NOT PINNED" in r.message for r in caplog.records)  # revision: null resolves main, loudly
    for cfg in (model_cfg(), model_cfg(COMMIT)):  # by the branch the fetch resolved, and by the pinned commit
        result = load_offline(cfg, hf_home)
        assert result.returncode == 0 and "loaded" in result.stdout, result.stderr[-2000:]


def test_unknown_revision_names_the_config_key(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FetchError, match="models.tiny.revision"):
        fetch_model("tiny", model_cfg("0" * 40), tmp_path / "hub.json", endpoint=hub.url)
    assert not (tmp_path / "hub.json").exists()
