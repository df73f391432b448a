"""Write the bytecode (.pyc) of every module the workflow's jobs import, once, when `make venv` installs them.

Every Snakemake job is a new Python process. Where PYTHONDONTWRITEBYTECODE is set (this project's CI machine,
many container images) no process ever writes a .pyc, and uv, unlike pip, compiles nothing at install, so each
job compiled what it imports from source again: ~4 s of every training and evaluation job's start-up (measured:
an evaluation job's imports and model load 10.7 -> 6.8 s). Importing the same modules once with bytecode
writing on stores exactly those: ~20 s, where compiling the whole environment (uv --compile-bytecode) took 65 s.

    env -u PYTHONDONTWRITEBYTECODE python -m mmunlearn.bytecode
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

# Imported inside functions (so not reached by importing this package) by the jobs: the Snakemake script
# preamble (not snakemake.api, which the CLI compiles once per run: its SLURM plugin asks scontrol at import, 9 s
# where no controller answers), LoRA, the metrics, the figures, every family's model and processor classes.
LAZY_IMPORTS = (
    "snakemake.script", "peft", "peft.utils.transformers_weight_conversion", "rouge_score.rouge_scorer",
    "nltk.translate.bleu_score", "matplotlib.pyplot", "scipy.stats",
    "transformers.models.auto.processing_auto",
    # torch is installed by uv too, which compiles nothing: what an optimizer step imports (its profiling hook)
    "torch.profiler._cupti_monitor",
    # LLaVA-1.5: CLIP vision tower and image processor, Llama language model
    "transformers.models.llava.modeling_llava", "transformers.models.llava.processing_llava",
    "transformers.models.clip.modeling_clip", "transformers.models.clip.image_processing_pil_clip",
    "transformers.models.llama.modeling_llama",
    # Idefics2 (Mistral language model), Qwen2.5-VL (Qwen2-VL's image processor, Qwen2's tokenizer)
    "transformers.models.idefics2.modeling_idefics2", "transformers.models.idefics2.processing_idefics2",
    "transformers.models.idefics2.image_processing_pil_idefics2", "transformers.models.mistral.modeling_mistral",
    "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl", "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl",
    "transformers.models.qwen2.tokenization_qwen2")


def job_modules() -> list[str]:
    """Every module of this package, then the ones its jobs import lazily."""
    import mmunlearn

    return [m.name for m in pkgutil.walk_packages(mmunlearn.__path__, "mmunlearn.")] + list(LAZY_IMPORTS)


def main() -> None:
    if sys.flags.dont_write_bytecode:
        raise SystemExit("PYTHONDONTWRITEBYTECODE is set: run as `env -u PYTHONDONTWRITEBYTECODE python -m "
                         "mmunlearn.bytecode`, or nothing is written")
    start, before = time.time(), len(sys.modules)
    for name in job_modules():
        importlib.import_module(name)
    print(f"bytecode written for {len(sys.modules) - before} modules the jobs import ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
