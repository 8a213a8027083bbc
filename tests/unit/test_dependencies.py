"""Every module the package imports at run time is the standard library, Airflow, or a declared dependency."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "airflow_provider_patsnap"
#: Import name -> distribution name, where they differ.
DISTRIBUTIONS = {"airflow": "apache-airflow"}
#: Imported only inside functions that run where their distribution is present: the pre-3.2 connection
#: form (Airflow's own UI stack), OpenLineage (the ``lineage`` extra, guarded by ImportError), Parquet
#: output (the ``parquet`` extra, checked at parse time) and the
#: shared rate limit (the ``redis`` extra, with an error naming it when absent). FastAPI is Airflow 3's
#: API server's own: the spend page imports it only when the API server serves the page.
OPTIONAL = {
    "fastapi": None,
    "flask_appbuilder": None,
    "flask_babel": None,
    "wtforms": None,
    "openlineage": "lineage",
    "pyarrow": "parquet",
    "pyrate_limiter": "redis",
    "redis": "redis",
}


def imported_top_levels() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], []).append(str(path.relative_to(ROOT)))
    return found


def declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(specs: list[str]) -> set[str]:
        return {re.split(r"[<>=!\[;~ ]", spec, maxsplit=1)[0].lower() for spec in specs}

    extras = {extra: names(specs) for extra, specs in project["optional-dependencies"].items()}
    return names(project["dependencies"]), extras


def test_every_runtime_import_is_declared() -> None:
    required, extras = declared()
    missing = {}
    for name, where in imported_top_levels().items():
        if name in sys.stdlib_module_names or name == "airflow_provider_patsnap":
            continue
        if name in OPTIONAL:
            extra = OPTIONAL[name]
            assert extra is None or any(name.replace("_", "-") in d for d in extras[extra]), (name, extra)
            continue
        if DISTRIBUTIONS.get(name, name).replace("_", "-") not in required:
            missing[name] = sorted(set(where))
    assert not missing, f"imported but not in [project].dependencies: {missing}"
