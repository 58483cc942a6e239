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

## The main job on the shipped default model.
demo: setup
	$(VENV)/bin/edgepose data synth --out demo_out/val --num-images 64 --seed 2024 --overwrite
	$(VENV)/bin/edgepose data preview demo_out/val --out demo_out/preview.jpg
	$(VENV)/bin/edgepose val --pred demo_out/val/annotations.json --gt demo_out/val/annotations.json

## The whole test suite (CI runs exactly this).
test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup

lint: setup
	$(VENV)/bin/ruff check edgepose tests scripts

clean:
	rm -rf demo_out .pytest_cache .ruff_cache
