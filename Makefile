# Two commands for a fresh machine (see README):  make demo   and   make test
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $(STAMP)

setup: $(STAMP)

## The main job on the shipped default model: export -> int16 / int8 / mixed quantization -> bench,
## on a freshly generated synthetic val set (seed 2). Writes bench_out/bench.{json,md,png}.
demo: setup
	$(VENV)/bin/edgepose bench --out bench_out

## The whole test suite (CI runs exactly this).
test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup

lint: setup
	$(VENV)/bin/ruff check edgepose tests scripts

clean:
	rm -rf bench_out .bench_cache .pytest_cache .ruff_cache
