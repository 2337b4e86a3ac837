"""Delivers a connection's first message (``sessionCreated`` / ``sessionJoined``) after its handshake, then the
messages that follow it in order (``welcomeThen``: a refreshed or resumed speaker's ``stateRestored``).

Triggered by the Connections table's stream: a row inserted by ``$connect`` with a ``welcome`` attribute.
A ``sessionJoined`` gets the session's listener count (which the join's transaction could not return) from
one read of the batch's sessions: a BatchGetItem per 100 sessions, strongly consistent, so each listener's
count includes itself. The read comes before any post: should it fail, the batch is retried whole with
nothing delivered twice.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lambda_src import runtime
from lambda_src.adapters import connections_api
from lambda_src.adapters.repositories.connections import WELCOME_THEN_ATTRIBUTE
from lambda_src.contract import wire
from lambda_src.contract.schema import (
    CONNECTIONS_BY_SESSION_PARTITION_KEY,
    CONNECTIONS_PARTITION_KEY,
    WELCOME_ATTRIBUTE,
)
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import entry_point, logger
from lambda_src.protocol import messages

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# A handshake completes within milliseconds of $connect returning; these cover a slow one (~3 s in all).
HANDSHAKE_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.5)
_PARALLEL_POSTS = 16


def pending_welcomes(event: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """(connection id, messages: the first, then those that follow it) for each newly inserted row that carries
    a first message."""
    pending = []
    for record in event.get("Records", []):
        image = record.get("dynamodb", {}).get("NewImage", {})
        if record.get("eventName") != "INSERT" or WELCOME_ATTRIBUTE not in image:
            continue
        then = tuple(value["S"] for value in image.get(WELCOME_THEN_ATTRIBUTE, {}).get("L", []))
        pending.append((image[CONNECTIONS_PARTITION_KEY]["S"], (image[WELCOME_ATTRIBUTE]["S"], *then)))
    return pending


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None  # not a message this function completes: delivered as it is


Pending = list[tuple[str, tuple[str, ...]]]


def with_listener_counts(event: dict[str, Any], pending: Pending) -> Pending:
    """``pending`` with each first message that is a ``sessionJoined`` given its session's ``listenerCount``
    (one read of the batch's sessions); other messages unchanged."""
    joined_sessions: dict[str, str] = {}
    for record in event.get("Records", []):
        image = record.get("dynamodb", {}).get("NewImage", {})
        session_id = image.get(CONNECTIONS_BY_SESSION_PARTITION_KEY, {}).get("S")
        if isinstance(session_id, str):
            joined_sessions[image[CONNECTIONS_PARTITION_KEY]["S"]] = session_id
    joined: dict[str, dict[str, Any]] = {}
    for connection_id, (first, *_then) in pending:
        message = _decoded(first)
        if isinstance(message, dict) and message.get("type") == "sessionJoined" and connection_id in joined_sessions:
            joined[connection_id] = message
    if not joined:
        return pending
    counts = runtime.sessions().listener_counts({joined_sessions[connection_id] for connection_id in joined})
    completed: Pending = []
    for connection_id, texts in pending:
        message = joined.get(connection_id)
        if message is not None:
            # A session gone since the join (its TTL) counts nobody.
            message[wire.LISTENER_COUNT] = counts.get(joined_sessions[connection_id], 0)
            texts = (messages.encode(message), *texts[1:])
        completed.append((connection_id, texts))
    return completed


def _deliver(connection_id: str, texts: tuple[str, ...]) -> None:
    """The first message once the handshake has completed, then the others in order (the connection is open)."""
    first, *then = texts
    try:
        if not connections_api.post_after_handshake(connection_id, first, HANDSHAKE_RETRY_DELAYS):
            logger.info("connection gone before its first message", extra={"connection_id": connection_id})
            return
        for text in then:
            if not connections_api.post(connection_id, text):
                logger.info("connection gone before its next message", extra={"connection_id": connection_id})
                return
    except Exception:
        logger.exception("first messages not delivered", extra={"connection_id": connection_id})


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, int]:
    pending = with_listener_counts(event, pending_welcomes(event))
    if len(pending) == 1:
        _deliver(*pending[0])
    elif pending:
        with ThreadPoolExecutor(max_workers=min(_PARALLEL_POSTS, len(pending))) as pool:
            list(pool.map(lambda item: _deliver(*item), pending))
    return {"delivered": len(pending)}


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
