"""The README cannot drift: its Python snippets run against the emulator, its commands exist."""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_readme_has_python_snippets() -> None:
    assert len(PYTHON_BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_snippet_runs(index: int, emulator: object, emu_conn: str) -> None:
    code = compile(PYTHON_BLOCKS[index], f"README.md (python block {index + 1})", "exec")
    exec(code, {"__name__": f"readme_block_{index + 1}"})


def test_first_screen_gives_the_two_commands_and_they_exist() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.DOTALL)
    assert first_block and README.index(first_block.group(0)) < 1500  # on the first screen
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test\b", ci, re.MULTILINE), "CI must run the README's test command"


def _operator_classes() -> dict[str, type]:
    from airflow_provider_patsnap.operators import api, indicators, reports, usage
    from airflow_provider_patsnap.sensors import report_job

    return {
        name: cls
        for module in (api, indicators, reports, usage, report_job)
        for name, cls in vars(module).items()
        if name.startswith("Patsnap") and isinstance(cls, type)
    }


def _parameters(cls: type, *, own: bool = True) -> dict[str, inspect.Parameter]:
    """The arguments a user passes: the provider's classes' own (``own``), or with Airflow's base classes'."""
    found: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if init is None or (own and not klass.__module__.startswith("airflow_provider_patsnap")):
            continue
        for name, parameter in inspect.signature(init).parameters.items():
            if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD:
                found[name] = parameter
    return found


SIGNATURES = re.findall(r"`(Patsnap\w+)\(([^`]*?)\)`", README)


def test_readme_signatures_are_the_code_s() -> None:
    """Every full signature the README writes (``Name(*, a, b=None)``): the same names, order, kinds and defaults."""
    classes = _operator_classes()
    written = [(name, args) for name, args in SIGNATURES if "..." not in args]
    assert {name for name, _ in written} >= {"PatsnapApiOperator", "PatsnapUsageOperator"}
    for name, args in written:
        tree = ast.parse(f"def f({' '.join(args.split())}): pass").body[0]
        assert isinstance(tree, ast.FunctionDef)
        documented = [*tree.args.args, *tree.args.kwonlyargs]
        actual = list(_parameters(classes[name]).values())
        assert [a.arg for a in documented] == [p.name for p in actual], name
        assert (len(tree.args.kwonlyargs) == len(documented)) == all(
            p.kind is inspect.Parameter.KEYWORD_ONLY for p in actual
        ), f"{name}: keyword-only in the code and in the README"
        defaults = dict(zip([a.arg for a in tree.args.kwonlyargs], tree.args.kw_defaults, strict=True))
        for parameter in actual:
            default = defaults.get(parameter.name)
            if default is None:
                assert parameter.default is inspect.Parameter.empty, (name, parameter.name)
            else:
                text = ast.unparse(default)
                assert eval(text, {"timedelta": dt.timedelta}) == parameter.default, (name, parameter.name, text)


def test_readme_parameter_tables_name_real_arguments() -> None:
    """Each operator section's parameter table lists only arguments its class takes."""
    classes = _operator_classes()
    sections = re.split(r"^#{2,3} ", README, flags=re.MULTILINE)[1:]
    checked = 0
    for section in sections:
        heading, _, body = section.partition("\n")
        names = [n for n in re.findall(r"`(Patsnap\w+)`", heading) if n in classes]
        if not names:
            continue
        accepted = set().union(*(_parameters(classes[n], own=False) for n in names))
        rows = re.findall(r"^\| (`[^|]*) \|", body, re.MULTILINE)
        documented = {name for row in rows for name in re.findall(r"`(\w+)`", row)}
        assert documented <= accepted, (names, sorted(documented - accepted))
        checked += bool(rows)
    assert checked >= 5
