# hive-supervisor: every target sets up what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat setup.cfg | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: run test bench lint venv clean help agents peers cuda-check ui chaos soak

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' Makefile | sed 's/:.*## /\t/'

venv: $(STAMP)  ## create .venv and install the project with its test extras

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (3.11+) on PATH"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing hive-supervisor and its dependencies into $(VENV) (first run only)"
	$(BIN)/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(BIN)/python -m pip install -q -e '.[cuda,speech,docker,cluster,test,lint]'
	@rm -f $(VENV)/.installed-* && touch $@

agents:  ## install claude-flow, the real MCP server and hive-mind CLI, into .agents/ (minutes once)
	bash scripts/install-agents.sh

peers: agents  ## everything the tests talk to: claude-flow, podman, espeak-ng, sox, chromium and graphviz (Debian, needs root)
	bash scripts/install-podman.sh
	bash scripts/install-speech.sh
	bash scripts/install-browser.sh
	@bash scripts/install-graphviz.sh || echo "make peers: graphviz could not be installed; the layout tests that compare with sfdp are skipped"

ui:  ## build the web console (three and esbuild from npm) into transport/console_static
	bash scripts/build-console.sh

run: $(STAMP)  ## start the daemon on embedded defaults (the console at http://127.0.0.1:8080/)
	@bash scripts/build-console.sh || echo "make run: the web console could not be built; the daemon starts anyway and / says how to build it"
	@bash scripts/install-agents.sh || echo "make run: claude-flow could not be installed; the daemon starts anyway and reports the MCP and hive-mind actors as degraded (see README)"
	@bash scripts/install-speech.sh || echo "make run: espeak-ng/sox could not be installed; the daemon starts anyway and reports speech as degraded (see README)"
	$(BIN)/hive-supervisor $(ARGS)

test: $(STAMP) peers ui  ## install what the tests need, then run them (CUDA kernels run in Numba's simulator)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

chaos: $(STAMP) peers  ## the chaos suite's long runs: 60 s of random kills under load, and more fuzzing
	CHAOS_SECONDS=60 FUZZ_EXAMPLES=300 $(BIN)/python -m pytest -q -s tests/chaos tests/fuzz \
		--deselect tests/chaos/test_soak.py $(PYTEST_ARGS)

soak: $(STAMP) peers  ## 10 minutes of load on a real daemon: RSS, threads and fds at the end against minute one
	SOAK_SECONDS=$${SOAK_SECONDS:-600} $(BIN)/python -m pytest -q -s tests/chaos/test_soak.py

bench: $(STAMP)  ## run every benchmark under bench/, printing ratios against in-run baselines
	$(BIN)/python -m pip install -q -e '.[bench]'
	@bash scripts/install-graphviz.sh || echo "make bench: graphviz could not be installed; the quality-per-family lines are skipped"
	$(BIN)/python -m bench $(BENCH_ARGS)

cuda-check: $(STAMP)  ## compile every CUDA kernel for sm_90 without a GPU (NVVM + ptxas; downloads NVRTC)
	$(BIN)/python scripts/cuda_compile_check.py

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy supervisor.py _supervision actors gpu transport hive

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info transport/console_static console/node_modules
