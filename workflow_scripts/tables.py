"""The paper-layout tables of results/summary.csv (with intervals and marked changes from
results/differences.csv), the selectivity tables, and the privacy / forget-quality tables: CSV and Markdown per
model and forget ratio."""
from pathlib import Path

from mmunlearn.report.tables import write_privacy_tables, write_tables
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821
log = setup(smk)
Path(smk.output[0]).mkdir(parents=True, exist_ok=True)
for path in [*write_tables(smk.input.summary, smk.output[0], smk.input.differences),
             *write_privacy_tables(smk.input.summary, smk.output[0])]:
    log.info("wrote %s", path)
