# The two commands a user needs: `make run` (first sync of the defaults) and `make test`.
# Each creates the virtualenv and starts the services it needs; both are safe to repeat.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed-stamp
N ?= 100000

.PHONY: install test lint format unit integration run stack down status env deploy worker notify bench clean

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $(INSTALLED)

install: $(INSTALLED)  ## install the package and the `elastic-ingest` CLI (also bin/elastic-ingest)

stack: $(INSTALLED)  ## start Elasticsearch, FerretDB, the S3 server and Prefect (reuses running ones)
	@$(PY) -m devstack up

status: $(INSTALLED)
	@$(PY) -m devstack status

env: $(INSTALLED)  ## print the stack's variables (its service API key too): eval "$$(make -s env)"
	@$(PY) -m devstack env

down: $(INSTALLED)  ## stop every process the stack started, nothing else
	@$(PY) -m devstack down

lint: $(INSTALLED)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: $(INSTALLED)
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

unit: $(INSTALLED)
	@$(PY) -m pytest tests/unit -q

test: lint stack  ## lint + unit + integration tests against the real stack
	@$(PY) -m pytest -q
	@echo "the stack is still running for the next run; \`make down\` stops it"

run: $(INSTALLED)  ## first run: index this repository's docs with a directory connector
	@$(PY) -m devstack up prefect $(if $(ELASTICSEARCH_URL),,elasticsearch)
	@$(PY) -m devstack.first_run

deploy: stack  ## create the work pool, deploy prefect.yaml and start a worker
	@$(PY) -m devstack.deploy

notify: stack  ## be told when a sync fails: make notify WEBHOOK=https://... (or BLOCK=slack-webhook/NAME)
	@$(PY) -m elastic_ingest.deployments.notify $(if $(WEBHOOK),--webhook $(WEBHOOK),--block $(BLOCK))

bench: stack  ## benchmarks (not tests): make bench N=1000000 ARGS=--skip-s3
	@$(PY) -m bench --documents $(N) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
