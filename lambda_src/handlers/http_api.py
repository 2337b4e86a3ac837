"""The HTTP session API (decision record 0037): ``POST /sessions``, ``GET`` / ``PATCH`` / ``DELETE
/sessions/{sessionId}``, ``GET`` / ``DELETE /sessions/{sessionId}/transcript`` (decision record 0036) and
``GET /health``, one function behind every route.

API Gateway's JWT authorizer has verified the speaker's token before any route but ``/health`` runs (a missing or
bad token is answered 401 without this function); the token's ``sub`` claim is the speaker's user id. Errors are
the catalogue's, in the one HTTP error shape (``lambda_src.protocol.http_bodies.error_body``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from lambda_src.app import sessions_http, transcripts
from lambda_src.contract import function_settings, http_api, wire
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import Event, Response, http_handler, http_response, message_body, request_context
from lambda_src.protocol import messages, validation
from lambda_src.protocol.http_bodies import session_metadata

# The verified token's claim naming the speaker (Cognito's user id).
USER_ID_CLAIM = "sub"


def user_id(event: Event) -> str:
    """The speaker's user id: the ``sub`` claim API Gateway's JWT authorizer verified. A request that reaches a
    guarded route without one (a route left unguarded by mistake) is refused, never served anonymously."""
    authorizer = request_context(event).get("authorizer")
    jwt = authorizer.get("jwt") if isinstance(authorizer, dict) else None
    claims = jwt.get("claims") if isinstance(jwt, dict) else None
    sub = claims.get(USER_ID_CLAIM) if isinstance(claims, dict) else None
    if not isinstance(sub, str) or not sub:
        raise ServiceError(ErrorCode.UNAUTHORIZED, "this route needs a valid speaker token (Authorization: Bearer)")
    return sub


def _session_id(event: Event) -> str:
    parameters = event.get("pathParameters")
    value = parameters.get(http_api.SESSION_ID_PARAMETER) if isinstance(parameters, dict) else None
    return validation.parse_session_id(value)


def _body(event: Event) -> dict[str, Any]:
    """The request body as a JSON object (API Gateway passes a binary body base64-encoded)."""
    body = event.get("body")
    if event.get("isBase64Encoded") and isinstance(body, str):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ServiceError(ErrorCode.INVALID_MESSAGE, "the body must be UTF-8 JSON text") from None
    return message_body({"body": body})


def _create(event: Event, now_ms: int) -> Response:
    owner = user_id(event)
    body = _body(event)
    validation.check_known_fields(body, http_api.CREATE_FIELDS)
    request = validation.parse_create_session(body, function_settings.load().languages)
    return http_response(201, session_metadata(sessions_http.create(request, owner, now_ms)))


def _read(event: Event, now_ms: int) -> Response:
    user_id(event)
    return http_response(200, session_metadata(sessions_http.read(_session_id(event), now_ms)))


def _update(event: Event, now_ms: int) -> Response:
    owner = user_id(event)
    session_id = _session_id(event)
    body = _body(event)
    validation.check_known_fields(body, http_api.UPDATE_FIELDS)
    update = validation.parse_config_update(body)
    return http_response(200, session_metadata(sessions_http.update_settings(session_id, update, owner, now_ms)))


def _delete(event: Event, now_ms: int) -> Response:
    owner = user_id(event)
    sessions_http.end(_session_id(event), owner, now_ms)
    return http_response(204)


def _transcript(event: Event, _now_ms: int) -> Response:
    """The owner's transcript as a document to save (``Content-Disposition: attachment``, named after the session
    and the language)."""
    owner = user_id(event)
    query = event.get("queryStringParameters")
    query = query if isinstance(query, dict) else {}
    language, fmt = query.get(wire.TRANSCRIPT_LANGUAGE), query.get(wire.TRANSCRIPT_FORMAT)
    session_id = _session_id(event)
    content_type, document = transcripts.read_transcript(session_id, owner, language, fmt)
    name = f"{session_id}.{language}.{fmt}"
    return {
        "statusCode": 200,
        "headers": {"content-type": content_type, "content-disposition": f'attachment; filename="{name}"'},
        "body": document,
    }


def _delete_transcript(event: Event, _now_ms: int) -> Response:
    transcripts.delete_transcript(_session_id(event), user_id(event))
    return http_response(204)


def _health(_event: Event, _now_ms: int) -> Response:
    return http_response(200, dict(http_api.HEALTH_BODY))


# Route key (``http_api.HttpRoute.key``) -> what answers it.
ROUTES: dict[str, Callable[[Event, int], Response]] = {
    http_api.CREATE_SESSION.key: _create,
    http_api.GET_SESSION.key: _read,
    http_api.UPDATE_SESSION.key: _update,
    http_api.DELETE_SESSION.key: _delete,
    http_api.GET_TRANSCRIPT.key: _transcript,
    http_api.DELETE_TRANSCRIPT.key: _delete_transcript,
    http_api.HEALTH.key: _health,
}


@http_handler
def handler(event: Event) -> Response:
    route_key = event.get("routeKey")
    route = ROUTES.get(route_key) if isinstance(route_key, str) else None
    if route is None:
        raise ServiceError(
            ErrorCode.UNKNOWN_ACTION,
            f"route must be one of {', '.join(ROUTES)}, got {validation.shown(route_key)}",
        )
    return route(event, messages.now_ms())


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
