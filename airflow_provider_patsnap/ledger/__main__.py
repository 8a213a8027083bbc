"""``python -m airflow_provider_patsnap.ledger report --conn patsnap_default --since 7d --by dag|endpoint|day
[--format table|csv|json]``: what a PatSnap connection's ledger says was spent."""

from __future__ import annotations

import argparse
import logging
import sys

from airflow_provider_patsnap.ledger.report import FORMATS, GROUPINGS, render, since_day, summarise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_patsnap.ledger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="units bought, reused and in doubt, grouped")
    report.add_argument("--conn", default="patsnap_default", help="the PatSnap connection (default patsnap_default)")
    report.add_argument("--since", default="7d", help="7d, 12h or a date (default 7d)")
    report.add_argument("--by", choices=GROUPINGS, default="endpoint")
    report.add_argument("--format", choices=FORMATS, default="table")
    args = parser.parse_args(argv)
    # The report is this command's standard output: Airflow's log lines (some on stdout) stay out of it.
    logging.disable(logging.WARNING)

    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    ledger = PatsnapHook(args.conn).ledger
    if ledger is None:
        print(
            f"The connection {args.conn!r} has no ledger: set its extra ledger_url or ledger_conn_id.", file=sys.stderr
        )
        return 2
    try:
        first = since_day(args.since, ledger)
    except ValueError as exc:
        parser.error(str(exc))
    lines = summarise(ledger.rows(since_day=first), args.by)
    sys.stdout.write(render(lines, args.by, args.format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
