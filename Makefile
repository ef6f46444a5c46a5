# The two commands a new user needs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install services tools migrate run test test-unit check lint typecheck pytest bench demo schema teardown clean

# The environment is rebuilt when pyproject.toml changes. pip says what it fetches and installs (a
# quiet install looked hung for the minute or two a first one takes).
$(VENV)/.installed: pyproject.toml
	@echo "make: installing resultbus and its dependencies into $(VENV) (the first time takes a minute or two)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -e '.[dev]'
	@echo "make: $(VENV) is ready"
	touch $@

install: $(VENV)/.installed

services:
	bash deploy/ensure-services.sh

# The validators `make test` checks the deployment artefacts with (promtool, docker-compose, the
# AsyncAPI CLI): installed where they can be, quick once there; one that cannot be is said here,
# and its tests are skipped with the reason in pytest's summary.
tools:
	bash deploy/install-tools.sh

migrate: install services
	$(PY) -m workers migrate

## make run: the whole pipeline (migrations, ingress, router) on the local RabbitMQ and PostgreSQL.
run: migrate
	bash deploy/run-local.sh

## make test: lint, types and the whole suite against the real services (installs its validators first).
test: install services tools check pytest

check: lint typecheck

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install services
	$(PY) -m pytest

## make test-unit: the pure tests only (tests/unit/: no broker, database or process), in seconds.
test-unit: install
	$(PY) -m pytest tests/unit -q

# The bench's own extra (FastAPI + Celery peer, py-spy), rebuilt when pyproject.toml changes.
$(VENV)/.installed-bench: $(VENV)/.installed
	@echo "make: installing the bench's extra (FastAPI, Uvicorn, Celery, psycopg, py-spy) into $(VENV)"
	$(PY) -m pip install --progress-bar on -e '.[dev,bench]'
	touch $@

## make bench: every figure of docs/performance.md against its same-run baseline, one table, and the
## figures as JSON in bench/results/ (`python -m bench compare A.json B.json`). Not part of make test.
bench: $(VENV)/.installed-bench services
	$(PY) -m bench

## make demo: vendor -> event -> signed delivery on a running pipeline (start it with make run): a receiver,
## subscribed through the admin API, prints what it gets.
demo: install
	$(PY) deploy/demo.py

## make schema: regenerate docs/event.schema.json, docs/itep-order.schema.json and docs/asyncapi.yaml.
schema: install
	$(PY) -m schemas > docs/event.schema.json
	$(PY) -m schemas itep-order > docs/itep-order.schema.json
	$(PY) -m schemas asyncapi > docs/asyncapi.yaml

## make teardown: remove what `make run` made (its database, its prefix's queues and exchanges) and
## only that, after saying what and asking (`make teardown YES=1` does not ask). The same settings as
## `make run` name them: RESULTBUS_DATABASE_URL, RESULTBUS_AMQP_PREFIX, …
teardown: install
	$(PY) -m workers teardown$(if $(YES), --yes)

## make clean: the venv and the tools' caches (the database and the broker's queues: make teardown).
clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
