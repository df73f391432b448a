"""Download one utility benchmark (MMMU, LLaVA-Bench) at its pinned revision, or generate its synthetic twin."""
from mmunlearn.data.utility import prepare
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = setup(smk)
result = prepare(smk.wildcards.benchmark, smk.params.cfg, smk.params.source, smk.output.data, smk.params.seed)
log.info("%s ready in %s: %d files", smk.wildcards.benchmark, smk.output.data, len(result["files"]))
