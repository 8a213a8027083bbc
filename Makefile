# Thin wrappers: each target creates the virtualenv on first use, so a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_SPEC ?= apache-airflow>=3.0
EXTRAS ?= test,s3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell echo '$(AIRFLOW_SPEC)' | tr -c 'A-Za-z0-9.' '_')

.PHONY: install test demo bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(AIRFLOW_SPEC)" -e ".[$(EXTRAS)]"
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m airflow_provider_patsnap.testing.demo

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf .venv .venv-* demo-output
