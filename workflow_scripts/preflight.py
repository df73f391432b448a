"""Measure what every GPU rule of the study needs on this machine (README "Preflight"): peak memory, time per
step or batch, tokens per second, each job's projected runtime, fit checks against resources:, a suggested
resources: block and the GPU-hour bill from measurements."""
import json

from mmunlearn.cluster import PlannedJob
from mmunlearn.data.validate import load_facts
from mmunlearn.io import provenance, write_json_atomic, write_text_atomic
from mmunlearn.preflight.measure import process_age_s
from mmunlearn.preflight.study import format_report, run_preflight, suggested_yaml
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821 (injected by Snakemake)
startup_s = process_age_s()  # the interpreter and these imports: every job of the study pays about as much
log = setup(smk)
p = smk.params
splits = {int(r): json.load(open(path)) for r, path in zip(p.ratios, smk.input.splits)}
report = run_preflight(resolved_config(smk), [PlannedJob(**j) for j in p.jobs], smk.input.data,
                       load_facts(smk.input.validated), splits, p.model_cfgs, p.base_sources, p.eval_cfgs, p.seed,
                       startup_s)
text = format_report(report)
log.info("\n%s", text)  # the job log and the console (stderr)
report["provenance"] = provenance(resolved_config(smk), seed=p.seed, dtype=", ".join(
    sorted({c["dtype"] for c in p.model_cfgs.values()})), device=report["device"]["name"])
write_text_atomic(smk.output.resources, suggested_yaml(report))
write_json_atomic(smk.output.report, report)
