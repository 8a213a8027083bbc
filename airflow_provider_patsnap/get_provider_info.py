"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_patsnap import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-patsnap",
        "name": "PatSnap",
        "description": (
            "PatSnap Open Platform: enterprise and patent value reports, batch patent indicators (P035-P040), "
            "any endpoint."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "PatSnap",
                "external-doc-url": "https://open.patsnap.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "PatSnap",
                "python-modules": ["airflow_provider_patsnap.hooks.patsnap"],
            }
        ],
        "operators": [
            {
                "integration-name": "PatSnap",
                "python-modules": [
                    "airflow_provider_patsnap.operators.reports",
                    "airflow_provider_patsnap.operators.indicators",
                    "airflow_provider_patsnap.operators.api",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "PatSnap",
                "python-modules": ["airflow_provider_patsnap.sensors.report_job"],
            }
        ],
        "triggers": [
            {
                "integration-name": "PatSnap",
                "python-modules": ["airflow_provider_patsnap.triggers.report_job"],
            }
        ],
        "extra-links": [
            "airflow_provider_patsnap.links.PatsnapApiDocsLink",
            "airflow_provider_patsnap.links.PatsnapOutputLink",
        ],
        "connection-types": [
            {
                "connection-type": "patsnap",
                "hook-class-name": "airflow_provider_patsnap.hooks.patsnap.PatsnapHook",
                "hook-name": "PatSnap",
                "ui-field-behaviour": {
                    # Port stays visible: Airflow 3.3.2's Test button sends port 0 for an empty one and the
                    # server refuses it as "differs from the stored connection"; a stored port passes.
                    "hidden-fields": ["schema"],
                    "relabeling": {
                        "login": "Client ID",
                        "password": "Client secret",
                        "host": "Base URL",
                        "port": "Port (443 for https; the Test button needs it)",
                    },
                    "placeholders": {
                        "host": "https://connect.patsnap.com",
                        "port": "443",
                        "login": "OAuth client id (leave empty with an API key)",
                        "password": "OAuth client secret, or an sk-... API key (Client ID empty)",
                    },
                },
                "conn-fields": {
                    "api_key": {
                        "label": "API key",
                        "description": "An sk-... key, used instead of client id/secret",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "timeout": {
                        "label": "Timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 30},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "schema": {"type": ["integer", "null"], "default": 5},
                    },
                    "qps": {
                        "label": "Requests per second",
                        "description": "Client-side cap per worker process; 0 disables it",
                        "schema": {"type": ["number", "null"], "default": 2},
                    },
                    "api_key_in_query": {
                        "label": "Also send the API key as ?apikey=",
                        "description": "Off by default: URLs end up in proxy logs",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "max_concurrency": {
                        "label": "Parallel batch requests",
                        "description": "Indicator batches in flight at once (the qps cap still applies)",
                        "schema": {"type": ["integer", "null"], "default": 4},
                    },
                    "retry_wait_min": {
                        "label": "First retry wait (s)",
                        "schema": {"type": ["number", "null"], "default": 1},
                    },
                    "retry_wait_max": {
                        "label": "Longest retry wait (s)",
                        "schema": {"type": ["number", "null"], "default": 60},
                    },
                    "rate_limit_url": {
                        "label": "Shared rate limit (redis://...)",
                        "description": "One budget for every worker and triggerer; qps is then the account's QPS",
                        # The URL may carry the Redis password.
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "allow_private_addresses": {
                        "label": "Allow download links to internal addresses",
                        "description": "Off by default. true, or networks such as 10.8.0.0/16,127.0.0.0/8",
                        "schema": {"type": ["string", "null"]},
                    },
                    "max_response_bytes": {
                        "label": "Largest API answer (bytes)",
                        "schema": {"type": ["integer", "null"], "default": 16777216},
                    },
                    "max_download_bytes": {
                        "label": "Largest report download (bytes)",
                        "schema": {"type": ["integer", "null"], "default": 1073741824},
                    },
                    "max_ambiguous_replays": {
                        "label": "Replays of a batch that may have been billed",
                        "description": "An indicator batch whose answer was lost is sent again at most this often",
                        "schema": {"type": ["integer", "null"], "default": 1},
                    },
                    "ledger_url": {
                        "label": "Ledger database (SQLAlchemy URL)",
                        "description": "sqlite:////abs/path.db or postgresql+psycopg2://...; records every unit bought",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "ledger_conn_id": {
                        "label": "Ledger connection id",
                        "description": "Or: an Airflow connection (postgres, sqlite) holding the ledger",
                        "schema": {"type": ["string", "null"]},
                    },
                    "budget_daily_units": {
                        "label": "Daily budget (units)",
                        "description": "Refuse a billable call that would pass it (needs a ledger)",
                        "schema": {"type": ["integer", "null"]},
                    },
                    "budget_monthly_units": {
                        "label": "Monthly budget (units)",
                        "schema": {"type": ["integer", "null"]},
                    },
                    "budget_timezone": {
                        "label": "Budget time zone",
                        "schema": {"type": ["string", "null"], "default": "Asia/Shanghai"},
                    },
                    "download_timeout": {
                        "label": "Longest report download (s)",
                        "description": "One attempt's whole transfer, however slowly bytes arrive",
                        "schema": {"type": ["number", "null"], "default": 900},
                    },
                },
            }
        ],
    }
