# Set-up and entry points. `make demo` and `make test` work on a fresh clone: they create
# .venv when missing. Torch is installed first, alone, by TORCH_SPEC (a CPU build here);
# everything else follows constraints.txt, the versions CI uses.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.pulse-installed

.PHONY: demo test lint clean-cache

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pulse demo $(ARGS)

# The suite runs on TEST_WORKERS processes (pytest-xdist; one thread each, tests/conftest.py).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
