"""Message routes and ``$default``.

Replies are route responses: API Gateway sends the returned body to the client. A route with more than
one message to send (a heartbeat near the 2-hour limit) posts the others first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lambda_src import fanout, messages, service, session_control, settings, validation
from lambda_src.errors import ErrorCode, ServiceError
from lambda_src.handlers import finish_loading
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
from lambda_src.routes import (
    CREATE_SESSION,
    DEFAULT,
    END_SESSION,
    GET_SESSION_STATUS,
    HEARTBEAT,
    JOIN_SESSION,
    LEAVE_SESSION,
    UPDATE_SESSION_CONFIG,
)

Action = Callable[[Event, dict[str, Any]], dict[str, Any]]


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
    connection = connection_id(event)
    return service.heartbeat(
        connection, connected_at_ms(event), messages.now_ms(), lambda notice: fanout.post_quietly(connection, notice)
    )


def _leave_session(event: Event, body: dict[str, Any]) -> dict[str, Any]:
    return service.leave_session(connection_id(event), messages.now_ms())


def _speaker_action(action: Callable[[str, dict[str, Any], int], dict[str, Any]]) -> Action:
    def run(event: Event, body: dict[str, Any]) -> dict[str, Any]:
        validation.check_field_sizes(body)
        return action(connection_id(event), body, messages.now_ms())

    return run


ACTIONS: dict[str, Action] = {
    CREATE_SESSION: _create_session,
    JOIN_SESSION: _join_session,
    HEARTBEAT: _heartbeat,
    LEAVE_SESSION: _leave_session,
    UPDATE_SESSION_CONFIG: _speaker_action(session_control.update_config),
    GET_SESSION_STATUS: _speaker_action(session_control.session_status),
    END_SESSION: _speaker_action(session_control.end_session),
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


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
