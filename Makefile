# The two set-up commands of the README: `make up` and `make test`.
VENV   := .venv
BIN    := $(VENV)/bin
PYTHON ?= python3.11

.PHONY: install chromium up down test test-unit lint lock

$(BIN)/saga: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -c requirements.lock
	touch $@

## install: the virtual environment, the package, Temporal's binaries and Kafka's jars
install: $(BIN)/saga chromium
	$(BIN)/saga fetch

## chromium: Debian's chromium and chromium-driver for the web pages' browser tests, where
## missing (as root with apt-get; otherwise a note says what to install)
chromium:
	@if [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium and chromium-driver (for tests/system/ui)"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	  else \
	    echo "note: /usr/bin/chromedriver is missing: the browser tests (tests/system/ui) need" \
	      "Debian's chromium and chromium-driver: sudo apt-get install chromium chromium-driver"; \
	  fi; \
	fi

## up: install, bring the whole stack up in the background, run one demo order through it
up: install
	$(BIN)/saga up
	$(BIN)/saga demo

## down: stop what `make up` started
down:
	$(BIN)/saga down

## lint: formatting, lint rules, strict typing and the layout's import rules
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

## test: install, lint, then the whole test suite: tests/unit, then tests/system against real Kafka and Temporal
test: lint
	$(BIN)/pytest

## test-unit: install, then the unit tests alone (tests/unit: no server, under a minute), the fast loop
test-unit: install
	$(BIN)/pytest tests/unit -m "not postgres"

## lock: re-pin every dependency to the newest versions pyproject.toml allows
lock:
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install --quiet --upgrade pip
	$(VENV)-lock/bin/pip install --quiet -e '.[dev]'
	head -2 requirements.lock > requirements.lock.new
	$(VENV)-lock/bin/pip freeze --exclude-editable | grep -v '^saga-orchestrator' >> requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf $(VENV)-lock
