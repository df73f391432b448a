"""Put a hub model's weights into the Hugging Face cache before any GPU job needs them.

Compute nodes often have no internet. ``fetch_model`` runs on the submitting node (a localrule), resolves the
configured revision to a commit (an unpinned ``revision: null`` resolves ``main`` and warns with the hash to
pin), downloads the files a model load reads into the cache (``cluster.hf_home`` when set: a shared
filesystem), and records what it got in ``results/models/<model>/hub.json``. Cluster jobs then load the same
snapshot with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..data.fetch import resolve_revision
from ..io import write_json_atomic

log = logging.getLogger(__name__)

# What from_pretrained reads for the model and its processor; not the duplicate *.bin / *.pt weights some
# repositories carry next to the safetensors.
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


def hub_cache_dir() -> Path:
    """The cache a model load in this environment reads, decided now (huggingface_hub fixes its default at import,
    before the workflow has set HF_HOME from cluster.hf_home)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def fetch_model(model_name: str, model_cfg: dict, out: str | Path, endpoint: str | None = None) -> dict:
    from huggingface_hub import HfApi, snapshot_download

    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None)
    repo = {"repo_id": model_cfg["hub_id"], "repo_type": "model", "revision": model_cfg.get("revision"),
            "config_key": f"models.{model_name}.revision"}
    commit = resolve_revision(api, repo)
    # Downloading by the configured name (``main`` when unpinned) also writes the cache's ref, which an offline
    # load by that name needs; the commit it pointed to is checked against the one resolved above.
    path = Path(snapshot_download(model_cfg["hub_id"], revision=model_cfg.get("revision") or "main",
                                  allow_patterns=MODEL_FILES, endpoint=api.endpoint,
                                  cache_dir=hub_cache_dir()))
    if path.name != commit:
        raise RuntimeError(f"{model_cfg['hub_id']}: the hub moved from {commit} to {path.name} during the download; "
                           f"pin models.{model_name}.revision")
    files = {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}
    if not any(name.endswith(".safetensors") for name in files):
        raise RuntimeError(f"{model_cfg['hub_id']}@{commit}: no *.safetensors weights in the repository")
    record = {"hub_id": model_cfg["hub_id"], "revision": model_cfg.get("revision"), "commit": commit,
              "endpoint": api.endpoint, "files": files, "bytes": sum(files.values())}
    write_json_atomic(out, record)
    log.info("%s@%s: %d files, %.1f GB in the cache %s", model_cfg["hub_id"], commit, len(files),
             record["bytes"] / 1e9, path.parent.parent)
    return record
