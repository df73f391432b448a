"""Forget/retain IDs for one ratio, the seeded Test_Set image per person and few-shot profiles per split."""
from mmunlearn.data.splits import build_split
from mmunlearn.io import write_json_atomic
from mmunlearn.workflow import setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = setup(smk)
split = build_split(f"{smk.input.data}/MLLMU-Bench", int(smk.wildcards.ratio), smk.params.seed,
                    dict(smk.params.fewshot))
log.info("forget %d / retain %d profiles (%s)", len(split["forget_ids"]), len(split["retain_ids"]), split["source"])
write_json_atomic(smk.output.split, split)
