"""Download MLLMU-Bench at the pinned revision, or generate the synthetic twin (config data.source)."""
from mmunlearn.data.fetch import prepare
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup(smk)
prepare(smk.params.data, smk.output.data)
