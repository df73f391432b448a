"""Build the tiny LLaVA from config and pre-train it on the celebrity QA pairs (demo only)."""
from mmunlearn.data.validate import load_facts
from mmunlearn.train.stages import pretrain_tiny_base
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821
cfg = smk.params.model_cfg
setup(smk, processes=cfg["pretrain"].get("processes", 1))
pretrain_tiny_base(smk.input.data, cfg, cfg["pretrain"], smk.output.run, smk.params.seed, resolved_config(smk),
                   checkpoint_root=smk.params.checkpoints, facts=load_facts(smk.input.validated))
