# Thin wrappers: each target creates the virtualenv on first use, so a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_SPEC ?= apache-airflow>=3.0
EXTRAS ?= test,s3,lineage,redis,postgres,parquet
# Optional pip constraints file, e.g. constraints/airflow2.txt for the Airflow 2.11 line.
CONSTRAINTS ?=
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell echo '$(AIRFLOW_SPEC)' | tr -c 'A-Za-z0-9.' '_')

.PHONY: install test demo bench fleet-demo lint dist test-wheel clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(PIP_CONSTRAINTS) "$(AIRFLOW_SPEC)" -e ".[$(EXTRAS)]"
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m airflow_provider_patsnap.testing.demo

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

# A real multi-worker run of the refresh example: CeleryExecutor with a Redis broker, two Celery workers,
# a separate triggerer, one shared PatSnap rate budget (benchmarks/fleet_demo.py). Needs redis-server
# (installed with apt-get when missing and running as root). About a minute.
fleet-demo: $(STAMP)
	@command -v redis-server >/dev/null || { test "$$(id -u)" = 0 && apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } \
		|| { echo "fleet-demo needs redis-server (e.g. apt-get install redis-server)" >&2; exit 2; }
	$(PY) -m pip install --quiet -e ".[fleet]"
	$(PY) benchmarks/fleet_demo.py $(FLEET_ARGS)

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff==0.17.6 mypy==2.4.1 types-requests
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# sdist + wheel, checked the way PyPI will check them.
dist: $(STAMP)
	$(PY) -m pip install --quiet build twine
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# Install the built wheel (not editable) into a clean venv and run the packaging-sensitive tests
# from a copy of tests/ outside the source tree, so a file missing from the wheel fails here.
WHEEL_VENV := .venv-wheel
test-wheel: dist
	rm -rf $(WHEEL_VENV) .wheel-test
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(WHEEL_VENV)/bin/python -m pip install --quiet "$(AIRFLOW_SPEC)" "$$(ls dist/*.whl)[test]"
	mkdir -p .wheel-test && cp -r tests example_dags .wheel-test/
	cd .wheel-test && PATSNAP_EXPECT_INSTALLED=1 ../$(WHEEL_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		tests/unit/test_provider_info.py tests/unit/test_spend_page.py tests/emulator tests/e2e/test_example_dags.py::test_example_dags_import_cleanly_and_are_configured_sensibly

clean:
	rm -rf .venv .venv-* .wheel-test dist demo-output
