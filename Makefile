# The README's two commands. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo tour test lint bench clean

$(BIN)/activate:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "persisty-blobs needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The tour of a directory store: the library alone, without the extras or the dev tools.
$(VENV)/.installed: $(BIN)/activate setup.py pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The messenger: the library with its server, SQLAlchemy and Pillow, no dev tools.
$(VENV)/.messenger-installed: $(BIN)/activate setup.py pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[messenger]'
	touch $@ $(VENV)/.installed

$(VENV)/.dev-installed: $(BIN)/activate setup.py pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $@ $(VENV)/.installed $(VENV)/.messenger-installed

# The messenger on http://127.0.0.1:8000: SQLite and a directory store under ./demo-data.
demo: $(VENV)/.messenger-installed
	MESSENGER_DATA=./demo-data $(BIN)/python -m examples.messenger.demo

tour: $(VENV)/.installed
	$(BIN)/python examples/tour.py ./demo-data/tour

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Two workers (the machine's two cores); a test module stays on one worker, with its servers.
test: lint
	$(BIN)/python -m pytest -n 2 --dist worksteal

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) demo-data .mypy_cache .pytest_cache .ruff_cache bench/results
