# The two commands a fresh machine needs: `make demo` and `make test`.
# Both build the virtual environment from nothing (pyproject.toml pins the versions).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint firmware-check bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m tgd_rig.demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check firmware server hil_tests tools bench

firmware-check: $(STAMP)
	$(BIN)/python tools/fwcheck.py

test: $(STAMP) lint firmware-check
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/tgd-rig bench
	$(BIN)/tgd-server bench

clean:
	rm -rf $(VENV) build *.egg-info var/test-*
