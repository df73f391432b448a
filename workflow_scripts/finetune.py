"""LoRA fine-tune: the vanilla model on all fictitious profiles (but a configured holdout), or the oracle on one
ratio's retain split.
A configured existing vanilla model (models.<m>.vanilla) is imported instead of trained."""
import json

from mmunlearn.data.sets import finetune_sets
from mmunlearn.data.splits import holdout_ids
from mmunlearn.data.validate import load_facts
from mmunlearn.train.stages import finetune, import_vanilla
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
hp, data, oracle = smk.params.hp, smk.input.data, "split" in smk.input.keys()
imported = smk.params.model_cfg.get("vanilla")
log = setup(smk, processes=1 if imported and not oracle else hp["processes"])
if imported and not oracle:
    import_vanilla(imported, smk.output.run, resolved_config(smk), smk.params.seed)
else:
    facts = load_facts(smk.input.validated)  # whom each training row is about, and names (validate_data)
    stage = "oracle" if oracle else "vanilla"  # the oracle: one split's retain people only (spec §4)
    split = json.load(open(smk.input.split)) if oracle else None
    holdout = [] if oracle else holdout_ids(f"{data}/MLLMU-Bench", smk.params.holdout_ratio, smk.params.seed)
    profiles, replay = finetune_sets(data, stage, hp["mix"], facts, split, holdout)
    log.info("%s fine-tune on %d profiles (+ replay of %d)", stage, len(profiles), len(replay))
    finetune(profiles, smk.params.model_cfg, smk.params.base_source, hp, smk.output.run, smk.params.seed,
             resolved_config(smk), stage, replay, checkpoint_root=smk.params.checkpoints)
