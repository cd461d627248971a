# `make run`: install and start the daemon on :8080.  `make test`: install and run every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8080

.PHONY: run test bench install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

run: install
	$(BIN)/sandbox-api -p $(PORT)

TEST_TOOLS  := inotifywait:inotify-tools fzf:fzf setpriv:util-linux chromium:chromium chromedriver:chromium-driver
BENCH_TOOLS := fzf:fzf inotifywait:inotify-tools

test: dev
	@scripts/ensure-tools.sh $(TEST_TOOLS)
	$(BIN)/python -m pytest -n auto

bench: dev
	@scripts/ensure-tools.sh $(BENCH_TOOLS)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
