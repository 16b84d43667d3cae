# A-VRNN: `make train` trains on the built-in corpus, `make test` runs the test suite.
# Both create the virtual environment .venv on first use (about 2 minutes, 6 GB).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-slow tensorboard clean bench mutate

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,sweep]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its pinned stack

train: $(STAMP) ## Train A-VRNN (wgan critic) on the built-in synthetic corpus; ARGS='...' adds overrides
	$(PYTHON) src/train.py $(ARGS)

TEST_WORKERS ?= 2
test: $(STAMP) ## Run the test suite (slow tests excluded), in TEST_WORKERS processes (pytest-xdist; 0: one)
	$(PYTHON) -m pytest -q -rs $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS))

test-slow: $(STAMP) ## Run only the slow tests (multi-process, hardware emulation, statistical checks)
	$(PYTHON) -m pytest -q -m slow || [ $$? -eq 5 ]

tensorboard: $(STAMP) ## Show the training curves of every run under logs/
	$(VENV)/bin/tensorboard --logdir logs

clean: ## Remove the virtual environment and caches (keeps data/ and logs/)
	rm -rf $(VENV) .pytest_cache src/*.egg-info

bench: $(STAMP) ## Time the training steps (frames/s, GFLOP/s, peak memory); writes bench.json
	$(PYTHON) src/bench.py $(ARGS)

mutate: $(STAMP) ## Mutation testing of the core maths (mutmut; about an hour on 2 cores); writes mutate.json
	$(PYTHON) tools/mutate.py $(ARGS)
