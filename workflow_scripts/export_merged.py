"""Merge a run's adapter chain into its base and save a full model (explicit export, never a default target)."""
from mmunlearn.models.export import export_merged
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup(smk)
export_merged(smk.params.model_cfg, smk.params.base_source, smk.input.run, smk.output.merged, resolved_config(smk),
              smk.params.seed)
