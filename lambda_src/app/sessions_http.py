"""The HTTP session API's use cases (decision record 0037): create a session with no connection, read it, change its
partial-result settings and end it, as its owner: the user id of the verified token, with no connection involved.

Creation is ``createSession``'s own (:func:`connections.create_session_speaker_away`); changing the settings and
ending follow ``updateSessionConfig`` and ``endSession``, their writes conditioned on the owner instead of the
speaker's connection. Every write is one conditional request or transaction, so a refusal writes nothing.
"""

from __future__ import annotations

from lambda_src import runtime
from lambda_src.app import connections, fanout, seats, speaker
from lambda_src.contract import errors, wire
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.model.partial_results import PartialResultUpdate
from lambda_src.model.session import Session
from lambda_src.platform import metrics
from lambda_src.platform.log import logger, session_concerned
from lambda_src.protocol import messages
from lambda_src.protocol.validation import CreateSessionRequest


def create(request: CreateSessionRequest, user_id: str, now_ms: int) -> Session:
    """``POST /sessions``: the session, its speaker away until the owner's connection takes it over."""
    return connections.create_session_speaker_away(request, user_id, now_ms)


def read(session_id: str, now_ms: int) -> Session:
    """``GET /sessions/{id}``: the session, ended or not, with its listener count (its seats', read after it, when
    it has seat shards); refused when there is none or it expired."""
    return seats.counted(_read(session_id, now_ms))


def _read(session_id: str, now_ms: int) -> Session:
    session_concerned(session_id)
    session = runtime.sessions().get(session_id, now_ms // 1000)
    if session is None:
        raise errors.session_not_found(session_id)
    return session


def update_settings(session_id: str, update: PartialResultUpdate, user_id: str, now_ms: int) -> Session:
    """``PATCH /sessions/{id}``: the owner changes the partial-result settings of its live session (validated as
    ``updateSessionConfig`` validates them); the session as it now is."""
    session_concerned(session_id)
    session = runtime.sessions().update_config_as_owner(session_id, user_id, update, now_ms // 1000)
    fields = sorted(field.stored for field in update.changes())
    logger.info("session configuration updated", extra={"session_id": session_id, "fields": fields})
    return seats.counted(session)


def end(session_id: str, user_id: str, now_ms: int) -> None:
    """``DELETE /sessions/{id}``: the owner ends its session as ``endSession`` does (every listener told,
    disconnected and forgotten; a connected speaker told ``sessionEnded``, as the sweeper tells it).

    Repeating it is safe, as repeating ``endSession`` is: an ended session's remaining listeners are dismissed
    again, so a retry after ``SERVICE_UNAVAILABLE`` finishes the job."""
    session = _read(session_id, now_ms)
    if session.speaker_user_id != user_id:
        raise errors.another_speakers(session_id)
    reason = session.end_reason or wire.ENDED_BY_SPEAKER
    if session.is_active:
        try:
            runtime.sessions().end_by_owner(
                session_id,
                user_id,
                reason,
                now_ms,
                session.seating,
                speaker.no_longer_active(user_id, session_id, now_ms),
            )
        except ServiceError as refused:
            if refused.code is not ErrorCode.SESSION_ENDED:
                raise
            # Ended meanwhile (by its speaker, or the sweeper): finish dismissing its listeners, as a repeat does.
            ended = runtime.sessions().get(session_id, None)
            reason = (ended.end_reason if ended is not None else None) or reason
        else:
            metrics.session_ended(reason)
            if session.speaker_connected:
                fanout.post_quietly(session.speaker_connection_id, messages.session_ended(session_id, reason, now_ms))
    speaker.dismiss_listeners(session_id, reason, now_ms, seating=session.seating)
