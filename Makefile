# Two commands for a fresh machine (see README):  make demo   and   make test
# Both install .venv from the lock file requirements/dev.lock (exact versions, hashes), reinstall when
# the lock changes, and put back any locked package that was changed by hand in .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/dev.lock
BASE_LOCK := requirements/base.lock
STAMP := $(VENV)/.installed-stamp
PIP_COMPILE = $(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links

.PHONY: setup demo test test-fast lint lock lock-upgrade wheel clean

$(STAMP): $(LOCK) pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r $(LOCK)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)
	@$(PY) scripts/check_env.py $(LOCK) || { $(PY) -m pip install -q --disable-pip-version-check -r $(LOCK) \
		&& $(PY) scripts/check_env.py $(LOCK); }

## The main job on the shipped default model: export -> int16 / int8 / mixed quantization -> bench,
## on a freshly generated synthetic val set (seed 2). Writes bench_out/bench.{json,md,png} (--force: a
## second run replaces the first's reports; every command refuses to overwrite without it).
demo: setup
	$(VENV)/bin/edgepose bench --out bench_out --force

## The whole test suite (CI runs exactly this): the layering contracts (pyproject's [tool.importlinter]),
## then pytest.
test: setup
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -n 2

## The fast loop while editing: everything but tests/e2e/ (the `e2e` marker), about half a minute.
test-fast: setup
	$(PY) -m pytest -q -n 2 -m "not e2e"

lint: setup
	$(VENV)/bin/ruff check edgepose tests scripts
	$(VENV)/bin/ruff format --check edgepose tests scripts
	$(VENV)/bin/lint-imports --no-cache

## Regenerate the locks after a change to pyproject.toml's dependencies (keeps every pin that still fits).
lock: setup
	$(PIP_COMPILE) --all-build-deps --extra train --extra dev -o $(LOCK) pyproject.toml
	$(PIP_COMPILE) -c $(LOCK) -o $(BASE_LOCK) pyproject.toml

## Move every pin to the newest release; then re-run `make test` (the generator's pixel digests may move).
lock-upgrade: setup
	$(PIP_COMPILE) --upgrade --all-build-deps --extra train --extra dev -o $(LOCK) pyproject.toml
	$(PIP_COMPILE) -c $(LOCK) -o $(BASE_LOCK) pyproject.toml

## A wheel of the base package (runtime, CLI, model registry) in dist/.
wheel: setup
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .

clean:
	rm -rf bench_out .bench_cache .pytest_cache .ruff_cache .import_linter_cache .grimp_cache dist build
