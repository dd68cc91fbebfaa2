# The two set-up commands of the README: `make up` and `make test`.
VENV   := .venv
BIN    := $(VENV)/bin
PYTHON ?= python3.11

.PHONY: install up down test test-unit lint lock

$(BIN)/saga: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -c requirements.lock
	touch $@

## install: the virtual environment, the package, Kafka's jars, Apicurio, Debian's packages
## (PostgreSQL, Prometheus, Chromium for the browser tests) and Temporal's full server
install: $(BIN)/saga
	$(BIN)/saga fetch

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

## test: install, lint, then the whole test suite against real Kafka, Temporal, PostgreSQL and the
## registry, on two workers: one runs the unit tests and the tests that start engines of their own,
## the other every test of the session's embedded stack (tests/conftest.py, `lane`)
test: lint
	$(BIN)/pytest --numprocesses 2 --dist loadgroup

## test-unit: install, then the unit tests alone (tests/unit: no server, about a minute), the fast loop
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
