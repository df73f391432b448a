# Set-up and entry points. `make demo` and `make test` work on a fresh clone with Python >= 3.10.
# TORCH_INDEX picks the torch build: CPU wheels by default (small, no GPU); on a GPU machine run
#   make venv TORCH_BUILD=cu128
# to install the CUDA build of the same pinned version.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
TORCH_BUILD ?= cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/$(TORCH_BUILD)
SNAKEMAKE := $(BIN)/snakemake
# Snakemake for the runs on this machine (demo, demo-seeds, preflight). Where SLURM's client is installed but no
# controller answers (a workstation with slurm-client; a machine after `make test-slurm`), the SLURM executor
# plugin's `scontrol show config` at Snakemake's start takes 9 s to fail; these runs use no SLURM, so they meet an
# scontrol that fails at once (profiles/demo/no_slurm), as where SLURM is not installed. `scontrol ping` answers
# at once either way. A reachable controller is left alone.
LOCAL_SNAKEMAKE = $(if $(shell command -v scontrol >/dev/null 2>&1 && ! scontrol ping >/dev/null 2>&1 && echo down),PATH="$(CURDIR)/profiles/demo/no_slurm:$$PATH" )$(SNAKEMAKE)
UV_VERSION := 0.13.9
# uv reads no pip configuration: the wheel folders pip is told of (PIP_FIND_LINKS) are passed on
UV_PIP := $(BIN)/uv pip install -q --python $(BIN)/python $(foreach f,$(PIP_FIND_LINKS),--find-links $(f))
# install PACKAGES at requirements.lock's versions: through uv where it installed, else through pip
install = ($(UV_PIP) -c requirements.lock $(1)) || $(BIN)/pip install -q -c requirements.lock $(1)

.PHONY: venv lock demo demo-seeds preflight test test-fast test-slurm lint dryrun-paper pull push bench bench-data bench-train bench-eval bench-eval-memory bench-judge bench-demo bench-aggregate clean-demo

$(BIN)/activate: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# uv installs where it can (measured on 2 cores: the CPU torch wheel 6 s against pip's 22 s, the rest 6 s
	# against 41 s; README "Demo time"); every step falls back to pip where it cannot.
	-$(BIN)/pip install -q "uv==$(UV_VERSION)"
	# Install torch first, as the chosen build, so the project's torch==$(TORCH_VERSION) pin is already met.
	# "torch==$(TORCH_VERSION)+$(TORCH_BUILD)" from a local wheel or the configured index, else the PyTorch index.
	$(call install,"torch==$(TORCH_VERSION)+$(TORCH_BUILD)") || \
		$(BIN)/pip install -q --index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple "torch==$(TORCH_VERSION)"
	# The rest at requirements.lock's versions. Either installer keeps the torch build installed above.
	# What the workflow runs only: the test tools come with `make test` ($(TEST_DEPS)). scikit-learn in the
	# environment costs every evaluation job ~0.8 s, as nltk (ROUGE's stemmer) imports it when it is there.
	$(call install,-e .)
	# The bytecode of what the jobs import, written once: where PYTHONDONTWRITEBYTECODE is set, every job compiled
	# them from source again (~4 s a job; src/mmunlearn/bytecode.py, README "Demo time")
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m mmunlearn.bytecode
	touch $(BIN)/activate

venv: $(BIN)/activate

# The test extras (pytest; scikit-learn, the tests' independent ROC AUC) into the same venv, once
TEST_DEPS := $(VENV)/.test-deps
$(TEST_DEPS): $(BIN)/activate
	$(call install,-e ".[test]")
	# with scikit-learn installed, the jobs import it (through nltk): its bytecode too
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m mmunlearn.bytecode
	touch $(TEST_DEPS)

# requirements.lock from this venv (after changing a pin in pyproject.toml): every installed package but torch,
# the project and the installers
lock: $(TEST_DEPS)
	{ sed -n '1,3p' requirements.lock; $(BIN)/python -m pip freeze --exclude-editable | \
		grep -v -i -E '^(torch|mmunlearn|pip|uv|setuptools|wheel)=='; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock

# The report in the same run (--report-after-run): a second Snakemake start cost 15 s (README "Demo time")
demo: venv
	$(LOCAL_SNAKEMAKE) --profile profiles/demo --report results/report.html --report-after-run
	@echo "demo done: results/summary.csv, results/tables/, results/figures/, results/report.html"

# The demo replicated over three seeds (config/demo_seeds.yaml): rows per seed and over seeds
demo-seeds: venv
	$(LOCAL_SNAKEMAKE) --profile profiles/demo --configfile config/demo.yaml config/demo_seeds.yaml \
		--report results/report.html --report-after-run
	@echo "demo over seeds 42, 7, 3 done: results/summary.csv (seed = mean: over seeds), results/tables/, results/figures/"

# What every GPU rule of the study needs, measured on this machine (README "Preflight"); on a cluster:
#   snakemake --profile slurm results/preflight.json
preflight: venv
	$(LOCAL_SNAKEMAKE) --cores all results/preflight.json

# --durations: where the suite's time goes, in every CI log
test: $(TEST_DEPS)
	set -o pipefail; $(BIN)/python -m pytest -q --durations=15 tests 2>&1 | tee .pytest-last.log

# A real one-node SLURM (root + apt-get: installs slurm-wlm, munge, slurmdbd, mariadb-server), the reduced
# study through `--profile slurm`, GPU requests checked in sacct. Exits 2 where it cannot run (no root/apt).
test-slurm: $(TEST_DEPS)
	bash tests/slurm/run.sh $(BIN)/python

test-fast: $(TEST_DEPS)
	$(BIN)/python -m pytest -q -m "not integration" tests

lint: venv
	$(SNAKEMAKE) --lint
	$(SNAKEMAKE) --configfile config/demo.yaml --lint

dryrun-paper: venv
	$(SNAKEMAKE) --profile slurm -n results/summary.csv

# DVC around a Snakemake run, never inside its jobs (README "Versioning with DVC"). pull: restore the version
# dvc.lock records (data, adapters, evaluations, summary, figures, Snakemake's provenance), then give the restored
# files times that let content decide reruns. push: record this tree's results in dvc.lock and upload them.
pull: venv
	$(BIN)/dvc pull --with-deps pipeline
	$(BIN)/python -m mmunlearn.versioning

push: venv
	$(BIN)/dvc commit --force --with-deps pipeline
	$(BIN)/dvc push --with-deps pipeline
	@echo "recorded: commit dvc.lock with git to pin this version"

# Benchmarks (bench/): measured, not asserted; each prints its numbers as JSON. The last line of `make bench`
# is the evaluation speed-up (also in results/bench.json as "eval_speedup"). bench-demo runs the whole demo DAG
# from nothing in a temporary copy (~12 min on 2 cores): its wall time, per-rule times and critical path.
bench: bench-data bench-train bench-judge bench-demo bench-eval bench-eval-memory bench-aggregate

bench-data: $(TEST_DEPS)
	$(BIN)/python bench/load_data.py

bench-train: $(TEST_DEPS)
	$(BIN)/python bench/train_speed.py

bench-eval: $(TEST_DEPS)
	$(BIN)/python bench/eval_speed.py

# peak memory of one batch of teacher-forced scoring at paper-size shapes (LM head at scored positions only)
bench-eval-memory: $(TEST_DEPS)
	$(BIN)/python bench/eval_memory.py

# judge jobs per second through Snakemake against the loopback judge server (start-up vs request time)
bench-judge: $(TEST_DEPS)
	$(BIN)/python bench/judge_speed.py

bench-aggregate: $(TEST_DEPS)
	$(BIN)/python bench/aggregate_scale.py

bench-demo: $(TEST_DEPS)
	$(BIN)/python bench/demo_time.py

clean-demo:
	rm -rf data/demo data/demo_utility data/splits results/models results/eval results/summary.csv results/differences.csv logs .snakemake
