"""What only a session's speaker may do: change its configuration and broadcast state, read its status, end it.

The speaker is the session's current ``speakerConnectionId``; every write re-checks that in its condition,
so a stale lookup can never let another connection act as the speaker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lambda_src import runtime
from lambda_src.adapters.repositories.dynamodb import TransactItem
from lambda_src.app import connections, fanout, rate_limits, seats, speaker_status
from lambda_src.contract import errors, wire
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.model.broadcast import BroadcastChange, BroadcastState
from lambda_src.model.caller import Caller
from lambda_src.model.partial_results import PartialResultUpdate
from lambda_src.model.session import Seating
from lambda_src.platform import metrics
from lambda_src.platform.log import logger, session_concerned
from lambda_src.protocol import messages, validation

_T = TypeVar("_T")
_Asked = TypeVar("_Asked")


@dataclass(frozen=True)
class SpeakerRequest(Generic[_Asked]):
    """A request only a session's speaker may make: the session it is about, and what it asks."""

    session_id: str
    asked: _Asked


def of_the_speaker(
    parse: Callable[[Mapping[str, Any]], _Asked],
) -> Callable[[Mapping[str, Any], Caller], SpeakerRequest[_Asked]]:
    """How a speaker action's message is read: what it asks (``parse``, validated first), then the session it
    is about: the message's ``sessionId`` when given (saves a lookup), otherwise the session the caller's
    connection belongs to. Refused when there is none; every action then acts only if the caller's connection
    is that session's speaker (its write's condition, or the status read's check)."""

    def read(body: Mapping[str, Any], caller: Caller) -> SpeakerRequest[_Asked]:
        asked = parse(body)
        session_id: str | None
        if wire.SESSION_ID in body:
            session_id = validation.parse_session_id(body[wire.SESSION_ID])
        else:
            session_id = runtime.connections().session_of(caller.connection_id)
        if session_id is None:
            raise ServiceError(
                ErrorCode.FORBIDDEN, "only a session's speaker may do this; this connection has no session"
            )
        session_concerned(session_id)
        return SpeakerRequest(session_id, asked)

    return read


def update_config(request: SpeakerRequest[PartialResultUpdate], caller: Caller) -> dict[str, Any]:
    """Change the partial-result settings mid-session (validated as at creation); the full new config."""
    session_id, update = request.session_id, request.asked
    session = runtime.sessions().update_config(session_id, caller.connection_id, update, caller.now_s)
    fields = sorted(field.stored for field in update.changes())
    logger.info("session configuration updated", extra={"session_id": session_id, "fields": fields})
    return messages.session_config_updated(session, caller.now_ms)


# What listeners are told when a broadcast action changed the state: (session id, new state, time) -> notice.
Notice = Callable[[str, BroadcastState, int], dict[str, Any]]


@dataclass(frozen=True)
class BroadcastAction:
    """A broadcast action as asked: what it sets, and the notice listeners get when that changed the state."""

    change: BroadcastChange
    notice: Notice


def broadcast_action(
    parse: Callable[[Mapping[str, Any]], BroadcastChange], notice: Notice
) -> Callable[[Mapping[str, Any], Caller], SpeakerRequest[BroadcastAction]]:
    """How a broadcast action's message is read: what it sets (``parse``), for the speaker's session."""
    return of_the_speaker(lambda fields: BroadcastAction(parse(fields), notice))


def setting(change: BroadcastChange) -> Callable[[Mapping[str, Any]], BroadcastChange]:
    """The parser of an action that always sets the same (``pauseBroadcast``: paused) and takes no field."""

    def parse(fields: Mapping[str, Any]) -> BroadcastChange:
        validation.parse_no_fields(fields)
        return change

    return parse


def event_notice(message_type: str) -> Notice:
    """A notice that says only what happened (``broadcastPaused``...)."""
    return lambda session_id, _state, timestamp_ms: messages.session_event(message_type, session_id, timestamp_ms)


def change_broadcast(request: SpeakerRequest[BroadcastAction], caller: Caller) -> dict[str, Any]:
    """Set the broadcast state as the action asks (one conditional write, which returns the state before); when
    that changed anything, each listener is told the action's notice. The speaker gets the whole state either way.

    When the write was repeated after its first attempt was applied and the answer lost, the state before is
    the one that attempt set, which tells nothing: the listeners are told then too. A lost notice would leave
    them wrong until the next change; a notice repeated (the attempt had in fact changed nothing) says again
    what is true."""
    session_id, action, now_ms = request.session_id, request.asked, caller.now_ms
    written = runtime.sessions().update_broadcast(session_id, caller.connection_id, action.change, now_ms // 1000)
    before = written.before.broadcast
    state = before.updated(action.change)
    if state != before or written.repeated:
        logger.info("broadcast state changed", extra={"session_id": session_id, **state.to_message()})
        connections.tell_listeners_quietly(session_id, action.notice(session_id, state, now_ms))
    return messages.broadcast_state(session_id, state, now_ms)


def session_status(request: SpeakerRequest[None], caller: Caller) -> dict[str, Any]:
    """Listeners per target language (the index) and their count (their sum: of the same moment), config and age."""
    session_id, connection_id, now_ms = request.session_id, caller.connection_id, caller.now_ms
    session = runtime.sessions().get(session_id, now_ms // 1000)
    if session is None:
        raise errors.session_not_found(session_id)
    if session.speaker_connection_id != connection_id:
        raise errors.not_the_speaker(session_id)
    by_language = speaker_status.listeners_by_language(session)
    return speaker_status.status_message(session, by_language, now_ms, wire.STATUS_REQUESTED)


def end_session(request: SpeakerRequest[None], caller: Caller) -> dict[str, Any]:
    """End the session for good: every listener is told, disconnected and forgotten.

    Repeating it is safe: the speaker of an ended session gets ``sessionEnded`` again, and any listener a
    failed earlier attempt did not reach is dismissed now (so a retry after SERVICE_UNAVAILABLE finishes
    the job).
    """
    session_id, connection_id, now_ms = request.session_id, caller.connection_id, caller.now_ms
    reason = wire.ENDED_BY_SPEAKER
    try:
        seating = runtime.sessions().end_by_speaker(
            session_id, connection_id, reason, now_ms, no_longer_active(caller.user_id, session_id, now_ms)
        )
        metrics.session_ended(reason)
    except ServiceError as refused:
        ended = runtime.sessions().get(session_id, None) if refused.code is ErrorCode.SESSION_ENDED else None
        if ended is None or ended.speaker_connection_id != connection_id:
            raise
        reason, seating = ended.end_reason or reason, ended.seating
    dismiss_listeners(session_id, reason, now_ms, seating=seating)
    return messages.session_ended(session_id, reason, now_ms)


def no_longer_active(user_id: str | None, session_id: str, now_ms: int) -> list[TransactItem]:
    """What the write that ends a session also does: take it out of its speaker's active sessions. (A speaker
    connection always carries its user id; without one there is no speaker's item to name, and a creation
    at the limit forgets the ended session itself.)"""
    return [rate_limits.session_over(user_id, session_id, now_ms // 1000)] if user_id else []


def dismiss_listeners(
    session_id: str, reason: str, now_ms: int, what: str = "session ended", *, seating: Seating
) -> fanout.FanoutResult:
    """Tell an ended session's listeners and close their connections. Each close brings that listener's
    ``$disconnect``, which removes its row and counts it out; one that vanished already (410, past its
    handshake) is counted out here. The cost to the caller grows with the audience only by pages of the
    listener index; an audience over 500 on seat shards is handed to the fan-out function
    (``fanout.notify_listeners``), whose workers post and close, and the caller does not wait for them. Whoever
    this misses (a failure, a handshake still completing, a lost invocation) the sweeper dismisses on its next
    pass: the ended session stays in its index while listeners are attached.

    A session with seat shards (``seating``) first has its seats closed, so that no join takes one from then on; a
    join that took one before is a listener this dismissal or the sweeper's next one reaches."""
    seats.close(session_id, seating)
    result = fanout.notify_listeners(
        session_id,
        messages.session_ended(session_id, reason, now_ms),
        close=True,
        on_gone=connections.count_out_if_vanished,
        seating=seating,
    )
    logger.info(what, extra={"session_id": session_id, "reason": reason, "listeners": result.reached})
    return result
