"""The owner of billable state: every billable unit of a task instance's run, from intent to result.

A unit (a report create, a billable generic call) moves through one lifecycle, recorded in the
run's backend at each step:

    intent ──(handed to the transport)──> sent ──> answered      (the result is kept)
       │                                   ├───> ambiguous     (no answer proves nothing ran)
       └──(stopped before sending)         └───> refused       (PatSnap proved it did nothing)

and a later attempt of the same run reads it back: *answered* returns the kept result without a
call (a retry after a lost worker, a failed XCom push, a kill after the work was done); *intent*
or *refused* may buy (nothing was bought); *sent* or *ambiguous* fails without Airflow retries,
saying the unit may have been bought and how to check. "Sent" is recorded only when the request is
handed to the transport (``hooks._core.Mark``), so an attempt stopped while it waited for a
rate-limit slot or a token has bought nothing and its retry may buy.

Without a durable backend (Airflow before 3.3) a retry cannot see any of this; so once a unit may
have been bought, every failure of the attempt ends the task without retries, naming what was
bought (see :meth:`TaskRun.failures_name_purchases`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any, TypeVar

from airflow_provider_patsnap.billing.backends import Backend, backend_for
from airflow_provider_patsnap.billing.identity import RunIdentity
from airflow_provider_patsnap.errors import CHECK_BEFORE_RERUN, Outcome, PatsnapError, PatsnapInputError
from airflow_provider_patsnap.redaction import remote_text
from airflow_provider_patsnap.version_compat import AirflowException, AirflowFailException

T = TypeVar("T")
#: Results up to this many bytes of JSON are kept for a later attempt.
RESULT_LIMIT = 64 * 1024


class UnitState(str, Enum):
    """Where a billable unit is in its life (see the module docstring)."""

    INTENT = "intent"
    SENT = "sent"
    ANSWERED = "answered"
    AMBIGUOUS = "ambiguous"
    REFUSED = "refused"

    @property
    def may_have_bought(self) -> bool:
        return self in (UnitState.SENT, UnitState.AMBIGUOUS, UnitState.ANSWERED)


#: 0.2's record states, read after an upgrade.
_LEGACY_STATES = {"sending": UnitState.SENT, "done": UnitState.ANSWERED}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def surely_not_bought(exc: BaseException) -> bool:
    """Errors that prove nothing was bought: bad input, or a call refused or never sent."""
    if isinstance(exc, PatsnapInputError):
        return True
    return isinstance(exc, PatsnapError) and exc.outcome in (Outcome.NOT_SENT, Outcome.REJECTED)


class TaskRun:
    """What the current run of a task instance has bought, across its attempts.

    Built once per ``execute`` from the Airflow context; every billable unit of the task goes
    through :meth:`buy_once` (batches through ``billing.batches``).
    """

    def __init__(self, context: Any, log: Any, backend: Backend | None = None) -> None:
        self.context = context
        self.log = log
        self.identity = RunIdentity.of(context)
        self.backend = backend if backend is not None else backend_for(context)
        #: What this attempt bought or found bought: (what, result) pairs, for failure messages.
        self.purchases: list[tuple[str, Any]] = []

    @property
    def durable(self) -> bool:
        """Whether a later attempt of this run will see this attempt's records."""
        return self.backend.durable

    # ------------------------------------------------------------------ records

    def record(self, key: str) -> dict[str, Any] | None:
        """This run's record under ``key`` (another run's, e.g. before a clear, is not ours)."""
        entry = self.backend.get(key)
        if not self.identity.owns(entry):
            return None
        state = entry.get("state")
        if state in _LEGACY_STATES:
            entry = {**entry, "state": _LEGACY_STATES[state].value}
        return dict(entry)

    def write(self, key: str, **fields: Any) -> None:
        self.backend.put(key, {**fields, "run": self.identity.run})

    # ------------------------------------------------------------------ single units

    def bought(self, what: str, result: Any) -> None:
        """Note a unit an earlier step of this run bought (e.g. the job a deferred task resumes with)."""
        self.purchases.append((what, result))

    def buy_once(
        self, key: str, what: str, call: Callable[[Callable[[], None]], T], *, xcom_key: str | None = None
    ) -> T:
        """Make the billable ``call`` at most once for this run and return its result.

        ``call`` receives ``on_send``, to be called just before the request is handed to the
        transport (the hook's ``on_send`` argument does that). Without a durable backend the result
        is also pushed to XCom (``xcom_key``, default ``key``) inside ``execute``.
        """
        entry = self.record(key)
        state = UnitState(entry["state"]) if entry else None
        if entry and state is UnitState.ANSWERED and "result" in entry:
            self.log.info(
                "Reattached: an earlier attempt already made the %s (%s); no new call.",
                what,
                remote_text(entry["result"]),
            )
            self.purchases.append((what, entry["result"]))
            return entry["result"]  # type: ignore[no-any-return]
        if entry and state is not None and state.may_have_bought:
            happened = "got an answer too large to keep" if state is UnitState.ANSWERED else "got no answer"
            raise AirflowFailException(
                f"An earlier attempt of this task sent the {what} at {entry.get('sent_at')} and {happened}: it may "
                f"have run. {CHECK_BEFORE_RERUN}. Clearing the task calls again deliberately."
            )
        if state is UnitState.INTENT:
            self.log.info(
                "An earlier attempt stopped before the %s was sent (nothing was bought): sending it now.", what
            )
        self.write(key, state=UnitState.INTENT.value, what=what)
        sent_at: list[str] = []

        def on_send() -> None:
            if not sent_at:
                sent_at.append(_now())
                self.write(key, state=UnitState.SENT.value, what=what, sent_at=sent_at[0])

        try:
            result = call(on_send)
        except BaseException as exc:
            if not sent_at:
                raise  # stopped before it left (the limiter, the token): nothing bought, "intent" stays
            if surely_not_bought(exc):
                self.write(key, state=UnitState.REFUSED.value, what=what, sent_at=sent_at[0])
                raise
            self.write(key, state=UnitState.AMBIGUOUS.value, what=what, sent_at=sent_at[0])
            if isinstance(exc, (AirflowFailException, PatsnapError)):
                raise  # says it may have run (or is permanent): fails without retries
            raise AirflowFailException(
                f"The {what} was interrupted ({type(exc).__name__}) after it was sent: it may have run. "
                f"{CHECK_BEFORE_RERUN}."
            ) from exc
        kept = len(json.dumps(result, default=str)) <= RESULT_LIMIT
        self.write(
            key,
            state=UnitState.ANSWERED.value,
            what=what,
            sent_at=sent_at[0] if sent_at else None,
            answered_at=_now(),
            **({"result": result} if kept else {}),
        )
        self.purchases.append((what, result))
        if not self.durable:
            self._keep_in_xcom(xcom_key or key, what, result)
        return result

    def _keep_in_xcom(self, key: str, what: str, result: Any) -> None:
        """Without a durable backend, push the result inside ``execute``, where a failure can still be
        caught: Airflow's own push after ``execute`` returns could fail into a retry that buys again."""
        ti = self.context.get("ti") if hasattr(self.context, "get") else None
        if ti is None:
            return
        try:
            ti.xcom_push(key=key, value=result)
        except Exception as exc:
            raise AirflowFailException(
                f"The {what} answered {result!r} but it could not be recorded in XCom ({type(exc).__name__}); "
                "use that result instead of re-running this task."
            ) from exc

    # ------------------------------------------------------------------ failures after a purchase

    @contextlib.contextmanager
    def failures_name_purchases(
        self, hint: Callable[[], str | None], unless: tuple[type[BaseException], ...] = ()
    ) -> Iterator[None]:
        """Any failure from here on (but ``unless`` ones) names what this run bought and how to finish
        without paying again (``hint()``). Without a durable backend it also fails without Airflow
        retries: a retry would not know, and would buy again."""
        try:
            yield
        except BaseException as exc:
            text = hint() if self.purchases else None
            if text is None or isinstance(exc, (*unless, GeneratorExit)) or type(exc).__name__ == "TaskDeferred":
                raise
            if isinstance(exc, AirflowFailException):
                raise AirflowFailException(f"{exc}. {text}") from exc
            if not self.durable:
                raise AirflowFailException(
                    f"{exc}. {text} (Airflow before 3.3 keeps nothing between attempts: a retry would buy again, "
                    "so this task is not retried)"
                ) from exc
            if isinstance(exc, Exception):
                raise AirflowException(f"{exc}. {text}; a retry of this task reattaches to it") from exc
            self.log.error("Interrupted (%s). %s; a retry of this task reattaches to it.", type(exc).__name__, text)
            raise

    # ------------------------------------------------------------------ waiting windows

    def window_end(self, key: str, seconds: float, now: float) -> float:
        """The end of a waiting window anchored to the run's first attempt (durable backends keep it)."""
        started = (self.record(key) or {}).get("started")
        if not isinstance(started, (int, float)):
            started = now
            self.write(key, started=started)
        return float(started) + seconds
