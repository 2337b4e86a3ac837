"""A connection's first message (``sessionCreated`` / ``sessionJoined``) after its handshake, then the messages that
follow it in order (``welcomeThen``: a refreshed or resumed speaker's ``stateRestored``).

From the Connections table's stream: a row inserted by ``$connect`` with a ``welcome`` attribute. A
``sessionJoined`` gets the session's listener count (which the join's transaction could not return) from one read
of the batch's sessions: a BatchGetItem per 100 sessions, strongly consistent, so each listener's count includes
itself. The read comes before any post: should it fail, the batch is retried whole with nothing delivered twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lambda_src import runtime
from lambda_src.adapters import connections_api
from lambda_src.adapters.repositories.connections import RowChange
from lambda_src.contract import wire
from lambda_src.platform.log import logger
from lambda_src.protocol import messages

# A handshake completes within milliseconds of $connect returning; these cover a slow one (~3 s in all).
HANDSHAKE_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.5)
_PARALLEL_POSTS = 16


def pending_welcomes(changes: Iterable[RowChange]) -> list[tuple[str, tuple[str, ...]]]:
    """(connection id, messages: the first, then those that follow it) for each newly inserted row that carries
    a first message."""
    return [
        (change.new.connection_id, (change.new.welcome, *change.new.welcome_then))
        for change in changes
        if change.event_name == "INSERT" and change.new is not None and change.new.welcome is not None
    ]


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None  # not a message this function completes: delivered as it is


Pending = list[tuple[str, tuple[str, ...]]]


def with_listener_counts(changes: Iterable[RowChange], pending: Pending) -> Pending:
    """``pending`` with each first message that is a ``sessionJoined`` given its session's ``listenerCount``
    (one read of the batch's sessions); other messages unchanged."""
    joined_sessions = {
        change.new.connection_id: change.new.session_id
        for change in changes
        if change.new is not None and change.new.session_id is not None
    }
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


def deliver_one(connection_id: str, texts: tuple[str, ...]) -> None:
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


def deliver(changes: Iterable[RowChange]) -> int:
    """Each new connection's first messages, in parallel; how many connections had one."""
    changes = list(changes)
    pending = with_listener_counts(changes, pending_welcomes(changes))
    if len(pending) == 1:
        deliver_one(*pending[0])
    elif pending:
        with ThreadPoolExecutor(max_workers=min(_PARALLEL_POSTS, len(pending))) as pool:
            list(pool.map(lambda item: deliver_one(*item), pending))
    return len(pending)
