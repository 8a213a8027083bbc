"""Provider metadata: what Airflow reads through the entry point, and what a wheel must contain."""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import airflow_provider_patsnap
from airflow_provider_patsnap.get_provider_info import get_provider_info


def test_entry_point_resolves_to_provider_info() -> None:
    (entry,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_patsnap")
    ]
    info = entry.load()()
    assert info["package-name"] == "airflow-provider-patsnap"
    assert info["versions"] == [airflow_provider_patsnap.__version__]


def test_every_module_and_class_named_in_provider_info_imports() -> None:
    info = get_provider_info()
    modules = [
        m
        for section in ("hooks", "operators", "sensors", "triggers")
        for i in info[section]
        for m in i["python-modules"]
    ]
    classes = info["extra-links"] + [c["hook-class-name"] for c in info["connection-types"]]
    for name in modules:
        importlib.import_module(name)
    for dotted in classes:
        module, _, attr = dotted.rpartition(".")
        assert getattr(importlib.import_module(module), attr)


def test_connection_form_declares_secret_fields_as_passwords() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == "patsnap"
    assert conn_type["conn-fields"]["api_key"]["schema"]["format"] == "password"


def test_package_ships_typing_marker_and_emulator() -> None:
    package = Path(airflow_provider_patsnap.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "testing" / "emulator" / "__init__.py").is_file()
    if os.environ.get("PATSNAP_EXPECT_INSTALLED"):
        # The wheel check: the package must come from site-packages, not the source tree.
        assert "site-packages" in str(package), package


@pytest.mark.parametrize("attribute", ["get_connection_form_widgets", "get_ui_field_behaviour"])
def test_hook_still_offers_the_pre_3_2_form_api(attribute: str) -> None:
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    assert callable(getattr(PatsnapHook, attribute))
    if attribute == "get_ui_field_behaviour":
        behaviour = PatsnapHook.get_ui_field_behaviour()
        assert behaviour["relabeling"]["login"] == "Client ID"
        # Port stays on the form: the 3.3.2 Test button needs a stored port (tests/ui checks it in a browser).
        assert "port" not in behaviour["hidden_fields"] and behaviour["placeholders"]["port"] == "443"


def test_provider_info_validates_against_airflows_own_schema() -> None:
    import json

    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_the_form_offers_every_connection_extra_the_provider_reads() -> None:
    from airflow_provider_patsnap.hooks._config import EXTRAS

    (conn_type,) = get_provider_info()["connection-types"]
    assert set(conn_type["conn-fields"]) == set(EXTRAS) - {"scheme"}  # scheme: URI-form connections only


def test_the_readme_documents_every_connection_extra() -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    if not readme.is_file():
        pytest.skip("running from an installed wheel without the source tree")
    (conn_type,) = get_provider_info()["connection-types"]
    assert all(f"`{name}`" in readme.read_text() for name in conn_type["conn-fields"])


def test_the_pre_3_2_form_builds_the_same_fields() -> None:
    pytest.importorskip("flask_appbuilder", reason="the pre-3.2 form needs Airflow's Flask UI stack")
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    (conn_type,) = get_provider_info()["connection-types"]
    assert set(PatsnapHook.get_connection_form_widgets()) == set(conn_type["conn-fields"])


def test_project_urls_give_the_ui_a_documentation_link() -> None:
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("running from an installed wheel without the source tree")
    urls = tomllib.loads(pyproject.read_text())["project"]["urls"]
    assert urls["Documentation"].startswith("https://") and urls["Source"].startswith("https://")
