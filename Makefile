# Two commands matter: `make run` (the demo) and `make test` (the suite). Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Variables from .env, when present, for every command below (see .env.example).
ifneq ($(wildcard .env),)
include .env
export $(shell sed -n 's/^\([A-Z][A-Z0-9_]*\)=.*/\1/p' .env)
endif
# Rebuilt only when a requirements file changes, so a second run starts in seconds.
INSTALLED := $(VENV)/.installed

.PHONY: run cluster test test-deps coverage lint format clean bench conformance

$(INSTALLED): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(INSTALLED)
	$(BIN)/python scripts/dev.py run

# N app instances behind nginx (deploy/nginx.conf), one worker, one beat: `make cluster N=3`.
# REDIS=sentinel or REDIS=cluster: a private Sentinel-managed primary or Redis Cluster instead of
# REDIS_URL (scripts/redis_topology.py); unset, REDIS_URL, else one private server.
N ?= 2
REDIS ?=
cluster: $(INSTALLED)
	$(BIN)/python scripts/cluster.py --instances $(N) $(if $(REDIS),--redis $(REDIS))

test: $(INSTALLED)
	$(BIN)/python scripts/dev.py test $(ARGS)

# What the system and browser tests drive, from Debian; without them `make test` skips their tests
# and says so in its last line. Installs what is missing (as root, or with sudo).
TEST_DEPS := nginx chromium curl postgresql
test-deps:
	@missing=$$(for p in $(TEST_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "test-deps: all installed ($(TEST_DEPS))"; exit 0; fi; \
	sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); echo "test-deps: installing" $$missing; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

# The suite under branch coverage, the system tests' server processes included (coverage's
# subprocess patch, pyproject.toml): per-module figures, and HTML in var/coverage/html/. Fails
# under the floor, [tool.coverage.report] fail_under.
coverage: $(INSTALLED)
	rm -rf var/coverage && mkdir -p var/coverage
	$(BIN)/python scripts/dev.py test --cov --cov-report=term --cov-report=html $(ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var

# Load and latency benchmarks (bench/run.py): a few minutes; installs wrk and nginx when root.
bench: $(INSTALLED)
	$(BIN)/python bench/run.py $(ARGS)

# The public HTTP caching suite (http-cache-tests) against the gateway, nginx's proxy_cache as the
# baseline (tests/conformance/run.py): about a minute; installs Node.js, npm and nginx when root.
conformance: $(INSTALLED)
	$(BIN)/python tests/conformance/run.py $(ARGS)
