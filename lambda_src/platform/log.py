"""The one structured logger (Powertools: JSON lines that carry the correlation ids the handlers append).

Correlation keys: every handler appends ``request_id`` (and, for a WebSocket route, ``connection_id`` and
``route``) when an invocation starts; the service appends ``session_id`` as soon as it knows which session a
request concerns (:func:`session_concerned`); the handler removes them all when the invocation ends
(:data:`CORRELATION_KEYS`), so nothing leaks into the next invocation of a warm Lambda.

What is never logged: a token, a client's IP address, an event or a message body as received.
"""

from __future__ import annotations

from typing import Final

from aws_lambda_powertools import Logger

from lambda_src.contract.telemetry import SERVICE_NAME

CONNECTION_ID_KEY: Final = "connection_id"
REQUEST_ID_KEY: Final = "request_id"
ROUTE_KEY: Final = "route"
SESSION_ID_KEY: Final = "session_id"
CORRELATION_KEYS: Final = (CONNECTION_ID_KEY, REQUEST_ID_KEY, ROUTE_KEY, SESSION_ID_KEY)

logger = Logger(service=SERVICE_NAME)


def session_concerned(session_id: str | None) -> None:
    """Every later line of this invocation names ``session_id`` (until the handler clears the keys);
    ``None`` (a connection in no session) changes nothing."""
    if session_id is not None:
        logger.append_keys(**{SESSION_ID_KEY: session_id})


def clear_correlation_keys() -> None:
    """Forget the invocation's correlation keys (at its end: a warm Lambda's next invocation starts clean)."""
    logger.remove_keys(CORRELATION_KEYS)
