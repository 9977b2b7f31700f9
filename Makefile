# dicom-ops: `make run` starts the embedded stack, `make test` runs the whole suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := dcmtk dicom3tools postgresql orthanc orthanc-dicomweb chromium chromium-driver \
	redis-server docker-compose
PYTEST_ARGS ?=

.PHONY: help run cluster test venv system-deps lock lint bench clean

help:
	@echo "make run    - create the venv, install, start the whole stack on 127.0.0.1"
	@echo "make cluster - the same on CeleryExecutor: PostgreSQL, Redis, 2 Celery workers"
	@echo "make test   - install what the tests need (system packages too), lint, run the suite"
	@echo "make lint   - ruff, and the import contracts in .importlinter (lint-imports)"
	@echo "make lock   - regenerate requirements.lock from requirements.txt"
	@echo "make bench  - run the benchmarks in bench/"

# The pip that `venv` bundles (23.x) mishandles extras under --require-hashes: pin ours.
PIP_VERSION := 26.3

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)

# Reinstall only when the lock or the package metadata changes.
$(STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/dicom-ops stack

# The production deployment (CeleryExecutor, Redis, PostgreSQL) natively, on loopback.
cluster: venv
	@command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || { echo "make cluster needs redis-server and postgresql (apt-get install redis-server postgresql)"; exit 1; }
	$(BIN)/dicom-ops cluster

# System tools the tests use as real peers: dcmtk (storescu/storescp), dicom3tools
# (dciodvfy, the IOD checker), PostgreSQL, Orthanc and its DICOMweb plugin (the PACS
# query/retrieve and STOW-RS tests); chromium and chromium-driver for the jobs page's
# browser test; Redis (the cluster's Celery broker); docker-compose (`docker-compose
# config` validates docker-compose.yaml; no daemon needed). pynetdicom puts Python tools
# named storescu/storescp in the venv's bin, so dcmtk is looked for by its own --version banner.
system-deps:
	@missing=""; \
	/usr/bin/storescu --version 2>/dev/null | grep -q '^\$$dcmtk:' || missing="$$missing dcmtk"; \
	command -v dciodvfy >/dev/null || missing="$$missing dicom3tools"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v Orthanc >/dev/null || missing="$$missing orthanc"; \
	ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so >/dev/null 2>&1 || missing="$$missing orthanc-dicomweb"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/bin/chromedriver || missing="$$missing chromium-driver"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  for service in orthanc postgresql redis-server; do $$SUDO service $$service stop >/dev/null 2>&1 || true; done; \
	fi

# Lint first, so CI (which runs `make test`) also checks style and the layering.
# pytest exits 5 when it collected nothing: that fails the target, loudly.
test: system-deps venv lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The contracts name the package `dicom_ops`, which lives in plugins/: put it on the
# path so a fresh clone is checked, not whatever copy the venv might have installed.
lint: venv
	$(BIN)/ruff check plugins dags tests bench
	PYTHONPATH=plugins $(BIN)/lint-imports --no-cache --no-logo .importlinter

lock:
	$(PYTHON) -m pip install --quiet uv==0.13.9
	$(PYTHON) -m uv pip compile --python-version 3.11 --generate-hashes --quiet requirements.txt -o requirements.lock

bench: venv
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache
