"""What every workflow script does first: log to its Snakemake log (and stderr), and use exactly the job's
``threads`` for torch, so parallel jobs do not oversubscribe the cores."""

from __future__ import annotations

import logging
import sys


def setup(smk) -> logging.Logger:
    handlers = [logging.StreamHandler(sys.stderr)]
    if smk.log:
        handlers.append(logging.FileHandler(smk.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    import torch

    torch.set_num_threads(max(1, int(smk.threads)))
    log = logging.getLogger(f"mmunlearn.rule.{smk.rule}")
    log.info("rule %s, wildcards %s, threads %d", smk.rule, dict(smk.wildcards), smk.threads)
    return log


def resolved_config(smk) -> dict:
    """The whole resolved configuration, recorded in every result file."""
    return dict(smk.config)
