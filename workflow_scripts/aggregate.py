"""Every evaluation's metrics JSON into results/summary.csv (one row per measurement, with its bootstrap
interval), the paired differences into results/differences.csv, plus the provenance of the table (commit,
resolved config, and each evaluation's own provenance) beside it."""
from mmunlearn.report.aggregate import write_summary
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821
log = setup(smk)
rows = write_summary([*smk.input.metrics, *smk.input.factuality, *smk.input.reviews], smk.output.summary,
                     smk.output.provenance, dict(smk.config),
                     # the reviews after the answers: they carry the LLaVA-Bench numbers the answers do not
                     samples_files=[*smk.input.samples, *smk.input.reviewed], judged_files=list(smk.input.judged),
                     differences_out=smk.output.differences)
log.info("%d rows -> %s", rows, smk.output.summary)
