"""The data manifest: where a prepared data folder came from and a sha256 of every file in it.

``prepare_data`` writes ``<root>/manifest.json``; every later read of a dataset folder below that root is checked
against it (once per process and folder state), so a run whose files were edited, truncated, swapped for another
revision or partially restored stops with an error naming the file, instead of silently measuring other data.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from ..io import sha256_file, write_json_atomic

MANIFEST = "manifest.json"
# Not data: the manifest itself, and the marker Snakemake writes into directory outputs.
NOT_DATA = {MANIFEST, ".snakemake_timestamp"}
RESTORE_HINT = ("restore the data it was prepared with (`dvc checkout` / `dvc pull`), or delete the data folder "
                "and run the prepare_data rule again")


class ManifestError(ValueError):
    """The files on disk do not match the manifest written when the data was prepared."""


def build(root: str | Path, sources: dict) -> dict:
    """Manifest of every file below ``root`` (the manifest itself excluded)."""
    root = Path(root)
    files = {str(p.relative_to(root)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(root.rglob("*")) if p.is_file() and p.name not in NOT_DATA}
    return {"sources": sources, "files": files}


def write(root: str | Path, sources: dict) -> dict:
    result = build(root, sources)
    write_json_atomic(Path(root) / MANIFEST, result)
    return result


def find(folder: str | Path, levels: int = 3) -> Path | None:
    """The manifest governing ``folder``: ``manifest.json`` in it or in one of its ``levels`` parents."""
    folder = Path(folder).resolve()
    for parent in [folder, *folder.parents][: levels + 1]:
        if (parent / MANIFEST).is_file():
            return parent / MANIFEST
    return None


def load(manifest_path: Path) -> dict:
    try:
        data = json.loads(Path(manifest_path).read_text())
        files = data["files"]
        if not isinstance(files, dict) or not all(isinstance(e, dict) and {"sha256", "bytes"} <= set(e)
                                                  for e in files.values()):
            raise TypeError("'files' is not a mapping of path -> {sha256, bytes} (an older format?)")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{manifest_path}: unreadable manifest ({exc}); {RESTORE_HINT}") from None
    return data


def verify(root: str | Path, folders: list[str] | None = None) -> None:
    """Check the files of ``folders`` (paths relative to ``root``; all files when None) against the manifest."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{root}: no {MANIFEST}; this folder was not made by prepare_data, or it is "
                            f"incomplete; {RESTORE_HINT}")
    recorded = load(path)["files"]
    prefixes = None if folders is None else tuple(f.rstrip("/") + "/" for f in folders)

    def wanted(rel: str) -> bool:
        return prefixes is None or rel.startswith(prefixes)

    expected = {rel: entry for rel, entry in recorded.items() if wanted(rel)}
    scope = [root] if folders is None else [root / f for f in folders]
    present = {str(p.relative_to(root)) for d in scope if d.exists() for p in d.rglob("*")
               if p.is_file() and p.name not in NOT_DATA and wanted(str(p.relative_to(root)))}
    missing, extra = sorted(set(expected) - present), sorted(present - set(expected))
    if missing:
        raise ManifestError(f"{root / missing[0]}: listed in {path} but missing ({len(missing)} file(s) missing); "
                            f"{RESTORE_HINT}")
    if extra:
        raise ManifestError(f"{root / extra[0]}: not in {path} ({len(extra)} unexpected file(s)); {RESTORE_HINT}")
    for rel in sorted(expected):
        entry = expected[rel]
        size = (root / rel).stat().st_size
        if size != entry["bytes"] or sha256_file(root / rel) != entry["sha256"]:
            raise ManifestError(f"{root / rel}: content differs from {path} (recorded {entry['bytes']} bytes, "
                                f"sha256 {entry['sha256'][:12]}…; found {size} bytes); {RESTORE_HINT}")


def _state(folder: Path) -> tuple:
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file())


@functools.lru_cache(maxsize=256)
def _verify_cached(root: str, rel: str, manifest_state: tuple, folder_state: tuple) -> None:
    verify(root, [rel])


def check_folder(folder: str | Path) -> None:
    """Verify one dataset folder against the manifest above it, if there is one. Repeated reads of an
    unchanged folder in the same process are not re-hashed (the key includes sizes and mtimes)."""
    folder = Path(folder).resolve()
    path = find(folder)
    if path is None:
        return
    root = path.parent
    rel = str(folder.relative_to(root))
    if rel == ".":
        verify(root)
        return
    _verify_cached(str(root), rel, _state(root), _state(folder))
