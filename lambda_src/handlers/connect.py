"""``$connect``: a plain connection, or a session created / joined / resumed, or a connection refreshed,
straight from the query string.

Without ``action``, a query string naming a session (``sessionId``) and no ``targetLanguage`` is the session's
owner opening its speaker connection (the original speaker app's URL, ``?token=…&sessionId=…``): it is
``resumeSession`` exactly, refusals included. A listener's URL carries ``targetLanguage``; without ``action`` it
stays a plain connection, and its ``joinSession`` message joins (docs/decisions/0034-*).

The handshake is refused with the error's status when the request is refused. API Gateway cannot deliver
a message from inside ``$connect``, so the first message rides on the connection row and the welcome
function posts it once the handshake has completed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambda_src.app import connections, rate_limits
from lambda_src.contract import function_settings, wire
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.contract.routes import CONNECT_ACTIONS, CREATE_SESSION, JOIN_SESSION, REFRESH_CONNECTION, RESUME_SESSION
from lambda_src.contract.schema import ROLE_SPEAKER
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import Event, Response, caller, query_parameters, source_ip, websocket_handler
from lambda_src.model.caller import Action, Caller, Reply, speaker_for
from lambda_src.protocol import messages, validation
from lambda_src.protocol.validation import CreateSessionRequest, JoinSessionRequest, RefreshConnectionRequest


def _parse_create(params: Mapping[str, Any], _caller: Caller) -> CreateSessionRequest:
    return validation.parse_create_session(params, function_settings.load().languages)


def _parse_join(params: Mapping[str, Any], _caller: Caller) -> JoinSessionRequest:
    return validation.parse_join_session(params, function_settings.load().languages)


def _parse_refresh(params: Mapping[str, Any], caller: Caller) -> RefreshConnectionRequest:
    return validation.parse_refresh_connection(params, function_settings.load().languages, caller.connection_id)


def _parse_session_id(params: Mapping[str, Any], _caller: Caller) -> str:
    return validation.parse_session_id(params.get(wire.SESSION_ID))


def _nothing(_params: Mapping[str, Any], _caller: Caller) -> None:
    return None


def _open_connection(_request: None, caller: Caller) -> Reply:
    connections.open_connection(caller)
    return {}  # nothing to say: the handshake's 200 is the answer


def _speaker_refresh(request: RefreshConnectionRequest) -> str | None:
    return "refreshing a speaker connection" if request.role == ROLE_SPEAKER else None


# The action named by the query string's ``action`` (None: a plain connection, in no session yet).
ACTIONS: dict[str | None, Action[Any]] = {
    CREATE_SESSION: Action(
        _parse_create,
        lambda request, caller: connections.create_session(request, caller, on_connect=True),
        speaker=speaker_for("creating a session"),
    ),
    JOIN_SESSION: Action(
        _parse_join, lambda request, caller: connections.join_session(request, caller, on_connect=True)
    ),
    REFRESH_CONNECTION: Action(_parse_refresh, connections.refresh_connection, speaker=_speaker_refresh),
    RESUME_SESSION: Action(_parse_session_id, connections.resume_session, speaker=speaker_for("resuming a session")),
    None: Action(_nothing, _open_connection),
}
# No ``action``, a ``sessionId`` and no ``targetLanguage``: the owner's speaker connection, as resumeSession.
SPEAKERS_CONNECTION: Action[Any] = Action(
    _parse_session_id,
    connections.resume_session,
    speaker=speaker_for("opening a session's speaker connection (sessionId without targetLanguage)"),
)


def chosen_action(params: Mapping[str, Any]) -> Action[Any]:
    """What the query string asks for: its ``action``; without one, the session's speaker connection when it
    names a session but no ``targetLanguage`` (a listener's URL names one), else a plain connection."""
    action = params.get("action")
    if action is None and wire.SESSION_ID in params and wire.TARGET_LANGUAGE not in params:
        return SPEAKERS_CONNECTION
    if action not in ACTIONS:
        raise ServiceError(
            ErrorCode.UNKNOWN_ACTION,
            f"action must be one of {', '.join(CONNECT_ACTIONS)} (or absent), got {validation.shown(action)}",
            field="action",
        )
    return ACTIONS[action]


@websocket_handler
def handler(event: Event) -> Response:
    params = query_parameters(event)
    validation.check_field_sizes(params)
    action = chosen_action(params)
    now_ms = messages.now_ms()
    # Every accepted connection counts against its source address, in the same transaction.
    guards = tuple(rate_limits.connection_attempts(source_ip(event), now_ms // 1000))
    action(params, caller(event, now_ms, guards))
    return {"statusCode": 200}


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
