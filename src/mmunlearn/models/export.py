"""Explicit, optional export of a run as a merged full model (the original's storage format, spec §4).

The pipeline stores LoRA adapters only; a merged checkpoint (13-14 GB for a 7B model in bf16, 177 x an
adapter) is written only when asked for: ``snakemake results/merged/<model>/<run>``.
"""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_dir, provenance, write_json_atomic
from .loading import load_model


def export_merged(model_cfg: dict, base_source: str, run_dir: str | Path, out_dir: str | Path, config: dict,
                  seed: int) -> None:
    vlm = load_model(model_cfg, base_source, run_dir, merge=True)
    with atomic_dir(Path(out_dir)) as tmp:
        vlm.model.save_pretrained(tmp)
        vlm.processor.save_pretrained(tmp)
        write_json_atomic(tmp / "export.json", {"merged_from": str(run_dir), "base_source": base_source,
                                                **provenance(config, seed=seed, dtype=str(vlm.model.dtype))})
