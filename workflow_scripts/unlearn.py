"""Unlearn one ratio's forget set from the vanilla model with one method, multimodal or text-only."""
import json

from mmunlearn.data.schema import read_training_folder
from mmunlearn.train.stages import unlearn
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821
log = setup(smk)
split = json.load(open(smk.input.split))
ratio, data = int(smk.wildcards.ratio), smk.input.data
# The original's baseline scripts read baseline_train_split (image + metadata QA pairs), spec §1.1.
forget, _ = read_training_folder(f"{data}/baseline_train_split/forget_{ratio}")
retain, _ = read_training_folder(f"{data}/baseline_train_split/retain_{100 - ratio}")
log.info("%s (%s): forget %d profiles, retain %d", smk.wildcards.method, smk.wildcards.modality, len(forget), len(retain))
unlearn(smk.wildcards.method, smk.wildcards.modality, forget, retain, smk.params.model_cfg, smk.params.base_source,
        smk.input.vanilla, smk.input.oracle[0] if smk.input.oracle else None, smk.params.hp, smk.output.run,
        smk.params.seed, resolved_config(smk))
