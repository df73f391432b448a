"""Figures 3 and 4 (and the privacy figure) of results/summary.csv, with the error bars of
results/differences.csv: PNG and PDF."""
from pathlib import Path

from mmunlearn.report.figures import write_figures
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821
log = setup(smk)
Path(smk.output[0]).mkdir(parents=True, exist_ok=True)
for path in write_figures(smk.input.summary, smk.output[0], smk.params.classification_metric, smk.input.differences,
                            smk.input.provenance, workers=smk.threads):
    log.info("wrote %s", path)
