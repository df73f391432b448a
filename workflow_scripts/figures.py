"""Figures 3 and 4 of results/summary.csv, PNG and PDF."""
from pathlib import Path

from mmunlearn.report.figures import write_figures
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821
log = setup(smk)
Path(smk.output[0]).mkdir(parents=True, exist_ok=True)
for path in write_figures(smk.input.summary, smk.output[0], smk.params.classification_metric):
    log.info("wrote %s", path)
