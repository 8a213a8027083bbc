"""A local, standard-library-only model of the PatSnap Open Platform HTTP API.

``PatsnapEmulator`` serves the endpoints the provider uses (OAuth token, R001/R002 report
tasks and their status, P035-P040 batch indicators) on ``127.0.0.1``, plus a separate "CDN"
listener that serves the signed download links, with knobs for the failure modes a client
must survive (token expiry and revocation, QPS limits, transient faults, outage windows,
gateway timeouts after a create, latency, slow or truncated downloads, misleading answers).

It deliberately imports nothing from the rest of the package: it is an independent model of
the remote service, so tests against it can catch client bugs.

Run it stand-alone with ``python -m airflow_provider_patsnap.testing.emulator --port 8089``.
"""

from __future__ import annotations

from .cli import main
from .state import PatsnapEmulator

__all__ = ["PatsnapEmulator", "main"]
