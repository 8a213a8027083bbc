"""What every PatSnap operator shares: turning PatSnap errors into Airflow's retry semantics."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow_provider_patsnap.errors import PatsnapError, PatsnapInputError, PatsnapPermanentError
from airflow_provider_patsnap.version_compat import AirflowFailException


@contextlib.contextmanager
def airflow_failure_semantics() -> Iterator[None]:
    """Fail without Airflow retries when a retry cannot help or could bill twice.

    Bad input, permanent PatSnap errors and creates that may have run become
    ``AirflowFailException``; transient errors propagate so Airflow's own retries apply.
    """
    try:
        yield
    except PatsnapInputError as exc:
        raise AirflowFailException(f"Invalid input, nothing was sent to PatSnap: {exc}") from None
    except PatsnapError as exc:
        if isinstance(exc, PatsnapPermanentError) or exc.may_have_executed:
            raise AirflowFailException(str(exc)) from None
        raise


def annotate_outlet_events(operator: Any, context: Any, result: dict[str, Any]) -> None:
    """Attach what was written to the Asset events Airflow emits for the task's outlets."""
    events = context.get("outlet_events") if hasattr(context, "get") else None
    if events is None:
        return
    extra = {k: result[k] for k in ("uri", "sha256", "size", "records") if k in result}
    for outlet in getattr(operator, "outlets", None) or []:
        try:
            events[outlet].extra.update(extra)
        except (KeyError, TypeError, AttributeError):
            continue
