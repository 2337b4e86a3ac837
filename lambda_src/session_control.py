"""What only a session's speaker may do (change its configuration, read its status, end it), and the
sweeper that ends sessions nobody ends: a dropped speaker's window passed, or the lifetime is over.

The speaker is the session's current ``speakerConnectionId``; every write re-checks that in its condition,
so a stale lookup can never let another connection act as the speaker.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

from lambda_src import fanout, messages, metrics, runtime, service, validation
from lambda_src.errors import ErrorCode, ServiceError
from lambda_src.log import SESSION_ID_KEY, logger, session_concerned
from lambda_src.repositories.sessions import Session


def speaker_session_id(connection_id: str, body: Mapping[str, Any]) -> str:
    """The session a speaker action is about: the message's ``sessionId`` when given (saves a lookup),
    otherwise the session this connection belongs to."""
    if validation.SESSION_ID in body:
        session_id = validation.parse_session_id(body[validation.SESSION_ID])
    else:
        session_id = runtime.connections().session_of(connection_id)
    if session_id is None:
        raise ServiceError(ErrorCode.FORBIDDEN, "only a session's speaker may do this; this connection has no session")
    session_concerned(session_id)
    return session_id


def update_config(connection_id: str, body: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """Change the partial-result settings mid-session (validated as at creation); the full new config."""
    changes = validation.parse_config_update(body)
    session_id = speaker_session_id(connection_id, body)
    session = runtime.sessions().update_config(session_id, connection_id, changes, now_ms // 1000)
    logger.info("session configuration updated", extra={"session_id": session_id, "fields": sorted(changes)})
    return messages.session_config_updated(session, now_ms)


def session_status(connection_id: str, body: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """Listener count (the counter), listeners per target language (the index), config and age."""
    session_id = speaker_session_id(connection_id, body)
    session = runtime.sessions().get(session_id, now_ms // 1000)
    if session is None:
        raise ServiceError(ErrorCode.SESSION_NOT_FOUND, f"no session {session_id}", field="sessionId")
    if session.speaker_connection_id != connection_id:
        raise ServiceError(ErrorCode.FORBIDDEN, f"only the speaker of session {session_id} may do this", field="sessionId")
    by_language = Counter(
        language for page in runtime.connections().listener_pages(session_id) for _connection, language in page
    )
    return messages.session_status(session, dict(sorted(by_language.items())), now_ms)


def end_session(connection_id: str, body: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """End the session for good: every listener is told, disconnected and forgotten.

    Repeating it is safe: the speaker of an ended session gets ``sessionEnded`` again, and any listener a
    failed earlier attempt did not reach is dismissed now (so a retry after SERVICE_UNAVAILABLE finishes
    the job).
    """
    session_id = speaker_session_id(connection_id, body)
    reason = messages.ENDED_BY_SPEAKER
    try:
        runtime.sessions().end_by_speaker(session_id, connection_id, reason, now_ms)
        metrics.session_ended(reason)
    except ServiceError as refused:
        ended = runtime.sessions().get(session_id, None) if refused.code is ErrorCode.SESSION_ENDED else None
        if ended is None or ended.speaker_connection_id != connection_id:
            raise
        reason = ended.end_reason or reason
    _dismiss_listeners(session_id, reason, now_ms)
    return messages.session_ended(session_id, reason, now_ms)


def _dismiss_listeners(session_id: str, reason: str, now_ms: int) -> None:
    """Tell an ended session's listeners and close their connections. Each close brings that listener's
    ``$disconnect``, which removes its row and counts it out; one that vanished already (410) is counted
    out here. The cost to the caller grows with the audience only by pages of the listener index."""
    result = fanout.notify_listeners(
        session_id, messages.session_ended(session_id, reason, now_ms), close=True, on_gone=service.disconnect
    )
    logger.info("session ended", extra={"session_id": session_id, "reason": reason,
                                        "listeners": len(result.listeners)})


def sweep(now_ms: int) -> list[tuple[str, str]]:
    """End every active session whose speaker's resume window or lifetime is over; (id, reason) of each."""
    sessions = runtime.sessions()
    now_s = now_ms // 1000
    ended: list[tuple[str, str]] = []
    for session_id, sweep_at_s in sessions.due_for_sweep(now_s):
        try:
            with logger.append_context_keys(**{SESSION_ID_KEY: session_id}):
                reason = _sweep_one(session_id, sweep_at_s, now_ms)
        except Exception:  # one session's failure must not keep the others from ending
            logger.exception("could not sweep a session", extra={"session_id": session_id})
            continue
        if reason is not None:
            ended.append((session_id, reason))
    return ended


def _sweep_one(session_id: str, sweep_at_s: int, now_ms: int) -> str | None:
    """End one due session; its reason, or None when it is no longer due."""
    sessions = runtime.sessions()
    session = sessions.get(session_id, None)
    if session is None or not session.is_active:
        return None
    reason = _sweep_reason(session, now_ms // 1000)
    if sessions.end_if_due(session_id, sweep_at_s, reason, now_ms) is None:
        return None  # it changed since the index was read (e.g. the speaker resumed)
    metrics.session_ended(reason)
    _dismiss_listeners(session_id, reason, now_ms)
    if session.speaker_connected:
        fanout.post_quietly(session.speaker_connection_id, messages.session_ended(session_id, reason, now_ms))
    return reason


def _sweep_reason(session: Session, now_s: int) -> str:
    grace_over = session.speaker_grace_ends_at_s is not None and session.speaker_grace_ends_at_s <= now_s
    return messages.SPEAKER_TIMEOUT if grace_over else messages.EXPIRED
