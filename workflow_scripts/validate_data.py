"""Validate everything the study reads (every file, image, nested type, ID, join and split) and derive the facts
the jobs depend on (whom each training row is about, each person's name); write them and the load report."""
from mmunlearn.data.validate import validate, write
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup(smk)
facts = validate(smk.input.data, dict(smk.params.names), smk.params.names_required, tuple(smk.params.corpora))
write(facts, smk.output.facts, smk.output.report)
