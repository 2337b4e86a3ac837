# The project's commands. `make local` runs the service on this machine; `make test` runs every test.
# Both install what is missing first (venv, Python packages, npm packages, Java 17, espeak-ng, sox and lame, Apertium,
# Chromium).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ENV ?= dev
ENVIRONMENTS := dev staging prod
PORT ?= 8080

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install test test-unit test-infra test-integration synth synth-all lock lint lint-python lint-asyncapi lint-openapi docs format local token smoke smoke-url bench clean

help:
	@echo "make local           run the service locally (DynamoDB Local + local WebSocket gateway + web console)"
	@echo "make test            install what is missing, then run every test"
	@echo "make synth ENV=prod  write the CloudFormation template to cdk.out/"
	@echo "make lock            lock the layer (for the functions' runtime and architecture) and the local venv, with hashes"
	@echo "make lint            ruff check, ruff format --check, mypy, lint-imports, the AsyncAPI and OpenAPI documents, the docs site, then cfn-lint every environment's template"
	@echo "make docs            build the documentation site (docs/, mkdocs.yml) into site/, strict: a broken link fails"
	@echo "make format          apply ruff's fixes and formatter"
	@echo "make bench           measure every operation beside its floor (ONLY=load,latency for some sections)"
	@echo "make smoke URL=...   one session end to end against a deployment or make local (TOKEN=... or \$$SESSION_TOKEN)"

# Only from the lock: every package at its pinned version, each file checked against its hash, wheels only (no build
# step fetching tools of its own), so a new upstream release never changes what a fresh clone installs. The venv's
# own pip does the install (its version chooses no package: the lock does). A changed lock gets a new venv, so
# nothing of an earlier install stays beside it.
$(VENV)/.installed: requirements-dev.lock
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --only-binary=:all: -r requirements-dev.lock
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.java:
	@java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])' && java --list-modules | grep -q '^jdk.compiler@' || { \
	  echo "Installing Java 17 (DynamoDB Local runs on it; its loopback launcher needs the jdk.compiler module)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; }
	@touch $@

# espeak-ng speaks the test audio, and the local run's translations to listeners (standing in for Amazon Polly); sox
# converts the test audio to the speaker app's PCM format; LAME encodes the local run's speech as MP3, as Polly's is.
# (Redone when this file changes, so a new tool here reaches machines that installed the others already.)
.speech: Makefile
	@command -v espeak-ng >/dev/null && command -v sox >/dev/null && command -v lame >/dev/null || { \
	  echo "Installing espeak-ng, sox and lame (the audio tests and the local run's listeners speak with them)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox lame; }
	@touch $@

# Apertium translates the local run's captions (docs/decisions/0038-local-translation-apertium.md): the engine, its
# HTTP server (apertium-apy) and the language pairs below. Like the other apt packages here, their versions are the
# ones Debian's release fixes (no pin of our own); a pair missing from this list falls back to the marked stand-in.
APERTIUM_PAIRS := apertium-eng-spa apertium-eng-cat apertium-en-gl apertium-fr-es apertium-es-pt
.apertium:
	@command -v apertium-apy >/dev/null && dpkg -s $(APERTIUM_PAIRS) >/dev/null 2>&1 || { \
	  echo "Installing Apertium, its translation server and language pairs (the local run's translator)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apertium apertium-apy $(APERTIUM_PAIRS); }
	@touch $@

# Chromium runs the web console's browser test (Playwright drives the system's browser: its own download needs
# a host outside the package registries).
.chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Chromium (the web console's browser test runs in it)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@touch $@

install: $(VENV)/.installed node_modules/.installed .java .speech .apertium .chromium

# The unit and infrastructure tests on two processes (each test stands alone); then the integration and browser
# tests in one, where they share the local run they start (a run per process would cost more than it saves).
test: install
	$(PY) -m pytest -n 2 -m "not integration and not browser"
	$(PY) -m pytest -m "integration or browser"

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

test-infra: $(VENV)/.installed
	$(PY) -m pytest tests/infrastructure

synth: $(VENV)/.installed node_modules/.installed
	npx cdk synth --no-notices --quiet -c env=$(ENV) -o cdk.out
	@ls cdk.out/*.template.json

# The layer is built from lambda_deps/requirements.lock: every package pinned with its files' hashes, resolved for the
# Lambda runtime and architecture of cdk_app/constants.py (not this machine's); the local venv installs
# requirements-dev.lock, resolved with the layer's lock as a constraint. Run it after editing any requirements file.
lock: $(VENV)/.installed
	$(PY) -m cdk_app.bundling

synth-all:
	@for env in $(ENVIRONMENTS); do $(MAKE) --no-print-directory synth ENV=$$env || exit 1; done

# The Python checks, the protocol documents and the documentation site come first: they take seconds, the synth of
# every environment a minute.
lint: lint-python
	@$(MAKE) --no-print-directory lint-asyncapi
	@$(MAKE) --no-print-directory lint-openapi
	@$(MAKE) --no-print-directory docs
	@$(MAKE) --no-print-directory synth-all
	# Errors fail the build; warnings are printed for review (cfn-lint exits 4 on warnings alone).
	$(VENV)/bin/cfn-lint --non-zero-exit-code error cdk.out/*.template.json

# ruff, mypy and lint-imports (the layers' import contracts) read pyproject.toml; .pre-commit-config.yaml runs the
# same commands.
lint-python: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# docs/asyncapi.yaml by the AsyncAPI CLI (pinned in package.json): errors and warnings fail. CI=true keeps the CLI from
# reporting usage analytics.
lint-asyncapi: node_modules/.installed
	CI=true npx --no-install asyncapi validate --fail-severity warn docs/asyncapi.yaml

# docs/openapi.yaml (the HTTP session API) against the OpenAPI 3.1 specification; tests/unit/test_openapi.py holds it
# to the code.
lint-openapi: $(VENV)/.installed
	$(VENV)/bin/openapi-spec-validator docs/openapi.yaml

# The documentation site from docs/ (mkdocs.yml: its nav and link checks) into site/ (git-ignored). --strict turns every
# warning, a broken link or anchor or a page missing from the nav, into a failure. NO_MKDOCS_2_WARNING silences the
# theme's notice about its successor, which is printed on every build and is not about these pages.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Fixes first (they can leave lines for the formatter); what cannot be fixed is left for `make lint` to report.
format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix --exit-zero .
	$(VENV)/bin/ruff format .

# make local [GATEWAY_TIME_SCALE=60] [GATEWAY_POST_RATE=100] [SCHEDULE_INTERVAL=2] [MAX_LISTENERS_PER_SESSION=50 ...]:
# GATEWAY_TIME_SCALE runs the connections' clocks that many times faster (the gateway's 10-minute idle timeout and
# 2-hour lifetime, the functions' refresh notice and warnings); GATEWAY_POST_RATE answers @connections requests
# beyond that many a second 429 (docs/local-run.md).
GATEWAY_TIME_SCALE ?= 1
GATEWAY_POST_RATE ?=
local: install
	$(PY) -m local_run --port $(PORT) --time-scale $(GATEWAY_TIME_SCALE) $(if $(GATEWAY_POST_RATE),--post-rate $(GATEWAY_POST_RATE))

# make bench [ONLY=requests,latency,cold_start,load,synth,footprint,contention,transcription,live_path]: one table,
# and bench/results.json (python -m bench --help names the sections).
bench: install
	$(PY) -m bench $(if $(ONLY),--only $(ONLY))

# make token [USER_ID=alice] [EXPIRES_IN=3600]: a speaker token for the running `make local`.
token: $(VENV)/.installed
	$(PY) -m local_run.token $(if $(USER_ID),--user-id $(USER_ID)) $(if $(EXPIRES_IN),--expires-in $(EXPIRES_IN))

# make smoke URL=wss://... [TOKEN=...]: create, join, audio, transcript, caption and end against a deployment (or
# URL=ws://127.0.0.1:8080/dev against `make local`, which mints the token). The URL is checked before anything installs.
smoke: smoke-url $(VENV)/.installed .speech
	$(PY) -m session_client.smoke '$(URL)' $(if $(TOKEN),--token '$(TOKEN)')

smoke-url:
	@test -n '$(URL)' || { \
	  echo "make smoke needs the service's WebSocket URL, stage included (a deployment's is its stack output WebSocketUrl):"; \
	  echo "  make smoke URL=wss://ID.execute-api.REGION.amazonaws.com/prod TOKEN=...  (a speaker token, or \$$SESSION_TOKEN: docs/operations.md, Deploying)"; \
	  echo "  make smoke URL=ws://127.0.0.1:$(PORT)/dev                                  (while make local runs: the token is minted)"; \
	  exit 2; }

clean:
	rm -rf cdk.out site .pytest_cache .hypothesis .mypy_cache .ruff_cache .java .speech .apertium .chromium
