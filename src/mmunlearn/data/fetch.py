"""Getting the data: MLLMU-Bench from the Hugging Face Hub at a pinned revision, or the synthetic twin.

Both land in the same layout (``<root>/MLLMU-Bench/...``, ``<root>/baseline_train_split/...``) with a
``manifest.json`` recording where the files came from (resolved commits) and a sha256 of every file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..io import atomic_dir, sha256_file, write_json_atomic
from .synthetic import SyntheticSpec, generate

log = logging.getLogger(__name__)

# Folders the study reads (spec §1.1); nothing else is downloaded.
BENCH_FOLDERS = ["ft_Data", "Full_Set", "Test_Set", "Retain_Set", "forget_5", "forget_10", "forget_15",
                 "retain_95", "retain_90", "retain_85"]
BASELINE_FOLDERS = ["forget_5", "forget_10", "forget_15", "retain_95", "retain_90", "retain_85"]


def manifest(root: Path, sources: dict) -> dict:
    files = {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
             if p.is_file() and p.name != "manifest.json"}
    return {"sources": sources, "files": files}


def download(hub: dict, root: Path) -> dict:
    from huggingface_hub import HfApi, snapshot_download

    api = HfApi()
    sources = {}
    for key, repo_id, repo_type, revision, folders in (
            ("bench", hub["repo_id"], "dataset", hub["revision"], BENCH_FOLDERS),
            ("baseline", hub["baseline_repo_id"], "model", hub.get("baseline_revision"), BASELINE_FOLDERS)):
        info = api.repo_info(repo_id, repo_type=repo_type, revision=revision or "main")
        if not revision:
            log.warning("%s is not pinned: resolved 'main' to %s. Pin data.hub.%s_revision: %s in config.yaml "
                        "to make this run reproducible.", repo_id, info.sha, key, info.sha)
        sub = "MLLMU-Bench" if key == "bench" else "baseline_train_split"
        snapshot_download(repo_id, repo_type=repo_type, revision=info.sha, local_dir=root / sub,
                          allow_patterns=[f"{f}/*.parquet" for f in folders])
        sources[key] = {"repo_id": repo_id, "repo_type": repo_type, "requested": revision, "commit": info.sha}
    return sources


def prepare(data_cfg: dict, out: str | Path) -> dict:
    out = Path(out)
    with atomic_dir(out) as tmp:
        if data_cfg["source"] == "synthetic":
            spec = SyntheticSpec(**{k: (tuple(v) if isinstance(v, list) else v)
                                    for k, v in data_cfg.get("synthetic", {}).items()})
            summary = generate(tmp / "generated", spec)
            for child in (tmp / "generated").iterdir():
                child.rename(tmp / child.name)
            (tmp / "generated").rmdir()
            sources = {"synthetic": {**data_cfg.get("synthetic", {}), **summary}}
        else:
            sources = download(data_cfg["hub"], tmp)
        result = manifest(tmp, sources)
        write_json_atomic(tmp / "manifest.json", result)
    log.info("data ready in %s: %d files", out, len(result["files"]))
    return result
