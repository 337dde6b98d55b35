# Two commands do everything on a fresh clone: `make demo` and `make test` (set-up included).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo and benchmarks keep data and the index inside the repo (git-ignored), not in ~/.local/share.
export VALUEGUARD_DATA_DIR ?= $(CURDIR)/.valueguard
export TRANSFORMERS_VERBOSITY ?= error
# A local mirror of the FULCRA files; without it, `data pull` downloads and verifies them upstream.
MIRROR ?= ../shared/data

.PHONY: setup setup-core browser data index demo typecheck test test-fast fuzz bench bench-server choice quality thresholds train audit-memory teach-curve bench-index bench-scale clean

# llama.cpp built for a portable x86-64 CPU, never with native detection: GGML_NATIVE switches AMX on where the CPU
# advertises it, and a hypervisor that withholds the AMX tile state then kills the process with SIGILL. The flags
# live in one place, the module that also tells a user how to rebuild (it imports nothing, so any python runs it).
LLAMA_CMAKE_ARGS := $(shell $(PYTHON) valueguard/integrations/local_llm.py --cmake-args)

# What the demo and a library user need: the package alone (no local LLM, no test tools).
$(VENV)/.core-installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: it is a CPU build on local disk; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $@

# Everything the tests and examples need, on top of the core. llama-cpp-python is rebuilt whenever its build flags
# differ from the ones it was built with (so an older native build in an existing .venv is replaced), with
# --no-cache-dir: a wheel built natively elsewhere must never come from pip's cache, nor ours go into it.
$(VENV)/.installed: $(VENV)/.core-installed Makefile
	if [ "$$(cat $(VENV)/.llama-build 2>/dev/null)" != "$(LLAMA_CMAKE_ARGS)" ]; then \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q --force-reinstall \
			--no-deps --no-cache-dir --no-binary llama-cpp-python "llama-cpp-python>=0.3.7" && \
		echo "$(LLAMA_CMAKE_ARGS)" > $(VENV)/.llama-build; fi
	$(BIN)/pip install -q -e ".[dev,langchain,local-llm,server]"
	# One short generation in a child process: a native crash is reported with the rebuild command.
	$(BIN)/python -m valueguard.integrations.local_llm
	touch $@

setup-core: $(VENV)/.core-installed

setup: $(VENV)/.installed

data: setup-core
	if [ -d "$(MIRROR)" ]; then $(BIN)/valueguard data pull --from "$(MIRROR)"; else $(BIN)/valueguard data pull; fi

index: data
	$(BIN)/valueguard index build

demo: index
	$(BIN)/python examples/demo.py

# Debian's chromium, for the real-browser test of the HTML audit report (root, Debian; a no-op when present).
browser:
	./.ci/browser

# mypy over valueguard/ with the settings in pyproject.toml ([tool.mypy]); `make test` runs it first.
typecheck: setup
	$(BIN)/mypy

test: setup browser typecheck
	$(BIN)/python -m pytest

# The tier that loads no embedding model (tests/conftest.py marks every test using a model fixture `model`):
# policy, readers, fuzz at their suite size, architecture, limits; about a minute.
test-fast: setup
	$(BIN)/python -m pytest -m "not model" -q

# The fuzz targets at 10,000 cases each (the suite runs them at 150): policy loader and evaluator, every log reader
# (docs/reliability.md has the figures). No model is loaded.
fuzz: setup
	VALUEGUARD_FUZZ_PROFILE=fuzz $(BIN)/python -m pytest tests/fuzz -q -p no:cacheprovider --durations=0

# The guarded call next to the bare fp32 embedding, then what this CPU can do for one forward pass (README).
bench: index
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/cpu_ceiling.py

# The guard server under 64 concurrent clients on loopback, against a stub upstream (docs/server.md).
bench-server: setup index
	$(BIN)/python benchmarks/bench_server.py

# How the estimator's text form, k and weighting were chosen (README): grouped cross-validation.
choice: setup
	$(BIN)/python benchmarks/estimator_choice.py --data "$(MIRROR)"

# Estimation quality on held-out data, each read-out side by side (docs/quality.md).
quality: data
	$(BIN)/valueguard -q eval --compare --policy default
	$(BIN)/valueguard -q eval --readout knn
	$(BIN)/valueguard -q eval --no-prompt
	$(BIN)/valueguard -q eval --policy default

# The pair read-out's stacker that the package ships (valueguard/estimation/readout/trained/, docs/quality.md):
# fitted out of fold on the default FULCRA files; `index build` uses it when its rows are exactly these.
train: data
	$(BIN)/valueguard -q train

# How the bundled policies' thresholds were calibrated (README): the calibrated files go to bench-results/.
thresholds: data
	mkdir -p bench-results
	$(BIN)/valueguard -q calibrate --policy default --target-precision block=0.8 --target-precision rewrite=0.65 \
		--target-benign-rate log=0.15 --held-out-cache bench-results/held-out \
		--out bench-results/default.calibrated.yaml
	$(BIN)/valueguard -q calibrate --policy strict --target-precision block=0.65 --target-precision rewrite=0.5 \
		--target-benign-rate log=0.3 --held-out-cache bench-results/held-out --out bench-results/strict.calibrated.yaml

# The learning curve of teaching on a domain shift: 0 / 50 / 200 / 1,000 of one model's scored answers folded into
# an index of the annotated file, tested on that model's other answers (docs/teach.md).
teach-curve: data
	$(BIN)/python benchmarks/teach_curve.py --data "$(VALUEGUARD_DATA_DIR)"

# Audit memory at 10k, 100k and 1M lines (README, "Auditing logs").
audit-memory: index
	$(BIN)/python benchmarks/audit_memory.py

# FAISS index kinds at 10k, 100k and 1M rows, then on the real FULCRA rows (docs/scale.md); BENCH_INDEX_ARGS=
# "--max-rows 100000" stops before the 1M build (minutes and 2 GB of memory per kind).
bench-index: setup
	nice -n 15 $(BIN)/python benchmarks/index_scale.py --data "$(MIRROR)" $(BENCH_INDEX_ARGS)

# The audit on the local engine against Ray Data with 1 and 2 workers (docs/scale.md).
bench-scale: setup
	nice -n 15 $(BIN)/python benchmarks/audit_scale.py --data "$(MIRROR)"

clean:
	rm -rf $(VENV) .valueguard bench-results .pytest_cache
