# The two commands a newcomer needs are `make demo` and `make test`; both set up what is missing
# first. Everything is installed from this repository's own files: the Python packages into
# .venv/ (pinned by constraints.txt), the control plane built from the Go module proxy into
# ~/.cache/bridgescale/ (once; later runs reuse it).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test check unit cluster clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt \
		--config-settings editable_mode=strict -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/bridgescale dev build

demo: setup
	$(BIN)/bridgescale demo

check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy -p bridgescale
	$(BIN)/mypy tests
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit

test: setup check
	$(BIN)/pytest

clean:
	-$(BIN)/bridgescale dev down
	rm -rf $(VENV) build .bridgescale
