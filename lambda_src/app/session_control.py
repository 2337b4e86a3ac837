"""What only a session's speaker may do (change its configuration and broadcast state, read its status, end it), and the
sweeper that ends sessions nobody ends (a dropped speaker's window passed, or the lifetime is over),
finishes dismissing the listeners of ended ones, and counts out listeners whose ``$disconnect`` was lost.

The speaker is the session's current ``speakerConnectionId``; every write re-checks that in its condition,
so a stale lookup can never let another connection act as the speaker.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lambda_src import runtime
from lambda_src.adapters.repositories.connections import ROW_LIFETIME_SECONDS
from lambda_src.adapters.repositories.dynamodb import TransactItem
from lambda_src.app import connections, fanout, rate_limits, speaker_status
from lambda_src.contract import errors, limits, wire
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.model.broadcast import BroadcastChange, BroadcastState
from lambda_src.model.caller import Caller
from lambda_src.model.partial_results import PartialResultUpdate
from lambda_src.model.session import Session
from lambda_src.platform import metrics
from lambda_src.platform.log import SESSION_ID_KEY, logger, session_concerned
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
    by_language = speaker_status.listeners_by_language(session_id)
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
        runtime.sessions().end_by_speaker(
            session_id, connection_id, reason, now_ms, _no_longer_active(caller.user_id, session_id, now_ms)
        )
        metrics.session_ended(reason)
    except ServiceError as refused:
        ended = runtime.sessions().get(session_id, None) if refused.code is ErrorCode.SESSION_ENDED else None
        if ended is None or ended.speaker_connection_id != connection_id:
            raise
        reason = ended.end_reason or reason
    _dismiss_listeners(session_id, reason, now_ms)
    return messages.session_ended(session_id, reason, now_ms)


def _no_longer_active(user_id: str | None, session_id: str, now_ms: int) -> list[TransactItem]:
    """What the write that ends a session also does: take it out of its speaker's active sessions. (A speaker
    connection always carries its user id; without one there is no speaker's item to name, and a creation
    at the limit forgets the ended session itself.)"""
    return [rate_limits.session_over(user_id, session_id, now_ms // 1000)] if user_id else []


def _dismiss_listeners(session_id: str, reason: str, now_ms: int, what: str = "session ended") -> fanout.FanoutResult:
    """Tell an ended session's listeners and close their connections. Each close brings that listener's
    ``$disconnect``, which removes its row and counts it out; one that vanished already (410, past its
    handshake) is counted out here. The cost to the caller grows with the audience only by pages of the
    listener index. Whoever this misses (a failure, a handshake still completing) the sweeper dismisses
    on its next pass: the ended session stays in its index while listeners are attached."""
    result = fanout.notify_listeners(
        session_id,
        messages.session_ended(session_id, reason, now_ms),
        close=True,
        on_gone=connections.count_out_if_vanished,
    )
    logger.info(what, extra={"session_id": session_id, "reason": reason, "listeners": len(result.listeners)})
    return result


TimeLeft = Callable[[], float]


def sweep(now_ms: int, time_left: TimeLeft | None = None) -> list[tuple[str, str]]:
    """One pass of the sweeper over its index; (id, reason) of each session it ended.

    Due sessions first: an active one whose speaker's resume window or lifetime is over is ended; an ended
    one still in the index has its remaining listeners dismissed again. Then the gauges, and the periodic
    ``sessionStatus`` to every active session's connected speaker (``speaker_status.push_periodic``). Then
    this pass's share of the other sessions (a tenth each minute: every session once per
    ``RECONCILE_PERIOD_MINUTES``) has its listeners probed, and those whose connection is gone without a
    ``$disconnect`` are counted out; no probe is started once fewer than ``RECONCILE_RESERVE_SECONDS`` of
    ``time_left()`` remain. One session's failure never keeps the others from being swept.
    """
    now_s = now_ms // 1000
    due: list[tuple[str, int]] = []
    to_probe: list[str] = []
    indexed: list[str] = []
    for session_id, sweep_at_s in runtime.sessions().sweep_index():
        indexed.append(session_id)
        if sweep_at_s <= now_s:
            due.append((session_id, sweep_at_s))
        elif reconcile_round(session_id) == reconcile_round_at(now_s):
            to_probe.append(session_id)
    ended: list[tuple[str, str]] = []
    for session_id, sweep_at_s in due:
        reason = _for_one_session(session_id, "could not sweep a session", _sweep_one, session_id, sweep_at_s, now_ms)
        if reason is not None:
            ended.append((session_id, reason))
    # Once the due sessions are ended; before the probes, which may run out of time.
    active = _publish_gauges(indexed)
    speaker_status.push_periodic(active, now_ms, time_left)
    random.shuffle(to_probe)  # so that, when time runs short, no session is always the one left out
    for probed, session_id in enumerate(to_probe):
        if time_left is not None and time_left() < limits.RECONCILE_RESERVE_SECONDS:
            logger.warning(
                "sweep out of time: sessions left to a later round",
                extra={"sessions_not_probed": len(to_probe) - probed},
            )
            break
        _for_one_session(session_id, "could not probe a session's listeners", _probe_listeners, session_id)
    return ended


def _for_one_session(session_id: str, failure: str, work: Callable[..., _T], *args: Any) -> _T | None:
    """``work(*args)`` for one session, with its id on every log line; a failure is logged and is None."""
    try:
        with logger.append_context_keys(**{SESSION_ID_KEY: session_id}):
            return work(*args)
    except Exception:  # one session's failure must not keep the others from being swept
        logger.exception(failure, extra={"session_id": session_id})
        return None


def reconcile_round(session_id: str) -> int:
    """Which of the sweeps of a reconciliation period probes this session's listeners (a stable hash, the
    same in every process, unlike Python's salted ``hash``)."""
    return zlib.crc32(session_id.encode("utf-8")) % _SWEEPS_PER_RECONCILE_PERIOD


def reconcile_round_at(now_s: int) -> int:
    """Which sweep of the reconciliation period runs at ``now_s``."""
    return now_s // limits.SWEEP_INTERVAL_SECONDS % _SWEEPS_PER_RECONCILE_PERIOD


_SWEEPS_PER_RECONCILE_PERIOD = max(1, limits.RECONCILE_PERIOD_MINUTES // limits.SWEEP_INTERVAL_MINUTES)


def _sweep_one(session_id: str, sweep_at_s: int, now_ms: int) -> str | None:
    """End one due session; its reason, or None when it is no longer due or had ended already (then its
    remaining listeners are dismissed)."""
    sessions = runtime.sessions()
    session = sessions.get(session_id, None)
    if session is None:
        return None
    if not session.is_active:
        _dismiss_remaining_listeners(session, sweep_at_s, now_ms)
        return None
    reason = _sweep_reason(session, now_ms // 1000)
    no_longer_active = _no_longer_active(session.speaker_user_id, session_id, now_ms)
    if not sessions.end_if_due(session_id, sweep_at_s, reason, now_ms, no_longer_active):
        return None  # it changed since the index was read (e.g. the speaker resumed)
    metrics.session_ended(reason)
    if session.speaker_connected:
        fanout.post_quietly(session.speaker_connection_id, messages.session_ended(session_id, reason, now_ms))
    _dismiss_listeners(session_id, reason, now_ms)
    return reason


def _dismiss_remaining_listeners(session: Session, sweep_at_s: int, now_ms: int) -> None:
    """An ended session came due again: dismiss the listeners still attached to it (a dismissal that
    failed or was never made, a handshake that was still completing, a ``$disconnect`` that gave up), and
    look again one sweep interval later; with none left, or once every row's own lifetime since the end is
    over, take it out of the index."""
    reason = session.end_reason or wire.EXPIRED
    remaining = _dismiss_listeners(session.session_id, reason, now_ms, "ended session revisited").listeners
    rows_outlived = (session.ended_at_ms or 0) // 1000 + ROW_LIFETIME_SECONDS <= now_ms // 1000
    revisit_s = now_ms // 1000 + limits.SWEEP_INTERVAL_SECONDS if remaining and not rows_outlived else None
    runtime.sessions().revisit_ended(session.session_id, sweep_at_s, revisit_s)
    if remaining and rows_outlived:
        logger.warning(
            "an ended session's listener rows outlived their lifetime; left to their TTL",
            extra={"session_id": session.session_id, "listeners": len(remaining)},
        )


def _probe_listeners(session_id: str) -> None:
    """Ask API Gateway about each listener of the session; one gone without its ``$disconnect`` (and past
    its handshake) is counted out, once."""
    fanout.probe_listeners(session_id, on_gone=connections.count_out_if_vanished)


def _sweep_reason(session: Session, now_s: int) -> str:
    grace_over = session.speaker_grace_ends_at_s is not None and session.speaker_grace_ends_at_s <= now_s
    return wire.SPEAKER_TIMEOUT if grace_over else wire.EXPIRED


def _publish_gauges(indexed: list[str]) -> list[Session]:
    """``ActiveSessions`` and ``ConnectedListeners`` from the indexed sessions' items (one BatchGetItem per
    100); a read that fails publishes neither this minute (a gap, never a wrong level). The active sessions
    (whose speakers then get their periodic status), none when the read failed."""
    try:
        active = runtime.sessions().active_sessions(indexed)
    except Exception:
        logger.exception("gauges not published: the sessions' activity could not be read")
        return []
    metrics.gauges(len(active), sum(session.listener_count for session in active))
    return active
