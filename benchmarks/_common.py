"""Shared plumbing for the ``benchmarks/bench_*.py`` scripts (``make bench``).

Importing this module, before anything imports Airflow, points ``AIRFLOW_HOME`` at a private
temporary directory (removed at exit), turns example DAGs off and quiets Airflow's logging, so a
benchmark never reads or writes a real Airflow installation. Child processes inherit that home.

It also provides:

* :class:`EmulatorProcess`: the bundled ``PatsnapEmulator`` (``127.0.0.1`` only) in a separate
  process, driven over a pipe. The hook under test then does not share a GIL with the fake
  server, which keeps timings close to talking to a remote service on a 2-core machine.
* :func:`figure`: prints one result line: ``name  value  (absolute numbers; goal)  [met|MISSED]``.
* :func:`watchdog`: a hard deadline, so a script always stops in bounded time.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
from multiprocessing.connection import Connection
from typing import Any

# ------------------------------------------------------------------ Airflow sandbox (import side effect)

_HOME_MARKER = "PATSNAP_BENCH_AIRFLOW_HOME"

if os.environ.get(_HOME_MARKER) and os.environ.get("AIRFLOW_HOME") == os.environ[_HOME_MARKER]:
    AIRFLOW_HOME = os.environ[_HOME_MARKER]  # a child of a benchmark: the parent owns the directory
else:
    AIRFLOW_HOME = tempfile.mkdtemp(prefix="patsnap-bench-airflow-home-")
    os.environ[_HOME_MARKER] = AIRFLOW_HOME
    os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
    atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
    os.environ.pop("AIRFLOW_CONN_PATSNAP_DEFAULT", None)  # only ever the emulator, set by the benchmark
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")  # retries etc. would drown the figures

CONN_ENV = "AIRFLOW_CONN_PATSNAP_DEFAULT"


def watchdog(seconds: float) -> None:
    """Dump every thread's stack and exit(1) if the script is still running after ``seconds``."""
    faulthandler.dump_traceback_later(seconds, exit=True)


def env_number(name: str, default: float) -> float:
    """A numeric knob from the environment (``BENCH_*``), else ``default``."""
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def use_connection(conn_json: str) -> None:
    """Point ``patsnap_default`` at ``conn_json`` (read by every hook created afterwards)."""
    os.environ[CONN_ENV] = conn_json


def reset_process_state() -> None:
    """Forget the process-wide token cache, rate limiters and queue estimates (a fresh worker process, in effect)."""
    from airflow_provider_patsnap.hooks import _ratelimit
    from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE
    from airflow_provider_patsnap.triggers import _schedule

    TOKEN_CACHE.clear()
    with _ratelimit._LIMITERS_LOCK:
        _ratelimit._LIMITERS.clear()
    with _schedule._DRAINS_LOCK:
        _schedule._DRAINS.clear()


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def figure(name: str, value: float, detail: str, ok: bool | None, fmt: str = ".2f") -> None:
    """Print one figure line; ``ok`` None means "no goal, for information"."""
    verdict = "" if ok is None else ("  [met]" if ok else "  [MISSED]")
    shown = f"{value:{fmt}}" if math.isfinite(value) else str(value)
    print(f"{name}  {shown}  ({detail}){verdict}", flush=True)


# ------------------------------------------------------------------ the emulator in its own process


def _serve_emulator(conn: Connection, knobs: dict[str, Any]) -> None:
    """Child process: run a PatsnapEmulator and answer ``get``/``set``/``call`` requests until told to stop."""
    from airflow_provider_patsnap.testing.emulator import PatsnapEmulator

    emulator = PatsnapEmulator(**knobs)
    try:
        emulator.start()
        conn.send(
            {
                "url": emulator.url,
                "cdn_url": emulator.cdn_url,
                "client_id": emulator.client_id,
                "client_secret": emulator.client_secret,
                "api_key": emulator.api_key,
            }
        )
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the benchmark went away: stop serving
                break
            op, name, args, kwargs = message
            if op == "stop":
                break
            try:
                if op == "get":
                    result = getattr(emulator, name)
                elif op == "set":
                    setattr(emulator, name, args[0])
                    result = None
                else:
                    result = getattr(emulator, name)(*args, **kwargs)
                conn.send(("ok", result))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        errors = list(emulator.errors)
        emulator.stop()
        if errors:
            print(f"emulator recorded {len(errors)} internal error(s):\n{errors[0]}", file=sys.stderr)


class EmulatorProcess:
    """A ``PatsnapEmulator`` (loopback only) running in a child process; knobs as for the emulator."""

    def __init__(self, **knobs: Any) -> None:
        self._knobs = knobs
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self.url = self.cdn_url = self.client_id = self.client_secret = self.api_key = ""

    def __enter__(self) -> EmulatorProcess:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_serve_emulator, args=(child, self._knobs), name="patsnap-emulator", daemon=True
        )
        self._process.start()
        child.close()
        self._conn = parent
        if not parent.poll(30):
            raise RuntimeError("the emulator process did not start within 30 s")
        info = parent.recv()
        for key, value in info.items():
            setattr(self, key, value)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(("stop", "", (), {}))
            self._conn.close()
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=5)

    def _ask(self, op: str, name: str, *args: Any, **kwargs: Any) -> Any:
        assert self._conn is not None, "use EmulatorProcess as a context manager"
        self._conn.send((op, name, args, kwargs))
        if not self._conn.poll(60):
            raise RuntimeError(f"the emulator process did not answer {op} {name}")
        status, result = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"emulator {op} {name} failed: {result}")
        return result

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._ask("call", method, *args, **kwargs)

    def set(self, **knobs: Any) -> None:
        for name, value in knobs.items():
            self._ask("set", name, value)

    @property
    def stats(self) -> dict[str, Any]:
        return self._ask("get", "stats")

    def reset_stats(self) -> None:
        self.call("reset_stats")

    def connection_json(self, auth: str = "oauth", **extra: Any) -> str:
        return self.call("connection_json", auth, **extra)
