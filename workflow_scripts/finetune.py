"""LoRA fine-tune: the vanilla model on all fictitious profiles, or the oracle on one ratio's retain split."""
import json

from mmunlearn.data.sets import folder_set, split_sets, vanilla_set
from mmunlearn.train.stages import finetune
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = setup(smk)
hp, data = smk.params.hp, smk.input.data
if "split" in smk.input.keys():  # the oracle: retain only (spec §4)
    stage, profiles = "oracle", split_sets(data, json.load(open(smk.input.split)), ("retain",))["retain"]
else:
    stage, profiles = "vanilla", vanilla_set(data)
replay = folder_set(data, hp["mix"]["replay_data"]) if hp["mix"]["replay_fraction"] > 0 else []
log.info("%s fine-tune on %d profiles (+ replay of %d)", stage, len(profiles), len(replay))
finetune(profiles, smk.params.model_cfg, smk.params.base_source, hp, smk.output.run, smk.params.seed,
         resolved_config(smk), stage, replay)
