"""Unlearn one ratio's forget set from the vanilla model with one method, multimodal or text-only."""
import json

from mmunlearn.data.sets import split_sets
from mmunlearn.data.validate import load_facts
from mmunlearn.train.stages import unlearn
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = setup(smk, processes=smk.params.hp["processes"])
# Published ratios: baseline_train_split, as the original's baseline scripts (spec §1.1); others: ft_Data by ID.
sets = split_sets(smk.input.data, json.load(open(smk.input.split)), facts=load_facts(smk.input.validated))
log.info("%s (%s): forget %d profiles, retain %d", smk.wildcards.method, smk.wildcards.modality,
         len(sets["forget"]), len(sets["retain"]))
unlearn(smk.wildcards.method, smk.wildcards.modality, sets["forget"], sets["retain"], smk.params.model_cfg,
        smk.params.base_source, smk.input.vanilla, smk.input.oracle[0] if smk.input.oracle else None, smk.params.hp,
        smk.output.run, smk.params.seed, resolved_config(smk), checkpoint_root=smk.params.checkpoints)
