"""Client steps the lifecycle tests compose: connect with an action, send a message, drop a connection.

Each step goes through the real handler with an API Gateway event, exactly as a client's action arrives.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from lambda_src import runtime
from lambda_src.contract import limits
from lambda_src.handlers import connect, disconnect, message
from lambda_src.protocol import messages
from tests.support.helpers import body_of, connect_event, disconnect_event, message_event, new_connection_id

SESSION_ID = "golden-eagle-427"
OWNER = "user-1"  # put_session's default speakerUserId


def connect_with(
    query: dict[str, str] | None,
    *,
    user_id: str | None = None,
    connection_id: str | None = None,
    connected_at_ms: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """``$connect`` with ``query``; (connection id, handler response)."""
    connection_id = connection_id or new_connection_id()
    response = connect.handler(
        connect_event(query, connection_id=connection_id, user_id=user_id, connected_at_ms=connected_at_ms), None
    )
    return connection_id, response


def create_session(user_id: str = OWNER, **query: str) -> tuple[str, str]:
    """A speaker creates a session from the query string; (session id, speaker connection id)."""
    connection_id, response = connect_with(
        {"action": "createSession", "sourceLanguage": "en", **query}, user_id=user_id
    )
    assert response["statusCode"] == 200, response
    return welcome_of_row(connection_id)["sessionId"], connection_id


def join(session_id: str = SESSION_ID, language: str = "es", connected_at_ms: int | None = None) -> str:
    """A listener joins from the query string; its connection id."""
    connection_id, response = connect_with(
        {"action": "joinSession", "sessionId": session_id, "targetLanguage": language}, connected_at_ms=connected_at_ms
    )
    assert response["statusCode"] == 200, response
    return connection_id


def plain(user_id: str | None = None, connected_at_ms: int | None = None) -> str:
    """A plain connection (no action); its id."""
    connection_id, response = connect_with(None, user_id=user_id, connected_at_ms=connected_at_ms)
    assert response["statusCode"] == 200, response
    return connection_id


def send(
    body: Any,
    connection_id: str,
    route_key: str | None = None,
    *,
    user_id: str | None = None,
    connected_at_ms: int | None = None,
) -> dict[str, Any]:
    """A message frame on ``connection_id``, routed like API Gateway routes it (on ``action``)."""
    if route_key is None:
        route_key = body.get("action", "$default") if isinstance(body, dict) else "$default"
    return message.handler(
        message_event(
            body, connection_id=connection_id, route_key=route_key, user_id=user_id, connected_at_ms=connected_at_ms
        ),
        None,
    )


def drop(connection_id: str) -> dict[str, Any]:
    """``$disconnect`` of ``connection_id``."""
    return disconnect.handler(disconnect_event(connection_id), None)


def welcome_of_row(connection_id: str) -> dict[str, Any]:
    """The first message stored on a connection's row (the welcome function posts it after the handshake)."""
    connection = runtime.connections().get(connection_id)
    assert connection is not None and connection.welcome is not None, connection
    return json.loads(connection.welcome)


def error_of(response: dict[str, Any]) -> tuple[int, str]:
    """(status, code) of an error reply."""
    body = body_of(response)
    assert body["type"] == "error", body
    return response["statusCode"], body["code"]


class Clock:
    """The service's clock (``messages.now_ms``), fixed at install time and moved only by hand."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    @classmethod
    def install(cls, monkeypatch: pytest.MonkeyPatch) -> Clock:
        clock = cls(time.time_ns() // 1_000_000)
        monkeypatch.setattr(messages, "now_ms", lambda: clock.now_ms)
        return clock

    @property
    def now_s(self) -> int:
        return self.now_ms // 1000

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


def handshake_done_ms() -> int:
    """A ``connectedAt`` whose handshake is surely over (older than the handshake window): a 410 from such a
    connection proves it gone."""
    return messages.now_ms() - (limits.HANDSHAKE_WINDOW_SECONDS + 1) * 1000


def deliver_disconnects(connection_ids) -> None:
    """API Gateway's ``$disconnect`` for each connection the service closed (it follows every close)."""
    for connection_id in connection_ids:
        assert drop(connection_id)["statusCode"] == 200
