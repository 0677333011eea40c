# The two commands a newcomer needs are `make demo` and `make test`; both set up what is missing
# first. Everything is installed from this repository's own files: the Python packages into
# .venv/ (pinned by constraints.txt), the control plane built from the Go module proxy into
# ~/.cache/bridgescale/ (once; later runs reuse it).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-packages demo test check unit cluster clean

# Debian's prometheus (2.42) scrapes the local cluster; promtool backfills its history.
system-packages:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
		echo "installing Debian's prometheus package"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install \
			-y -q --no-install-recommends prometheus; }

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt \
		--config-settings editable_mode=strict -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) system-packages
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
