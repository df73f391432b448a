"""File times after `dvc pull` / `dvc checkout` / `git checkout`, so that Snakemake decides reruns by content.

DVC writes restored files with the time of the pull, in no particular order, and git gives the scripts the time
of the checkout. Snakemake 9 compares times whatever `--rerun-triggers` says: an input newer than its output,
or a script newer than a rule's outputs, reruns the job, even when nothing changed. Its content triggers
(params, with our code hashes; the set of inputs; rule code) need the provenance records DVC restores beside
the results (`.snakemake/metadata`).

``sync_times`` neutralises the times of a restored version: every output recorded in the metadata gets a time
after the newest workflow source file, later than each of its recorded inputs (topological order of the
recorded DAG). Then only content decides: after a pull `snakemake -n` schedules nothing, and a later real edit
(a config value, a script, package code) reruns exactly what it touches. Run it right after the restore
(`make pull` does); on a working tree with unrecorded local results it would hide their time order.

    python -m mmunlearn.versioning [ROOT]
"""

from __future__ import annotations

import json
import os
import sys
import time
from base64 import urlsafe_b64decode
from pathlib import Path

SOURCES = ("Snakefile", "rules", "workflow_scripts", "schemas", "config", "config.yaml", "src")


def recorded_outputs(root: Path) -> dict[str, list[str]]:
    """{output path: its recorded input paths} from Snakemake's file-based metadata (base64 of the path, split
    into folders where it exceeds the file-name limit)."""
    meta = root / ".snakemake" / "metadata"
    records = {}
    for f in sorted(meta.rglob("*")) if meta.is_dir() else []:
        if f.is_file():
            path = urlsafe_b64decode("".join(f.relative_to(meta).parts)).decode()
            records[path] = json.loads(f.read_text()).get("input") or []
    return records


def levels(records: dict[str, list[str]]) -> dict[str, int]:
    """Depth of each recorded output in the recorded DAG: 0 without recorded producers among its inputs."""
    out: dict[str, int] = {}

    def producer(path: str) -> str | None:
        if path in records:
            return path
        return next((o for o in records if path.startswith(o.rstrip("/") + "/")), None)  # inside an output folder

    def depth(path: str, seen: frozenset = frozenset()) -> int:
        if path in out:
            return out[path]
        if path in seen:
            raise ValueError(f".snakemake/metadata: a cycle through {path}")
        ups = [p for p in (producer(i) for i in records[path]) if p is not None and p != path]
        out[path] = 1 + max((depth(p, seen | {path}) for p in ups), default=-1)
        return out[path]

    for path in records:
        depth(path)
    return out


def _stamp(path: Path, t: float) -> int:
    """Set ``path`` and, for a folder, everything below it to time ``t``; returns how many entries were set."""
    n = 0
    entries = [path] if not path.is_dir() else [*sorted(path.rglob("*"), reverse=True), path]
    for p in entries:  # children before their folder
        os.utime(p, (t, t), follow_symlinks=False)
        n += 1
    return n


def sync_times(root: str | Path = ".", now: float | None = None) -> dict:
    root = Path(root)
    records = recorded_outputs(root)
    depth = levels(records)
    newest_source = max((p.stat().st_mtime for name in SOURCES for p in
                         ([root / name] if (root / name).is_file() else (root / name).rglob("*"))
                         if p.exists()), default=0.0)
    top = max(depth.values(), default=0)
    # the deepest output lands at "now" (so later results are not older than their inputs), and every output
    # after the newest source file (Snakemake reruns a rule whose script is newer than its outputs)
    base = max(newest_source + 1, (time.time() if now is None else now) - top)
    stamped = files = 0
    for path, level in sorted(depth.items(), key=lambda kv: kv[1]):
        target = root / path
        if target.exists() or target.is_symlink():
            files += _stamp(target, base + level)
            stamped += 1
    return {"outputs": stamped, "recorded": len(records), "entries": files, "levels": top + 1 if depth else 0}


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(".")
    if not (root / ".snakemake" / "metadata").is_dir():
        print(f"{root}/.snakemake/metadata: no Snakemake provenance records (dvc pull restores them with the "
              "pipeline stage's outputs); nothing to do", file=sys.stderr)
        return 1
    stats = sync_times(root)
    print(f"sync_times: {stats['outputs']} of {stats['recorded']} recorded outputs ({stats['entries']} files and "
          f"folders) stamped in {stats['levels']} levels, after the newest workflow source")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
