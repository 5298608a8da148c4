# seqforge — one command per job; each installs what it needs into .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch first, so pip does not pull a CUDA build where a CPU wheel is wanted; override for GPUs.
TORCH_SPEC ?= torch==2.13.0
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
export NO_MKDOCS_2_WARNING := 1
LINTED := src tests bench pipelines docs/gen

.PHONY: install pipeline smoke gpu gpu-check repro test test-ci test-all bench clean-runs stack stack-down deps docs docs-check docs-serve lint

install: $(STAMP)

# uv installs the rest (in parallel, compiled: 2.5 min less than pip on 2 cores), keeping the torch pip put there.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)" uv
	$(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode -e ".[test]"
	touch $@

## The team stack on loopback (conf/stack.yaml): PostgreSQL, SeaweedFS S3, MLflow server with basic auth.
## Needs Debian's postgresql (apt-get install postgresql); prints the variables to export.
stack: install
	seqforge stack up

stack-down: install
	seqforge stack down

## The main job: the whole DVC pipeline on the default profile (full Multi30k, CPU).
pipeline: install
	$(MAKE) repro PROFILE=default

## Every stage on tiny data and models (minutes); used by tests and CI.
smoke: install
	$(MAKE) repro PROFILE=smoke

## Sized for one GPU (bf16-mixed, one Ray Train worker per GPU).
gpu: install
	$(MAKE) repro PROFILE=gpu

## What one GPU does with seqforge, in minutes (bench/gpu_check.py): writes reports/gpu_check/. Needs the
## tokenized translation task (`seqforge fetch && dvc repro tokenize@translation`). Runs without the project's
## install too (a lent GPU machine): python3 with torch and lightning, plus .whl/ from bench/device_wheels.sh.
gpu-check:
ifneq ($(wildcard $(PY)),)
	PYTHONPATH=src $(PY) -m bench.gpu_check $(GPU_CHECK_ARGS)
else
	test ! -d .whl || python3 -m pip install -q --no-index --no-deps --no-compile --target .whl/site .whl/*.whl
	PYTHONPATH=src:.whl/site python3 -m bench.gpu_check $(GPU_CHECK_ARGS)
endif

repro:
	seqforge profile $(PROFILE)
	seqforge fetch
	dvc repro

## Fast suite (no training, < 2 min); `test-ci` adds the slow end-to-end tests but the `nightly` ones (what
## CI runs: .ci/run); `test-all` runs everything.
test: install
	pytest

## test-ci: two pytest processes side by side, as one alone left both cores idle two thirds of the time: the
## `shared` tests (the session's Ray cluster and smoke pipeline) and the rest, whose report follows. OpenMP threads
## that wait sleep (PASSIVE) rather than spin: beside a busy process, the GRU reversal test took 205 s spinning, 20 s.
test-ci: install
	@export OMP_WAIT_POLICY=PASSIVE; tmp=$$(mktemp -d); \
	pytest -m "not nightly and not shared" --durations=15 --basetemp=$$tmp/rest >$$tmp/rest.log 2>&1 & rest=$$!; \
	pytest -m "not nightly and shared" --durations=30; shared=$$?; \
	wait $$rest; other=$$?; \
	echo "== beside them, the tests that share nothing: pytest -m 'not nightly and not shared'"; cat $$tmp/rest.log; \
	rm -rf $$tmp; exit $$(( shared || other ))

test-all: install
	pytest -m "slow or not slow" --durations=30

bench: install
	python -m bench.throughput

## The source deps of every DVC stage, from its entry point's imports (after moving code; tests/test_layout.py checks them).
deps: install
	python tests/stage_deps.py

## The documentation site (docs/, mkdocs.yml): its generated blocks rewritten from committed inputs, then built
## into site/ with every link and anchor checked.
docs: install
	python -m docs.gen
	mkdocs build --strict --quiet

## What CI runs: fails on a generated block that differs from its inputs (nothing rewritten), then builds.
docs-check: install
	python -m docs.gen --check
	mkdocs build --strict --quiet

docs-serve: install
	python -m docs.gen
	mkdocs serve --strict

## Lint: ruff's rules (pyproject.toml) and its formatter, checked.
lint: install
	ruff check $(LINTED)
	ruff format --check $(LINTED)
