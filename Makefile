# The two commands a user needs: `make run` (first sync of the defaults) and `make test`.
# Each creates the virtualenv and starts the services it needs; both are safe to repeat.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed-stamp
N ?= 100000
# Test processes: most of the suite waits on services and subprocesses, so two run side by side
# on two cores; each takes whole test files (module fixtures such as a private Prefect server
# stay in one process). TEST_WORKERS=0 runs in this process, in file order.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
# The compatibility lane: the last 8.x, on a node of its own beside the 9.x default.
ES8_VERSION ?= 8.19.21
ES8_PORT ?= 9201
ES8 := STACK_ES_VERSION=$(ES8_VERSION) STACK_ES_PORT=$(ES8_PORT)
ES8_TESTS := $(addprefix tests/integration/,test_stack_smoke.py test_protocol.py \
	test_sync_kinds.py test_document_level_security.py test_safety.py test_security.py \
	test_kibana_shapes.py test_es_client.py test_full_sync.py test_delete_guard.py)

.PHONY: install test test-es8 lint format unit integration run stack down status env deploy worker notify bench bench-majors clean

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

test: lint stack  ## lint + unit + integration tests on the stack (Elasticsearch 9.x), then the 8.x lane
	@$(PYTEST)
	@$(MAKE) -s test-es8
	@echo "the stack is still running for the next run; \`make down\` stops it"

test-es8: $(INSTALLED)  ## the protocol, sync-kind, DLS and safety tests on Elasticsearch 8.19
	@$(ES8) $(PY) -m devstack up elasticsearch mongodb s3 prefect
	@env -u ELASTICSEARCH_URL -u ELASTICSEARCH_API_KEY $(ES8) $(PYTEST) $(ES8_TESTS)

run: $(INSTALLED)  ## first run: index this repository's docs with a directory connector
	@$(PY) -m devstack up prefect $(if $(ELASTICSEARCH_URL),,elasticsearch)
	@$(PY) -m devstack.first_run

deploy: stack  ## create the work pool, deploy prefect.yaml and start a worker
	@$(PY) -m devstack.deploy

notify: stack  ## be told when a sync fails: make notify WEBHOOK=https://... (or BLOCK=slack-webhook/NAME)
	@$(PY) -m elastic_ingest.deployments.notify $(if $(WEBHOOK),--webhook $(WEBHOOK),--block $(BLOCK))

bench: stack  ## benchmarks (not tests): make bench N=1000000 ARGS=--skip-s3
	@$(PY) -m bench --documents $(N) $(ARGS)

bench-majors: stack  ## MongoDB first sync and no-op resync on Elasticsearch 9.x and 8.19, alternating
	@$(PY) -m bench.majors --documents $(N)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
