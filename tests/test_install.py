"""The installed environment as `make venv` leaves it."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

# What a training or evaluation job imports at start-up, besides torch (pip installs torch, and compiles it)
JOB_IMPORTS = ("transformers", "transformers.models.llava.modeling_llava", "transformers.processing_utils",
               "snakemake.workflow", "nltk", "rouge_score.rouge_scorer", "scipy.stats", "safetensors")


@pytest.mark.parametrize("module", JOB_IMPORTS)
def test_what_jobs_import_is_installed_with_its_bytecode(module):
    """Each job is a new process; where PYTHONDONTWRITEBYTECODE is set (this machine, many container images) a
    module without a .pyc beside it is compiled from source in every one of them (~4 s a job before `make venv`
    passed uv --compile-bytecode). Checked for the module file itself: the package's import compiles its others
    with it."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    cached = Path(importlib.util.cache_from_source(spec.origin))
    assert cached.is_file(), (f"{module}: no bytecode at {cached} ({sys.prefix} was installed without compiling; "
                              "rebuild it with `make venv`, which passes uv --compile-bytecode)")
    assert os.path.getmtime(cached) >= os.path.getmtime(spec.origin) - 1, f"{module}: bytecode older than {spec.origin}"
