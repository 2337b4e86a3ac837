"""What the routes do, independent of how the request arrived (query string on connect, or a message).

Every write is a single conditional request or transaction, so a refused request writes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from lambda_src import limits, messages, runtime, settings
from lambda_src.errors import ErrorCode, ServiceError
from lambda_src.repositories import dynamodb
from lambda_src.repositories.connections import ROLE_LISTENER, ROLE_SPEAKER, Connection
from lambda_src.repositories.sessions import Session, SessionIdTaken
from lambda_src.session_ids import new_session_id
from lambda_src.validation import CreateSessionRequest, JoinSessionRequest

_log = logging.getLogger(__name__)


def require_speaker(user_id: str | None) -> str:
    """Session creation needs the user id the authorizer put in the request context."""
    if not user_id:
        raise ServiceError(ErrorCode.UNAUTHORIZED, "creating a session needs a valid speaker token (token parameter)")
    return user_id


def create_session(
    request: CreateSessionRequest,
    *,
    connection_id: str,
    connected_at_ms: int,
    user_id: str,
    now_ms: int,
    on_connect: bool,
) -> dict[str, Any]:
    """Create a session owned by ``user_id`` with ``connection_id`` as its speaker; return ``sessionCreated``.

    On connect, the speaker's row is written with the session and carries the message for the welcome
    function to deliver after the handshake; as a message, the existing row is attached and the message is
    the route's reply.
    """
    config = settings.load()
    connections = runtime.connections()
    for _attempt in range(limits.SESSION_ID_ATTEMPTS):
        session = Session(
            session_id=new_session_id(),
            speaker_connection_id=connection_id,
            speaker_user_id=user_id,
            source_language=request.source_language,
            quality_tier=request.quality_tier,
            created_at_ms=now_ms,
            expires_at_s=now_ms // 1000 + config.session_lifetime_seconds,
            config=request.config,
        )
        created = messages.session_created(session, connection_id, now_ms)
        if on_connect:
            speaker_row = connections.put_item(
                Connection(
                    connection_id=connection_id,
                    connected_at_ms=connected_at_ms,
                    role=ROLE_SPEAKER,
                    user_id=user_id,
                    session_id=session.session_id,
                    welcome=messages.encode(created),
                )
            )
        else:
            speaker_row = connections.attach_item(connection_id, session.session_id, ROLE_SPEAKER)
        try:
            runtime.sessions().create(session, [speaker_row])
        except SessionIdTaken:
            _log.info("session id collision; drawing another")
            continue
        return created
    raise ServiceError(
        ErrorCode.SERVICE_UNAVAILABLE,
        "could not allocate a session id; retry shortly",
        retry_after=dynamodb.RETRY_AFTER_SECONDS,
    )


def join_session(
    request: JoinSessionRequest,
    *,
    connection_id: str,
    connected_at_ms: int,
    user_id: str | None,
    now_ms: int,
    on_connect: bool,
) -> dict[str, Any]:
    """Add a listener to a live session in one transaction (its row, and the count under the cap)."""
    config = settings.load()
    sessions = runtime.sessions()
    now_s = now_ms // 1000
    session = sessions.get(request.session_id, now_s)
    if session is None:
        raise ServiceError(ErrorCode.SESSION_NOT_FOUND, f"no session {request.session_id}", field="sessionId")
    joined = messages.session_joined(
        session.session_id, session.source_language, request.target_language, connection_id, now_ms
    )
    connections = runtime.connections()
    if on_connect:
        listener_row = connections.put_item(
            Connection(
                connection_id=connection_id,
                connected_at_ms=connected_at_ms,
                role=ROLE_LISTENER,
                user_id=user_id,
                session_id=session.session_id,
                target_language=request.target_language,
                welcome=messages.encode(joined),
            )
        )
    else:
        listener_row = connections.attach_item(
            connection_id, session.session_id, ROLE_LISTENER, request.target_language
        )
    try:
        dynamodb.transact([sessions.add_listener_item(session.session_id, now_s, config.max_listeners), listener_row])
    except ClientError as error:
        dynamodb.unavailable_if_throttled(error)
        reasons = dynamodb.cancellation_reasons(error)
        if reasons and reasons[0] == "ConditionalCheckFailed":
            old = error.response["CancellationReasons"][0].get("Item")
            raise sessions.join_refusal(old, session.session_id, now_s) from error
        if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
            raise ServiceError(
                ErrorCode.FORBIDDEN,
                "this connection already belongs to a session; open a new connection to join another",
            ) from error
        raise
    return joined


def disconnect(connection_id: str) -> None:
    """Forget a closed connection; a listener's departure is counted exactly once."""
    connections = runtime.connections()
    connection = connections.get(connection_id)
    if connection is None:
        return
    if connection.role != ROLE_LISTENER or connection.session_id is None:
        connections.delete(connection_id)
        return
    try:
        dynamodb.transact(
            [
                connections.delete_item(connection_id),
                runtime.sessions().remove_listener_item(connection.session_id),
            ]
        )
    except ClientError as error:
        dynamodb.unavailable_if_throttled(error)
        reasons = dynamodb.cancellation_reasons(error)
        if reasons[:1] == ["ConditionalCheckFailed"]:
            return  # another call removed the row first and counted the departure
        if reasons[1:2] == ["ConditionalCheckFailed"]:
            connections.delete(connection_id)  # the session is gone: nothing to count
            return
        raise
