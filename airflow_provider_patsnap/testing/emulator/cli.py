"""The command line: ``python -m airflow_provider_patsnap.testing.emulator --port 8089``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from .state import PatsnapEmulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_patsnap.testing.emulator",
        description="Serve a local PatSnap Open Platform emulator on 127.0.0.1 until SIGINT/SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=8089, help="API port (0 = any free port; default 8089)")
    parser.add_argument("--cdn-port", type=int, default=0, help="download (CDN) port (default: any)")
    parser.add_argument("--job-seconds", type=float, default=2.0, help="report generation time (default 2)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability of a transient fault")
    parser.add_argument("--token-ttl", type=float, default=1800.0, help="OAuth token lifetime in seconds")
    parser.add_argument("--link-ttl", type=float, default=604800.0, help="download link lifetime in seconds")
    parser.add_argument("--qps-limit", type=float, default=None, help="requests per second per credential")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API answer")
    parser.add_argument("--report-size", type=int, default=None, help="pad PDF reports to this many bytes")
    parser.add_argument(
        "--fail-identifier", action="append", default=[], help="identifier whose report fails (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for faults and job ids")
    parser.add_argument("--client-id", default=None)
    parser.add_argument("--client-secret", default=None)
    parser.add_argument("--api-key", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator from the command line; prints its URL and connection, serves until signalled."""
    args = _parser().parse_args(argv)
    emulator = PatsnapEmulator(
        port=args.port,
        cdn_port=args.cdn_port,
        job_seconds=args.job_seconds,
        fault_rate=args.fault_rate,
        token_ttl=args.token_ttl,
        link_ttl=args.link_ttl,
        qps_limit=args.qps_limit,
        latency=args.latency,
        report_size=args.report_size,
        fail_identifiers=args.fail_identifier,
        seed=args.seed,
        client_id=args.client_id,
        client_secret=args.client_secret,
        api_key=args.api_key,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
    emulator.start()
    try:
        print(f"PATSNAP_EMULATOR_URL={emulator.url}")
        print(f"AIRFLOW_CONN_PATSNAP_DEFAULT={emulator.connection_json()}", flush=True)
        print(
            f"PatSnap emulator: API {emulator.url}, downloads {emulator.cdn_url}; stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0
