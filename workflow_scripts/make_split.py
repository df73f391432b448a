"""Forget/retain IDs for one ratio, the seeded Test_Set image per person and few-shot profiles per split."""
from mmunlearn.data.splits import build_split, holdout_ids
from mmunlearn.io import write_json_atomic
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = setup(smk)
bench = f"{smk.input.data}/MLLMU-Bench"
holdout = holdout_ids(bench, smk.params.holdout_ratio, smk.params.seed)
split = build_split(bench, int(smk.wildcards.ratio), smk.params.seed, dict(smk.params.fewshot), holdout)
log.info("forget %d / retain %d / holdout %d profiles (%s)", len(split["forget_ids"]), len(split["retain_ids"]),
         len(holdout), split["source"])
write_json_atomic(smk.output.split, split)
