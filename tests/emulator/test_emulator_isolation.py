"""The emulator imports nothing from the rest of the provider (nor Airflow): it is an independent model of
PatSnap, so tests against it can catch client bugs instead of sharing them. Checked on the source (every
import statement) and at run time (what importing it actually loads, in a fresh interpreter)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import airflow_provider_patsnap.testing.emulator as emulator_package

PACKAGE = emulator_package.__name__
PACKAGE_DIR = Path(emulator_package.__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parents[2]  # <root>/airflow_provider_patsnap/testing/emulator
SOURCES = sorted(PACKAGE_DIR.rglob("*.py"))
OWN_MODULES = {PACKAGE} | {
    ".".join((PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts)).removesuffix(".__init__")
    for path in SOURCES
}
PARENT_PACKAGES = {"airflow_provider_patsnap", "airflow_provider_patsnap.testing"}


def _import_violations(path: Path) -> list[str]:
    """Every import in ``path`` that is neither the standard library nor a sibling in the emulator package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(PROJECT_ROOT)
    violations = []
    for node in ast.walk(tree):  # all of them: top level, in functions, under `if TYPE_CHECKING:`
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.ImportFrom):
            if node.level != 1:
                violations.append(f"{where}:{node.lineno}: relative import leaves the emulator (level {node.level})")
            continue
        else:
            continue
        for name in names:
            if name.partition(".")[0] not in sys.stdlib_module_names:
                violations.append(f"{where}:{node.lineno}: imports {name!r}, which is not the standard library")
    return violations


def test_emulator_sources_import_only_the_standard_library_and_each_other() -> None:
    assert PACKAGE == "airflow_provider_patsnap.testing.emulator"
    assert PACKAGE_DIR / "__init__.py" in SOURCES and len(SOURCES) > 1, SOURCES
    violations = [violation for path in SOURCES for violation in _import_violations(path)]
    assert violations == []


def test_importing_the_emulator_loads_nothing_else_from_the_provider_or_airflow() -> None:
    code = (
        "import json, sys\n"
        f"import {PACKAGE} as emulator\n"
        "names = sorted(m for m in sys.modules if m.startswith(('airflow_provider_patsnap', 'airflow')))\n"
        "print(json.dumps({'file': emulator.__file__, 'modules': names}))\n"
    )
    # From the project root, so the fresh interpreter imports the same copy of the package as this one.
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert Path(loaded["file"]).resolve() == Path(emulator_package.__file__).resolve()
    modules = set(loaded["modules"])
    assert PACKAGE in modules
    assert sorted(m for m in modules if m == "airflow" or m.startswith("airflow.")) == []
    assert sorted(modules - PARENT_PACKAGES - OWN_MODULES) == []
