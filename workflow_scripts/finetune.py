"""LoRA fine-tune: the vanilla model on all fictitious profiles, or the oracle on one ratio's retain split."""
import json

from mmunlearn.data.schema import read_training_folder
from mmunlearn.train.stages import finetune
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821
log = setup(smk)
profiles, _ = read_training_folder(f"{smk.input.data}/MLLMU-Bench/ft_Data")
stage = "vanilla"
if "split" in smk.input.keys():  # oracle: the retain split only
    retain = set(json.load(open(smk.input.split))["retain_ids"])
    profiles, stage = [p for p in profiles if p.id in retain], "oracle"
hp = smk.params.hp
replay = []
if hp["mix"]["replay_fraction"] > 0:
    replay, _ = read_training_folder(f"{smk.input.data}/Pretrain_Set")
log.info("%s fine-tune on %d profiles", stage, len(profiles))
finetune(profiles, smk.params.model_cfg, smk.params.base_source, hp, smk.output.run, smk.params.seed,
         resolved_config(smk), stage, replay)
