"""Telling a session's listeners what happened to it: posts in parallel, one index page at a time.

A listener that vanished without its ``$disconnect`` (410 Gone) is handed to ``on_gone`` so its row can be
cleaned up; no single listener's failure stops the others from being told.
"""

from __future__ import annotations

import enum
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from lambda_src import connections_api, limits, messages, runtime
from lambda_src.log import logger


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    GONE = "gone"
    FAILED = "failed"


@dataclass
class FanoutResult:
    listeners: list[str] = field(default_factory=list)
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))


def _deliver(connection_id: str, data: str, close: bool) -> Outcome:
    try:
        if not connections_api.post(connection_id, data):
            return Outcome.GONE
        outcome = Outcome.DELIVERED
    except Exception:
        logger.exception("could not notify a listener", extra={"listener_connection_id": connection_id})
        outcome = Outcome.FAILED
    if close:
        try:  # closed even when the message failed: a dismissed listener must not stay attached
            connections_api.close(connection_id)
        except Exception:
            logger.exception("could not close a listener", extra={"listener_connection_id": connection_id})
            outcome = Outcome.FAILED
    return outcome


def notify_listeners(
    session_id: str,
    message: dict[str, Any],
    *,
    close: bool = False,
    on_gone: Callable[[str], None] | None = None,
) -> FanoutResult:
    """Post ``message`` to every listener of the session (and close their connections when ``close``)."""
    data = messages.encode(message)
    result = FanoutResult()
    gone: list[str] = []
    with ThreadPoolExecutor(max_workers=limits.FANOUT_PARALLELISM) as pool:
        for page in runtime.connections().listener_pages(session_id):
            ids = [connection_id for connection_id, _language in page]
            result.listeners.extend(ids)
            for connection_id, outcome in zip(ids, pool.map(lambda c: _deliver(c, data, close), ids)):
                result.outcomes[outcome] += 1
                if outcome is Outcome.GONE:
                    gone.append(connection_id)
    if on_gone is not None:
        for connection_id in gone:
            try:  # the caller's operation is done; a cleanup that fails is left to the row's TTL
                on_gone(connection_id)
            except Exception:
                logger.exception("could not forget a vanished listener", extra={"listener_connection_id": connection_id})
    logger.info(
        "listeners notified",
        extra={"session_id": session_id, "message_type": message.get("type"),
               **{outcome.value: count for outcome, count in result.outcomes.items()}},
    )
    return result


def post_quietly(connection_id: str, message: dict[str, Any]) -> bool:
    """Post one message where delivery is best effort (e.g. to a speaker); False when it did not arrive."""
    try:
        return connections_api.post(connection_id, messages.encode(message))
    except Exception:
        logger.exception("could not post a message", extra={"target_connection_id": connection_id})
        return False
