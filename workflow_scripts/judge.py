"""Factuality of one evaluation's generated answers, scored by the configured judge (or "not scored").
Imports nothing heavy (no torch, transformers, PIL): a judge job's time is the endpoint's, not its start-up."""
import json

from mmunlearn.eval.identity import run_identity
from mmunlearn.eval.judge import JudgeConfig, factuality
from mmunlearn.io import provenance, write_json_atomic, write_text_atomic
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821
log = setup(smk)
cfg = JudgeConfig.from_config(dict(smk.params.judge_cfg))
samples = [json.loads(line) for line in open(smk.input.samples)]
judged, rows, status = factuality(samples, cfg)
identity = run_identity(smk.wildcards.model, smk.wildcards.run, smk.wildcards.split, smk.params.seed)
write_text_atomic(smk.output.samples, "".join(json.dumps({**identity, **j}) + "\n" for j in judged))
write_json_atomic(smk.output.metrics, {
    **identity, "results": rows, "status": status,
    "judge": {k: v for k, v in vars(cfg).items() if k != "cache_dir"},
    "provenance": provenance(resolved_config(smk), seed=smk.params.seed, dtype="n/a")})
log.info("factuality %s: %s", status, ", ".join(f"{r['input_modality']}={r['value']}" for r in rows))
