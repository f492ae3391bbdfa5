# The study's two commands: `make book` (set-up included) and `make test`.
# PROFILE=smoke|sample|full selects the run profile (sample needs PRODLIB_CATALOG, see README).

PYTHON ?= python3
VENV   ?= .venv
PROFILE ?= smoke
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.prodlib-installed

.PHONY: setup book test lint check-book strip lock clean help

help:
	@echo "make book [PROFILE=smoke|sample|full]  run the notebooks and build the book into _build/html"
	@echo "make test                              run the test suite"
	@echo "make check-book                        load every built page in headless Chromium"
	@echo "make lint | strip | lock | clean"

# (Re)create the virtual environment from the pinned set whenever the lock file or pyproject changes.
$(STAMP): requirements/lock.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "prodlib needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/lock.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

book: setup
	$(BIN)/python -m prodlib run --profile $(PROFILE)

test: setup
	$(BIN)/python -m pytest

check-book: setup
	$(BIN)/python tools/check_book.py _build/html --screenshots _build/screenshots

lint: setup
	$(BIN)/ruff check .

strip: setup
	$(BIN)/nbstripout --extra-keys "metadata.papermill cell.metadata.papermill cell.metadata.execution" notebooks/*.ipynb

lock: setup
	( echo "# Exact set used by make and CI (Python 3.11, Linux x86-64). Regenerate: make lock"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^prodlib' ) > requirements/lock.txt

clean:
	rm -rf _build runs
