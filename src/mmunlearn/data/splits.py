"""Forget/retain splits for any forget ratio, plus the seeded choices the original drew anew on every run.

The published 5/10/15 % splits are used as published. Any other ratio is derived from the seed: one
permutation of all fictitious IDs, the first ``round(N * ratio / 100)`` forgotten, so smaller forget sets are
nested inside larger ones and retain is always the exact complement.

The split file also fixes, from the seed, which Test_Set image each person is shown with and which profiles
serve as few-shot demonstrations per split and task (spec §2.5: the original used ``random.sample`` unseeded),
plus a held-out demo pool of retain profiles for the corrected few-shot setting.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.parquet as pq

from .schema import DataError, parquet_files

EVAL_SPLITS = ("forget", "test", "retain", "celebrity")


def read_ids(folder: str | Path) -> list[str]:
    ids = []
    for f in parquet_files(folder):
        if "ID" not in pq.read_schema(f).names:
            raise DataError(f, "ID", "missing column")
        ids += [str(x) for x in pq.read_table(f, columns=["ID"]).column("ID").to_pylist()]
    return ids


def forget_ids_for_ratio(bench_root: str | Path, ratio: int, all_ids: list[str], seed: int) -> tuple[list[str], str]:
    """The forget IDs of ``ratio`` % and where they came from ("published" or "derived")."""
    folder = Path(bench_root) / f"forget_{ratio}"
    if folder.is_dir():
        ids = read_ids(folder)
        unknown = sorted(set(ids) - set(all_ids))
        if unknown:
            raise DataError(folder, "ID", f"{len(unknown)} forget IDs are not in Full_Set, e.g. {unknown[:3]}")
        return ids, "published"
    if not 0 < ratio < 100:
        raise ValueError(f"forget ratio must be in (0, 100), got {ratio}")
    order = sorted(all_ids)
    random.Random(seed).shuffle(order)
    return order[: round(len(order) * ratio / 100)], "derived"


def build_split(bench_root: str | Path, ratio: int, seed: int, fewshot: dict[str, int]) -> dict:
    """Everything evaluation and unlearning need to agree on for one forget ratio."""
    bench_root = Path(bench_root)
    all_ids = read_ids(bench_root / "Full_Set")
    forget, source = forget_ids_for_ratio(bench_root, ratio, all_ids, seed)
    forget_set = set(forget)
    retain = [i for i in all_ids if i not in forget_set]
    assert forget_set.isdisjoint(retain) and forget_set | set(retain) == set(all_ids)
    celebrity = read_ids(bench_root / "Retain_Set")
    rng = random.Random(f"{seed}:{ratio}")
    test_images = {}
    for f in parquet_files(bench_root / "Test_Set"):
        table = pq.read_table(f, columns=["ID", "images"])
        for pid, imgs in zip(table.column("ID").to_pylist(), table.column("images").to_pylist()):
            if str(pid) in forget_set:
                test_images[str(pid)] = rng.randrange(len(imgs))
    absent = sorted(forget_set - set(test_images))
    if absent:
        raise DataError(bench_root / "Test_Set", "ID", f"{len(absent)} of the {ratio} % forget IDs have no Test_Set "
                        f"row, e.g. {absent[:3]}: the Test set cannot be evaluated")
    # Few-shot pools follow the original (spec §2.5): the evaluated split's own IDs (forget IDs for test).
    pools = {"forget": forget, "test": forget, "retain": retain, "celebrity": celebrity}
    fewshot_ids = {split: {task: sorted(rng.sample(sorted(pool), min(k, len(pool))))
                           for task, k in fewshot.items()}
                   for split, pool in pools.items()}
    # The corrected alternative (eval.fewshot_pool: held_out): demos from retain profiles that no split
    # scores, in a seeded order (task k takes the first k); its own stream keeps the draws above unchanged.
    pool_size = max(fewshot.values(), default=0)
    fewshot_pool = random.Random(f"{seed}:{ratio}:fewshot_pool").sample(sorted(retain), min(pool_size, len(retain)))
    return {"forget_ratio": ratio, "seed": seed, "source": source, "forget_ids": sorted(forget),
            "retain_ids": sorted(retain), "celebrity_ids": sorted(celebrity), "test_image_index": test_images,
            "fewshot_ids": fewshot_ids, "fewshot_pool": fewshot_pool}
