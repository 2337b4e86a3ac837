"""The bodies the HTTP session API answers with (decision record 0037): ``SessionMetadata``, and the one error shape
(the WebSocket ``error`` message without ``type`` and ``timestamp``)."""

from __future__ import annotations

from typing import Any

from lambda_src.contract import http_api, wire
from lambda_src.contract.errors import ServiceError
from lambda_src.model.session import Session


def session_status(session: Session) -> str:
    """``active``, ``paused`` (the speaker paused its broadcast) or ``ended``: derived, never stored."""
    if not session.is_active:
        return http_api.STATUS_ENDED
    return http_api.STATUS_PAUSED if session.broadcast.is_paused else http_api.STATUS_ACTIVE


def session_metadata(session: Session) -> dict[str, Any]:
    """``SessionMetadata``: what the speaker app reads of its session, with the partial-result settings.

    ``updatedAt`` is the latest change the item records the time of: its creation, its speaker's latest
    connection, its end (a settings or broadcast change records no time of its own)."""
    updated_at = max(session.created_at_ms, session.speaker_connected_at_ms or 0, session.ended_at_ms or 0)
    return {
        wire.SESSION_ID: session.session_id,
        http_api.SPEAKER_ID: session.speaker_user_id,
        wire.SOURCE_LANGUAGE: session.source_language,
        wire.QUALITY_TIER: session.quality_tier,
        http_api.STATUS: session_status(session),
        wire.LISTENER_COUNT: session.listener_count,
        http_api.CREATED_AT: session.created_at_ms,
        http_api.UPDATED_AT: updated_at,
        **session.config.to_message(),
    }


def error_body(error: ServiceError) -> dict[str, Any]:
    """``{code, message, field?, retryAfter?}`` and the error's details (``activeSessions``): the ``error``
    message's fields but its ``type`` and ``timestamp``, answered with the code's status."""
    body = error.to_message(0)
    del body["type"], body["timestamp"]
    return body
