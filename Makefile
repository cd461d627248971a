# `make run`: install and start the daemon on :8080.  `make test`: install and run every test.
# `make check`: formatting, lint and type checks.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8080

.PHONY: run test check bench install dev clean binary rootfs ts-client

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml sandbox_api/linux/_native.c | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml sandbox_api/linux/_native.c | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

# Its own state dir inside the checkout: never the one of an installed daemon.
run: install
	$(BIN)/sandbox-api -p $(PORT) --state-dir .state

# One static executable that unpacks nothing (packaging/static/); rebuilt when a source changes.
BINARY_SOURCES := $(shell find sandbox_api packaging -type f -not -name '*.pyc') pyproject.toml scripts/build-binary.sh
dist/sandbox-api: $(BINARY_SOURCES)
	scripts/build-binary.sh

binary: dist/sandbox-api

# A Debian minbase root filesystem for the binary's portability tests.
ROOTFS := build/rootfs/debian-minbase
$(ROOTFS)/.complete: scripts/make-rootfs.sh
	scripts/make-rootfs.sh $(ROOTFS)

rootfs: $(ROOTFS)/.complete

# The official TypeScript MCP client (pinned by its lock file) for tests/compat/test_mcp_parity.py;
# reinstalled only when the lock changes. Without npm or the registry, that test skips.
TS_CLIENT := build/ts-mcp
$(TS_CLIENT)/.installed: tests/compat/ts/package.json tests/compat/ts/package-lock.json
	@mkdir -p $(TS_CLIENT) && cp $^ $(TS_CLIENT)/
	@cd $(TS_CLIENT) && timeout 300 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error \
		&& touch .installed || echo "npm ci failed: the TypeScript MCP client test will skip" >&2

ts-client: $(TS_CLIENT)/.installed

TEST_TOOLS  := inotifywait:inotify-tools fzf:fzf setpriv:util-linux chromium:chromium chromedriver:chromium-driver \
               busybox:busybox-static debootstrap:debootstrap unshare:util-linux node:nodejs npm:npm ss:iproute2
BENCH_TOOLS := fzf:fzf inotifywait:inotify-tools

test: dev
	@scripts/ensure-tools.sh $(TEST_TOOLS)
	@$(MAKE) --no-print-directory binary rootfs ts-client
	$(BIN)/python -m pytest -n auto

# The quality gate: formatting, lint and types (configured in pyproject.toml).
check: dev
	$(BIN)/ruff format --check sandbox_api tests bench packaging
	$(BIN)/ruff check sandbox_api tests bench packaging
	$(BIN)/mypy

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/.dev-installed
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $@

bench: dev binary $(VENV)/.bench-installed
	@scripts/ensure-tools.sh $(BENCH_TOOLS)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
