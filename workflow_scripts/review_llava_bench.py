"""LLaVA-Bench: the reviewer scores one model run's answers against the reference answers (eval/llava_bench.py).
Imports nothing heavy: the job's time is the endpoint's."""
import json

from mmunlearn.eval.identity import run_identity
from mmunlearn.eval.llava_bench import load_rules, review, reviewer_config
from mmunlearn.io import provenance, write_json_atomic, write_text_atomic
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821
log = setup(smk)
cfg = reviewer_config(smk.params.judge_cfg, smk.params.bench_cfg)
samples = [json.loads(line) for line in open(smk.input.samples)]
records, rows, status = review(samples, cfg, load_rules(smk.params.bench_cfg.get("rules")))
identity = run_identity(smk.wildcards.model, smk.wildcards.run, "llava_bench", smk.params.seed)
write_text_atomic(smk.output.samples, "".join(json.dumps({**identity, **r}) + "\n" for r in records))
write_json_atomic(smk.output.metrics, {
    **identity, "results": rows, "status": status,
    "judge": {k: v for k, v in vars(cfg).items() if k != "cache_dir"},
    "rules": smk.params.bench_cfg.get("rules") or "ours (eval/llava_bench.py DEFAULT_RULES)",
    "provenance": provenance(resolved_config(smk), seed=smk.params.seed, dtype="n/a")})
log.info("LLaVA-Bench %s: %s", status, ", ".join(f"{r['metric']}={r['value']}" for r in rows))
