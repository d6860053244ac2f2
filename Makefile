# tme.migrations — `make demo` and `make test` work on a fresh machine: each bootstraps .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-release demo-release-stop test unit lint sanity bench faults server stop clean wheelhouse build

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet --group dev
	@touch $@

## The main job on the embedded default: start the bundled PostgreSQL, apply the example
## migrations to staging (tme_portal_test), then production (tme_portal), print the status.
demo: $(STAMP) server
	$(VENV)/bin/ansible-playbook -i inventory/local playbooks/apply-safe.yml

## Release day on the guide's topology (root, docker.io and busybox-static): PostgreSQL and the
## stand-in portal in containers of a Docker engine of our own; apply-safe, then deploy-breaking
## (smoke test on 3001, backup, production apply, swap, health). Says what it needs when it cannot run.
demo-release: $(STAMP)
	$(PY) tools/demo_release.py start

demo-release-stop: $(STAMP)
	$(PY) tools/demo_release.py stop

server: $(STAMP)
	$(VENV)/bin/ansible-playbook playbooks/local-postgres.yml

stop: $(STAMP)
	$(PY) tools/localpg.py stop

## The collection tarball (tme-migrations-<galaxy.yml's version>.tar.gz) in .local/dist, built from
## the files git tracks (tools/build_collection.py); install it with
## `ansible-galaxy collection install .local/dist/tme-migrations-*.tar.gz`.
build: $(STAMP)
	$(PY) tools/build_collection.py --output-path .local/dist

## Every test: ruff, mypy, ansible-lint, then pytest (unit; integration on real PostgreSQL servers
## through ansible-runner). `make sanity` runs ansible-test sanity.
test: $(STAMP) wheelhouse
	$(MAKE) lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest

## What playbooks/prepare.yml installs on a server without internet (psycopg, requests): the
## container workflow tests install the modules' virtualenv from it, talking to no index themselves.
WHEELHOUSE := .local/wheelhouse
wheelhouse: $(WHEELHOUSE)/.done
$(WHEELHOUSE)/.done: $(STAMP)
	$(PY) -m pip download --quiet --disable-pip-version-check --dest $(WHEELHOUSE) --only-binary=:all: \
		"psycopg[binary]>=3.1,<4" "requests>=2.28"
	@touch $@

unit: $(STAMP)
	$(PY) -m pytest tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	cd .collections && MYPYPATH=. ../$(VENV)/bin/mypy --config-file ../pyproject.toml --explicit-package-bases $$(find ansible_collections/tme/migrations/plugins -name "*.py")
	$(VENV)/bin/mypy tools
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/ansible-lint --profile production
	$(VENV)/bin/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	$(VENV)/bin/antsibull-changelog lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ANSIBLE_CONFIG="$(CURDIR)/ansible.cfg" $(VENV)/bin/antsibull-docs lint-collection-docs --plugin-docs .

sanity: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash tests/sanity.sh

bench: $(STAMP) server
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/ratios.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/apply_1000.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/classify_1000.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/backup_restore.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/lock_safety.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/fleet.py

## The full fault matrix (bench/faults.py): 20 seeded trials per case of kill -9, PostgreSQL stopped
## mid-run and 8 runners at once; exits non-zero when any trial lost anything. TME_FAULT_SEED,
## TME_FAULT_TRIALS change the seed and the count.
faults: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/faults.py

clean:
	-$(PY) tools/localpg.py stop
	rm -rf .local tests/output
