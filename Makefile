# initwise developer entry points. Every target creates .venv and installs the
# pinned dev requirements first, so a fresh clone needs nothing else.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: demo test lint bench gpu-check clean

$(STAMP): requirements-dev.txt requirements-nodeps.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m initwise.cli demo

test: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q --cov=initwise --cov-report=term:skip-covered --cov-fail-under=90

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

bench: $(STAMP)
	$(PY) -m initwise.cli bench

# On a machine with a CUDA GPU (uses its python3 and torch, not .venv): the device tests and GPU benchmarks.
gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf .venv .pytest_cache .ruff_cache .hypothesis .coverage
