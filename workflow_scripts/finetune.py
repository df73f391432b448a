"""LoRA fine-tune: the vanilla model on all fictitious profiles (but a configured holdout), or the oracle on one
ratio's retain split.
A configured existing vanilla model (models.<m>.vanilla) is imported instead of trained."""
import json

from mmunlearn.data.sets import folder_set, split_sets, vanilla_set
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
    if oracle:  # retain only (spec §4)
        split = json.load(open(smk.input.split))
        stage, profiles = "oracle", split_sets(data, split, ("retain",), facts)["retain"]
    else:
        holdout = holdout_ids(f"{data}/MLLMU-Bench", smk.params.holdout_ratio, smk.params.seed)
        stage, profiles = "vanilla", vanilla_set(data, facts, holdout)
    replay = folder_set(data, hp["mix"]["replay_data"], facts) if hp["mix"]["replay_fraction"] > 0 else []
    log.info("%s fine-tune on %d profiles (+ replay of %d)", stage, len(profiles), len(replay))
    finetune(profiles, smk.params.model_cfg, smk.params.base_source, hp, smk.output.run, smk.params.seed,
             resolved_config(smk), stage, replay, checkpoint_root=smk.params.checkpoints)
