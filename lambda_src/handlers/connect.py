"""``$connect``: a plain connection, or a session created / joined / resumed, or a connection refreshed,
straight from the query string.

The handshake is refused with the error's status when the request is refused. API Gateway cannot deliver
a message from inside ``$connect``, so the first message rides on the connection row and the welcome
function posts it once the handshake has completed.
"""

from __future__ import annotations

from lambda_src import messages, rate_limits, service, settings, validation
from lambda_src.errors import ErrorCode, ServiceError
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import (
    Event,
    Response,
    authorized_user_id,
    connected_at_ms,
    connection_id,
    query_parameters,
    source_ip,
    websocket_handler,
)
from lambda_src.routes import CONNECT_ACTIONS, CREATE_SESSION, JOIN_SESSION, REFRESH_CONNECTION, RESUME_SESSION


@websocket_handler
def handler(event: Event) -> Response:
    params = query_parameters(event)
    validation.check_field_sizes(params)
    action = params.get("action")
    user_id = authorized_user_id(event)
    now_ms = messages.now_ms()
    common = {
        "connection_id": connection_id(event),
        "connected_at_ms": connected_at_ms(event),
        "user_id": user_id,
        "now_ms": now_ms,
        # Every accepted connection counts against its source address, in the same transaction.
        "guards": rate_limits.connection_attempts(source_ip(event), now_ms // 1000),
    }
    languages = settings.load().languages
    if action == CREATE_SESSION:
        request = validation.parse_create_session(params, languages)
        service.create_session(request, **{**common, "user_id": service.require_speaker(user_id)}, on_connect=True)
    elif action == JOIN_SESSION:
        service.join_session(validation.parse_join_session(params, languages), **common, on_connect=True)
    elif action == REFRESH_CONNECTION:
        request = validation.parse_refresh_connection(params, languages, common["connection_id"])
        service.refresh_connection(request, **common)
    elif action == RESUME_SESSION:
        service.resume_session(validation.parse_session_id(params.get(validation.SESSION_ID)), **common)
    elif action is None:
        service.open_connection(common["connection_id"], common["connected_at_ms"], user_id, common["guards"])
    else:
        raise ServiceError(
            ErrorCode.UNKNOWN_ACTION,
            f"action must be one of {', '.join(CONNECT_ACTIONS)} (or absent), got {validation.shown(action)}",
            field="action",
        )
    return {"statusCode": 200}


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
