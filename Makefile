# Two commands set up a fresh machine: `make demo` and `make test`.
# `make test-fast` runs the fast tier (under a minute), `make lint` the linters and the type check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False

.PHONY: install demo test test-fast lint check-sdist bench browser clean mutate

install: $(STAMP)

# torch goes first and pinned, so that nothing later resolves a CUDA build of it;
# facenet-pytorch goes in without its dependencies (it pins torch<2.3): only its MTCNN weights are used.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install "torch==$(TORCH_VERSION)"
	$(BIN)/pip install --no-deps "facenet-pytorch==2.6.0"
	$(BIN)/pip install -e ".[train,demo,hf,scale,dev]"
	@if $(BIN)/pip list 2>/dev/null | grep -qiE '^(nvidia-|torchvision |torchaudio )'; then \
		echo "error: CUDA, torchvision or torchaudio packages were pulled in" >&2; exit 1; fi
	touch $(STAMP)

# Headless Chromium for the browser test of the demo page (Debian's package).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else echo "note: chromium is not installed; the browser test will be skipped"; fi; }

# `make demo PORT=8080` picks the port; without PORT, GRADIO_SERVER_PORT or 7860 is used.
demo: install
	$(BIN)/python demos/app.py $(if $(PORT),--port $(PORT))

# The whole suite; CI (.ci/run) runs `make lint test`.
test: install browser
	$(BIN)/python -m pytest

# Everything but the tests marked slow (training, subprocess and server runs) or browser.
test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser"

LINTED := src tests scripts demos

lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

# Build the sdist, unpack it and run its fast tests: proves it ships what they need.
check-sdist: install
	$(BIN)/python scripts/check_sdist.py

# Mutation testing of the core modules (docs/testing.md); not part of `make test`.
# MODULES=fusion metrics ... limits it to some modules.
mutate: install
	$(BIN)/python scripts/mutate.py $(MODULES)

bench: install
	$(BIN)/python scripts/bench_inference.py
	$(BIN)/python scripts/bench_batch.py
	$(BIN)/python scripts/bench_streaming.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
