# Two commands on a fresh machine: `make run` (the service on :8080) and `make test` (the suite).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
LISTEN_ADDRESS ?= 127.0.0.1
TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export TEST_DATABASE_URL

.PHONY: run test migrate lint check-containers bench first-read upload-cost amplification screenshot venv clean \
	compose-up compose-down compose-purge compose-test

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $@

run: venv  ## migrate, then serve the gateway and the three functions on $(LISTEN_ADDRESS):$(PORT)
	$(BIN)/python -m devstack --port $(PORT) --host $(LISTEN_ADDRESS)

migrate: venv  ## apply the migrations to DATABASE_URL (default: the embedded SQLite file)
	$(BIN)/python -m common.storage.db

test: venv  ## the whole suite against TEST_DATABASE_URL, in a throwaway database; then the functions' and gateway tests again through PgBouncer in transaction mode
	$(BIN)/python -m pytest
	TEST_DATABASE_POOLER=pgbouncer $(BIN)/python -m pytest tests/functions tests/end_to_end/test_gateway.py tests/end_to_end/test_streaming_uploads.py

bench: venv  ## upload/download figures beside bare ffmpeg, one table (needs nginx, ffmpeg, wrk)
	$(BIN)/python -m bench

first-read: venv  ## first (uncached) whole downloads of 600 s records, get_record and gateway beside static nginx, with CPU per MiB
	$(BIN)/python -m bench.first_read

upload-cost: venv  ## add_record's CPU per uploaded MiB and upload/bare-ffmpeg ratios; BEFORE=<gitrev> measures that revision too, in turn
	$(BIN)/python -m bench.upload_cost $(if $(BEFORE),--before $(BEFORE))

amplification: venv  ## worst stored MP3 bytes and conversion seconds per uploaded byte, by codec
	$(BIN)/python -m bench.amplification

screenshot: venv  ## renew docs/screenshot.png: the web page with two records, in headless chromium
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/browser/test_web_page.py -k screenshot

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict common functions deploy devstack bench

compose-up: venv  ## the compose stack of .env (made from .env.example if missing) on GATEWAY_PORT
	$(BIN)/python -m devstack.compose up

compose-down: venv  ## remove the stack's containers, keep its data volume; stop a dockerd compose-up started
	$(BIN)/python -m devstack.compose down

compose-purge: venv  ## remove the stack's containers AND its data volume (every user and record)
	$(BIN)/python -m devstack.compose purge

compose-test: venv  ## the end-to-end tests and the compose-only checks on a throwaway compose stack
	$(BIN)/python -m devstack.compose test

check-containers: venv  ## docker-compose.yml against the compose schema, the Dockerfile with hadolint
	PATH="$(CURDIR)/$(BIN):$$PATH" docker/check

clean:
	rm -rf $(VENV) .run var .mypy_cache .ruff_cache .pytest_cache
