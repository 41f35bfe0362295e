# Fresh-machine entry points: `make demo` and `make test` (see README.md).
# They create .venv when it is missing and install what they need into it.

PYTHON ?= python3
# The CPU build of torch, installed before anything that depends on torch so that no CUDA build
# is pulled in. Override on machines with a GPU, e.g. make test TORCH_SPEC=torch.
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bayesal-installed
DEV_STAMP := $(VENV)/.bayesal-dev-installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast venv peers clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "bayesal needs Python >= 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The dev environment includes the deep active-learning peers that the agreement tests compare
# against (baal, batchbald-redux, bmdal-reg): --no-deps, because they would pull another torch and
# torchvision; their light pure-Python dependencies are listed one by one instead.
PEERS_NO_DEPS := baal batchbald-redux bmdal-reg structlog toma torchmetrics lightning-utilities dill

$(DEV_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps $(PEERS_NO_DEPS)
	touch $@

venv: $(STAMP)

## demo: set up .venv and run the default campaign (GP active learning on Branin, against Random), < 1 minute
demo: $(STAMP)
	$(BIN)/bayesal run --baseline random --out runs/demo

## test: set up .venv with the dev extra and run the whole test suite
test: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-fast: everything but the statistical end-to-end tests marked slow
test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## peers: everything the side-by-side benchmarks use: the dev environment (with baal,
## batchbald-redux and bmdal-reg) plus the `peers` extra (pyro-ppl, emukit)
peers: $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[peers]"

clean:
	rm -rf $(VENV) runs .pytest_cache
