"""Every evaluation's metrics JSON into results/summary.csv (one row per measurement)."""
from mmunlearn.report.aggregate import write_summary
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821
log = setup(smk)
rows = write_summary(list(smk.input.metrics), smk.output.summary)
log.info("%d rows -> %s", rows, smk.output.summary)
