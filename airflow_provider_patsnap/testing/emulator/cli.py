"""The command line: ``python -m airflow_provider_patsnap.testing.emulator --port 8089``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from .protocol import OUTAGE_TARGETS
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
    parser.add_argument("--cdn-bandwidth", type=float, default=None, help="download speed in bytes per second")
    parser.add_argument(
        "--create-gateway-timeouts",
        type=int,
        default=0,
        metavar="N",
        help="the next N creates make (and bill) their job but answer an HTML gateway page",
    )
    parser.add_argument(
        "--create-gateway-status", type=int, default=504, help="status of those gateway pages (default 504)"
    )
    parser.add_argument(
        "--single-active-token", action="store_true", help="a new token revokes the client's earlier tokens"
    )
    parser.add_argument(
        "--echo-wrong-job-id", action="store_true", help="status answers echo the job id through a double"
    )
    parser.add_argument(
        "--colliding-file-names", action="store_true", help="every report downloads as report.pdf/report.docx"
    )
    parser.add_argument(
        "--outage",
        action="append",
        default=[],
        type=_outage_spec,
        metavar="TARGET:SECONDS[:AFTER_CALLS[:STATUS]]",
        help=f"an outage window (repeatable); TARGET is one of {', '.join(sorted(OUTAGE_TARGETS))}",
    )
    parser.add_argument(
        "--fail-identifier", action="append", default=[], help="identifier whose report fails (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for faults and job ids")
    parser.add_argument("--client-id", default=None)
    parser.add_argument("--client-secret", default=None)
    parser.add_argument("--api-key", default=None)
    return parser


def _outage_spec(text: str) -> tuple[str, float, int, int]:
    """Parse ``TARGET:SECONDS[:AFTER_CALLS[:STATUS]]`` (e.g. ``create:30``, ``cdn:10:2:503``)."""
    parts = text.split(":")
    try:
        if not 2 <= len(parts) <= 4 or parts[0] not in OUTAGE_TARGETS:
            raise ValueError(text)
        seconds = float(parts[1])
        after_calls = int(parts[2]) if len(parts) > 2 and parts[2] else 0
        status = int(parts[3]) if len(parts) > 3 and parts[3] else 500
        if seconds < 0 or after_calls < 0 or not 400 <= status <= 599:
            raise ValueError(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TARGET:SECONDS[:AFTER_CALLS[:STATUS]], not {text!r}") from None
    return parts[0], seconds, after_calls, status


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
        cdn_bandwidth=args.cdn_bandwidth,
        create_gateway_timeouts=args.create_gateway_timeouts,
        create_gateway_status=args.create_gateway_status,
        single_active_token=args.single_active_token,
        echo_wrong_job_id=args.echo_wrong_job_id,
        colliding_file_names=args.colliding_file_names,
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
    for target, seconds, after_calls, status in args.outage:
        emulator.outage(target, seconds, after_calls=after_calls, status=status)
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
