"""Message routes (``createSession``, ``joinSession``, ``heartbeat``) and ``$default``.

Replies are route responses: API Gateway sends the returned body to the client.
"""

from __future__ import annotations

from typing import Any, Callable

from lambda_src import messages, service, settings, validation
from lambda_src.errors import ErrorCode, ServiceError
from lambda_src.handlers.common import (
    Event,
    Response,
    authorized_user_id,
    connected_at_ms,
    connection_id,
    message_body,
    reply,
    request_context,
    websocket_handler,
)
from lambda_src.routes import CREATE_SESSION, DEFAULT, HEARTBEAT, JOIN_SESSION


def _create_session(event: Event, body: dict[str, Any]) -> dict[str, Any]:
    user_id = service.require_speaker(authorized_user_id(event))
    request = validation.parse_create_session(body, settings.load().languages)
    return service.create_session(
        request,
        connection_id=connection_id(event),
        connected_at_ms=connected_at_ms(event),
        user_id=user_id,
        now_ms=messages.now_ms(),
        on_connect=False,
    )


def _join_session(event: Event, body: dict[str, Any]) -> dict[str, Any]:
    request = validation.parse_join_session(body, settings.load().languages)
    return service.join_session(
        request,
        connection_id=connection_id(event),
        connected_at_ms=connected_at_ms(event),
        user_id=authorized_user_id(event),
        now_ms=messages.now_ms(),
        on_connect=False,
    )


def _heartbeat(event: Event, body: dict[str, Any]) -> dict[str, Any]:
    return messages.heartbeat_ack(messages.now_ms())


ACTIONS: dict[str, Callable[[Event, dict[str, Any]], dict[str, Any]]] = {
    CREATE_SESSION: _create_session,
    JOIN_SESSION: _join_session,
    HEARTBEAT: _heartbeat,
}


@websocket_handler
def handler(event: Event) -> Response:
    body = message_body(event)
    action = body.get("action")
    route_key = request_context(event).get("routeKey")
    if route_key != DEFAULT and route_key in ACTIONS:
        action = route_key
    if not isinstance(action, str) or action not in ACTIONS:
        raise ServiceError(
            ErrorCode.UNKNOWN_ACTION,
            f"action must be one of {', '.join(ACTIONS)}, got {validation.shown(action)}",
            field="action",
        )
    return reply(ACTIONS[action](event, body))
