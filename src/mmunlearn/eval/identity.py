"""Which evaluation a result file belongs to, from the DAG's names alone. A module of its own, importing
nothing heavy, so that light jobs (the judge) record it without loading the model stack."""

from __future__ import annotations

UTILITY_SPLITS = ("mmmu", "llava_bench")  # the utility benchmarks (data/utility.py), evaluated once per model run
RATIO_FREE_SPLITS = ("celebrity", "holdout", *UTILITY_SPLITS)  # their items do not depend on the forget ratio


def split_parts(split: str) -> tuple[str, str]:
    """("forget", "10") of ``forget_10``; (name, "") of a split that depends on no ratio (``llava_bench``)."""
    if split in RATIO_FREE_SPLITS:
        return split, ""
    name, _, ratio = split.rpartition("_")
    return (name, ratio) if name else (split, "")


def run_identity(model: str, run: str, split: str, seed: int) -> dict:
    """The summary.csv key columns of one evaluation, from the run and split names of the DAG.

    Runs: ``base``, ``vanilla``, ``oracle_<ratio>``, ``<method>_<multimodal|text>_<ratio>``; splits:
    ``<forget|test|retain>_<ratio>``, or one of ``RATIO_FREE_SPLITS``. ``forget_ratio`` is None where nothing
    depends on one (base and vanilla on the celebrity set and the utility benchmarks).
    """
    split_name, split_ratio = split_parts(split)
    if run in ("base", "vanilla"):
        method, modality, run_ratio = run, "none", None
    elif run.startswith("oracle_"):
        method, modality, run_ratio = "oracle", "none", run.split("_")[1]
    else:
        head, run_ratio = run.rsplit("_", 1)
        method, modality = head.rsplit("_", 1)
    ratio = split_ratio or run_ratio
    if split_ratio and run_ratio and split_ratio != run_ratio:
        raise ValueError(f"run {run} (ratio {run_ratio}) evaluated on split {split}")
    return {"model": model, "method": method, "unlearn_modality": modality,
            "forget_ratio": int(ratio) if ratio else None, "seed": seed, "split": split_name}
