# Quick start: `make demo` runs the gateway end to end on loopback, `make test` runs the tests.
# Both set up everything they need on a fresh Debian machine (apt packages, a virtualenv).

PYTHON ?= python3
# pytest workers: the tests wait on servers, sockets and `mailwarden` processes, so three
# fill a 2-core machine better than two (-n 3 against -n 2 back to back on 243 of the
# tests on the 2-core VM, 2026-12-08, load 6-8: 202 against 209 s, 168 against 249 s)
TEST_WORKERS ?= 3
VENV   ?= .venv
BIN    := $(VENV)/bin
APT_PACKAGES := clamav-daemon clamav-testfiles swaks chromium postfix docker-compose iproute2
# binaries that tell whether the Debian packages above are installed
APT_PROBES   := /usr/sbin/clamd /usr/share/clamav-testfiles /usr/bin/swaks /usr/bin/chromium /usr/sbin/postfix /usr/bin/docker-compose /bin/ss

.PHONY: demo test lint format bench system-deps clean

$(BIN)/mailwarden: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

system-deps:
	@missing=0; for p in $(APT_PROBES); do [ -e $$p ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian packages: $(APT_PACKAGES)"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | $$SUDO debconf-set-selections && \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

test: system-deps $(BIN)/mailwarden
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	@# bytecode once, before the tests start hundreds of `mailwarden` processes: with
	@# PYTHONDONTWRITEBYTECODE set, each would otherwise compile the project again
	$(BIN)/python -m compileall -q -j 0 gateway filters training tests
	$(BIN)/pytest -q -n $(TEST_WORKERS)

demo: system-deps $(BIN)/mailwarden
	$(BIN)/python -m tests.demo

lint: $(BIN)/mailwarden
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(BIN)/mailwarden
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(BIN)/mailwarden
	$(BIN)/python bench/relay.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
