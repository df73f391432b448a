"""Download a hub model's weights into the (shared) Hugging Face cache on the submitting node."""
from mmunlearn.models.fetch import fetch_model
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup(smk)
fetch_model(smk.wildcards.model, smk.params.model_cfg, smk.output.record)
