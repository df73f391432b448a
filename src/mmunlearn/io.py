"""Atomic file output and run provenance shared by every stage.

Every result file is written to a temporary name in the same folder and renamed into place, so an
interrupted job never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _tmp_sibling(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = _tmp_sibling(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` only if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path that is renamed to ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(path: str | os.PathLike) -> str:
    """Content hash of a file or of every file below a folder (names and bytes, order-independent)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The checked-out commit, with ``-dirty`` when tracked files differ; ``unknown`` outside git."""
    cwd = str(repo or Path(__file__).resolve().parents[2])
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _installed_version(package: str) -> str | None:
    """The installed version (the same string as ``torch.__version__``), read from the package's metadata:
    importing torch for it would cost a light job (the judge) 2+ s."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


VECTOR_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "asimd", "sve")


def cpu_identity() -> dict:
    """The CPU a result was computed on: its model name, the vector extensions it offers, and the level torch's CPU
    kernels dispatched to in this process (None where the job never imported torch: the judge). Trained weights
    depend on it: the same commit, seed and data trained on an AVX2-only machine and on an AVX-512 one give models
    that differ in their last bits and, after ~2,500 steps, in the demo's tables (README "Demo results")."""
    model, flags = platform.processor() or None, set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model") and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
                break
    torch = sys.modules.get("torch")
    return {"model": model, "vector_extensions": [f for f in VECTOR_EXTENSIONS if f in flags],
            "torch_kernels": torch.backends.cpu.get_cpu_capability() if torch is not None else None}


def provenance(config: dict, *, seed: int, dtype: str, effective_batch_size: int | None = None,
               **extra: Any) -> dict:
    """What every result file records so that a number can be traced back to how it was made."""
    return {
        "git_commit": git_commit(),
        "seed": seed,
        "dtype": dtype,
        "effective_batch_size": effective_batch_size,
        "torch": _installed_version("torch"),
        "python": platform.python_version(),
        "host": platform.node(),
        "cpu": cpu_identity(),
        **extra,
        "config": config,
    }
