"""Getting the data: MLLMU-Bench from the Hugging Face Hub at a pinned revision, or the synthetic twin.

Both land in the same layout (``<root>/MLLMU-Bench/...``, ``<root>/baseline_train_split/...``) with a
``manifest.json`` recording where the files came from (resolved commits) and a sha256 of every file.

Download, step by step (what a GPU user runs; tests drive it against a loopback server speaking the Hub API):

1. resolve the configured revision to a commit (``repo_info``); an unknown revision or repository is one clear
   error naming the config key. An unpinned repository (``revision: null``) resolves ``main``, is recorded, and
   warns loudly with the hash to pin; a pinned value that is not a 40-hex commit (a branch or tag) warns too;
2. list the tree at that commit and keep only the parquet files of the folders the study reads;
3. download each file at that commit into a staging folder beside the output (kept on failure, so the next
   attempt resumes: ``huggingface_hub`` keeps partial files as ``.incomplete`` and retries broken transfers with
   HTTP ranges), then check its size and sha256 against the Hub's LFS metadata (git blob sha1 for non-LFS files);
4. only when every file checks out, move them into place and write the manifest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from pathlib import Path

from ..io import atomic_dir, sha256_file
from . import manifest
from .synthetic import SyntheticSpec, generate

log = logging.getLogger(__name__)

# Folders the study reads (spec §1.1); nothing else is downloaded.
BENCH_FOLDERS = ["ft_Data", "Full_Set", "Test_Set", "Retain_Set", "forget_5", "forget_10", "forget_15",
                 "retain_95", "retain_90", "retain_85"]
BASELINE_FOLDERS = ["forget_5", "forget_10", "forget_15", "retain_95", "retain_90", "retain_85"]
_COMMIT = re.compile(r"[0-9a-f]{40}")


class FetchError(RuntimeError):
    """The Hub could not give us exactly the data the config asks for."""


def _repos(hub: dict) -> list[dict]:
    return [
        {"key": "bench", "config_key": "data.hub.revision", "repo_id": hub["repo_id"], "repo_type": "dataset",
         "revision": hub["revision"], "folders": BENCH_FOLDERS, "subdir": "MLLMU-Bench"},
        # The README links the baseline splits as a model-style repo (spec §1.1).
        {"key": "baseline", "config_key": "data.hub.baseline_revision", "repo_id": hub["baseline_repo_id"],
         "repo_type": hub.get("baseline_repo_type", "model"), "revision": hub.get("baseline_revision"),
         "folders": BASELINE_FOLDERS, "subdir": "baseline_train_split"},
    ]


def git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1()
    h.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def resolve_revision(api, repo: dict) -> str:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    requested = repo["revision"] or "main"
    try:
        info = api.repo_info(repo["repo_id"], repo_type=repo["repo_type"], revision=requested)
    except RevisionNotFoundError:
        raise FetchError(f"{repo['repo_id']} ({repo['repo_type']}) has no revision '{requested}' on {api.endpoint}; "
                         f"check {repo['config_key']} in your config (a 40-character commit hash)") from None
    except RepositoryNotFoundError:
        raise FetchError(f"{repo['repo_type']} repository {repo['repo_id']} not found on {api.endpoint} (or it is "
                         f"private and no token is set)") from None
    if not repo["revision"]:
        log.warning("!!! %s is NOT PINNED: 'main' resolved to %s today. Set %s: %s in config.yaml, or a later "
                    "download may silently give other data. The resolved commit is recorded in the manifest.",
                    repo["repo_id"], info.sha, repo["config_key"], info.sha)
    elif not _COMMIT.fullmatch(repo["revision"]):
        log.warning("%s: %s = '%s' is not a commit hash (branch or tag?); it resolved to %s. Pin the hash.",
                    repo["repo_id"], repo["config_key"], repo["revision"], info.sha)
    return info.sha


def _check_file(path: Path, entry) -> str | None:
    """None if the downloaded file matches the Hub's metadata, else what is wrong."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return f"{size} bytes, the Hub lists {entry.size}"
    if entry.lfs is not None:
        digest = sha256_file(path)
        return None if digest == entry.lfs.sha256 else f"sha256 {digest[:12]}…, the Hub lists {entry.lfs.sha256[:12]}…"
    digest = git_blob_sha1(path)
    return None if digest == entry.blob_id else f"git blob {digest[:12]}…, the Hub lists {entry.blob_id[:12]}…"


def download_repo(api, repo: dict, staging: Path) -> dict:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.hf_api import RepoFile

    commit = resolve_revision(api, repo)
    prefix = repo.get("file_prefix", "")  # e.g. "validation-": one split of a benchmark (data/utility.py)
    tree = [e for e in api.list_repo_tree(repo["repo_id"], repo_type=repo["repo_type"], revision=commit,
                                          recursive=True)
            if isinstance(e, RepoFile) and e.path.endswith(".parquet") and e.path.split("/")[0] in repo["folders"]
            and e.path.rsplit("/", 1)[-1].startswith(prefix)]
    absent = sorted(set(repo["folders"]) - {e.path.split("/")[0] for e in tree})
    if absent:
        raise FetchError(f"{repo['repo_id']}@{commit[:12]} has no {prefix}*.parquet files in {absent}: this "
                         f"revision lacks folders the study reads ({repo['config_key']})")
    local = staging / repo["subdir"]
    for entry in sorted(tree, key=lambda e: e.path):
        for attempt in (1, 2):
            path = Path(hf_hub_download(repo["repo_id"], entry.path, repo_type=repo["repo_type"], revision=commit,
                                        local_dir=local, endpoint=api.endpoint, force_download=attempt == 2))
            problem = _check_file(path, entry)
            if problem is None:
                break
            log.warning("%s: downloaded file does not match the Hub (%s); attempt %d", entry.path, problem, attempt)
            path.unlink()
        else:
            raise FetchError(f"{repo['repo_id']}@{commit[:12]}/{entry.path}: downloaded twice and it still does not "
                             f"match the Hub's metadata ({problem}); nothing was written")
    shutil.rmtree(local / ".cache", ignore_errors=True)  # huggingface_hub's local-dir bookkeeping
    log.info("%s@%s: %d files", repo["repo_id"], commit[:12], len(tree))
    return {"repo_id": repo["repo_id"], "repo_type": repo["repo_type"], "requested": repo["revision"],
            "commit": commit, "endpoint": api.endpoint, "files": len(tree)}


def download(hub: dict, out: Path) -> dict:
    """Download both repositories into ``out`` (atomically) and return their provenance."""
    from huggingface_hub import HfApi

    # Read at call time: huggingface_hub reads HF_ENDPOINT once, at import.
    api = HfApi(endpoint=hub.get("endpoint") or os.environ.get("HF_ENDPOINT") or None)
    staging = out.parent / f".{out.name}.download"
    sources = {repo["key"]: download_repo(api, repo, staging) for repo in _repos(hub)}
    with atomic_dir(out) as tmp:
        for repo in _repos(hub):
            (staging / repo["subdir"]).rename(tmp / repo["subdir"])
        manifest.write(tmp, sources)
    shutil.rmtree(staging, ignore_errors=True)
    return sources


def prepare(data_cfg: dict, out: str | Path) -> dict:
    """Download MLLMU-Bench or generate the twin into ``out``, with its manifest. Returns the manifest."""
    out = Path(out)
    if data_cfg["source"] == "synthetic":
        synthetic = data_cfg.get("synthetic", {})
        spec = SyntheticSpec(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in synthetic.items()})
        with atomic_dir(out) as tmp:
            summary = generate(tmp / "generated", spec)
            for child in (tmp / "generated").iterdir():
                child.rename(tmp / child.name)
            (tmp / "generated").rmdir()
            manifest.write(tmp, {"synthetic": {**synthetic, **summary}})
    else:
        download(data_cfg["hub"], out)
    result = manifest.load(out / manifest.MANIFEST)
    log.info("data ready in %s: %d files", out, len(result["files"]))
    return result
