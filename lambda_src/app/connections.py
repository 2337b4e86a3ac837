"""What connections do, independent of how the request arrived (query string on connect, or a message):
create, join, leave, refresh, resume, heartbeat and disconnect.

Every write is a single conditional request or transaction, so a refused request writes nothing, and a
listener is counted in and out exactly once whatever the interleaving.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from lambda_src import runtime
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.connections import Connection, NotAListener
from lambda_src.adapters.repositories.dynamodb import Guarded, TransactItem
from lambda_src.adapters.repositories.sessions import SessionIdTaken
from lambda_src.app import fanout, rate_limits, seats, voices
from lambda_src.contract import errors, function_settings, limits, telemetry, wire
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.contract.schema import ROLE_LISTENER, ROLE_SPEAKER
from lambda_src.model.caller import Caller
from lambda_src.model.session import Seating, Session, seat_shards_for
from lambda_src.model.session_ids import new_session_id
from lambda_src.platform import metrics
from lambda_src.platform.log import logger, session_concerned
from lambda_src.protocol import messages
from lambda_src.protocol.validation import CreateSessionRequest, JoinSessionRequest, RefreshConnectionRequest


def _row(
    connection_id: str,
    connected_at_ms: int,
    *,
    on_connect: bool,
    role: str,
    session_id: str,
    welcome: dict[str, Any],
    user_id: str | None,
    target_language: str | None = None,
    output: str = wire.DEFAULT_OUTPUT,
    then: tuple[dict[str, Any], ...] = (),
    shard: int | None = None,
) -> Guarded:
    """The connection's row for a transaction: written whole on ``$connect`` (carrying the first message for
    the welcome function, and ``then`` the messages it posts after it), or an existing plain connection attached
    to the session; a listener of a session with seat shards names the ``shard`` it holds. Its condition fails
    only when the connection already belongs to a session."""
    connections = runtime.connections()
    if on_connect:
        item = connections.put_item(
            Connection(
                connection_id=connection_id,
                connected_at_ms=connected_at_ms,
                role=role,
                user_id=user_id,
                session_id=session_id,
                target_language=target_language,
                welcome=messages.encode(welcome),
                welcome_then=tuple(messages.encode(message) for message in then),
                output=output,
                shard=shard,
            )
        )
    else:
        item = connections.attach_item(connection_id, session_id, role, target_language, output, shard)
    return item, _already_in_a_session


def _already_in_a_session(_old: dict[str, Any] | None) -> ServiceError:
    return ServiceError(
        ErrorCode.FORBIDDEN,
        "this connection already belongs to a session; open a new connection for another",
    )


def open_connection(caller: Caller) -> None:
    """Register a plain connection (no session yet), counted against the caller's guards when there are any."""
    connection = Connection(
        connection_id=caller.connection_id, connected_at_ms=caller.connected_at_ms, user_id=caller.user_id
    )
    if not caller.guards:
        runtime.connections().put(connection)
        return
    dynamodb.transact_guarded([(runtime.connections().put_item(connection), _already_in_a_session), *caller.guards])


def create_session(request: CreateSessionRequest, caller: Caller, *, on_connect: bool) -> dict[str, Any]:
    """Create a session owned by the calling speaker with its connection as the speaker; ``sessionCreated``.

    The speaker's row (written whole on ``$connect``, carrying ``sessionCreated`` for the welcome function; or the
    open connection attached) and the caller's guards (e.g. the connection's own rate limit) join the creation's
    transaction (:func:`_create`).
    """
    connection_id, now_ms = caller.connection_id, caller.now_ms

    def speaker_row(session: Session) -> list[Guarded]:
        created = messages.session_created(session, connection_id, now_ms)
        row = _row(
            connection_id,
            caller.connected_at_ms,
            on_connect=on_connect,
            role=ROLE_SPEAKER,
            session_id=session.session_id,
            welcome=created,
            user_id=caller.speaker_user_id,
        )
        return [row]

    session = _create(
        request,
        caller.speaker_user_id,
        now_ms,
        speaker_connection_id=connection_id,
        speaker_row=speaker_row,
        guards=caller.guards,
    )
    runtime.connections().remember_session(connection_id, session.session_id)
    return messages.session_created(session, connection_id, now_ms)


def create_session_speaker_away(request: CreateSessionRequest, user_id: str, now_ms: int) -> Session:
    """Create a session owned by ``user_id`` with no connection (the HTTP API's ``POST /sessions``, decision
    record 0037): it starts with its speaker away, its reconnection window open for ``speakerGraceSeconds``, so
    the owner's first connection takes it over exactly as a resume does, listeners may join it meanwhile (told
    ``speakerReconnected`` when the speaker arrives), and the sweeper ends it when the window closes with no
    speaker (``speakerTimeout``), which frees its place under the active-session limit."""
    grace_ends_at_s = now_ms // 1000 + function_settings.load().speaker_grace_seconds
    return _create(request, user_id, now_ms, speaker_connection_id="", grace_ends_at_s=grace_ends_at_s)


@metrics.timed(telemetry.SESSION_CREATION_LATENCY)
def _create(
    request: CreateSessionRequest,
    user_id: str,
    now_ms: int,
    *,
    speaker_connection_id: str,
    grace_ends_at_s: int | None = None,
    speaker_row: Callable[[Session], Sequence[Guarded]] = lambda _session: (),
    guards: Sequence[Guarded] = (),
) -> Session:
    """The one creation both entry points share: one transaction of the session (only if its id is free), the
    speaker's row for the session drawn (none when created with no connection), the speaker's active sessions
    (under the per-speaker limit), the speaker's creation count and the caller's ``guards``. At the active-session
    limit, the listed sessions are checked once and those that are gone are forgotten, then the creation is tried
    again; refused with the live ones."""
    config = function_settings.load()
    sessions = runtime.sessions()
    now_s = now_ms // 1000
    limit = rate_limits.session_creations(user_id, now_s)
    healed = False
    for _attempt in range(limits.SESSION_ID_ATTEMPTS):
        session = Session(
            session_id=new_session_id(config.session_id_vocabulary),
            speaker_connection_id=speaker_connection_id,
            speaker_user_id=user_id,
            source_language=request.source_language,
            quality_tier=request.quality_tier,
            created_at_ms=now_ms,
            expires_at_s=now_s + config.session_lifetime_seconds,
            config=request.config,
            speaker_grace_ends_at_s=grace_ends_at_s,
            seat_shards=seat_shards_for(config.max_listeners),
        )
        active = rate_limits.active_session(user_id, session.session_id, now_s)
        try:
            dynamodb.transact_guarded([sessions.create_item(session), *speaker_row(session), active, limit, *guards])
        except SessionIdTaken:
            logger.info("session id collision; drawing another")
            continue
        except rate_limits.ActiveSessionLimitReached as full:
            if healed or not _forget_gone_sessions(user_id, full.listed, now_s):
                raise errors.active_session_limit(config.max_active_sessions_per_speaker, full.listed) from None
            healed = True
            continue
        sessions.remember(session)
        session_concerned(session.session_id)
        metrics.session_created()
        return session
    raise ServiceError(
        ErrorCode.SERVICE_UNAVAILABLE,
        "could not allocate a session id; retry shortly",
        retry_after=dynamodb.RETRY_AFTER_SECONDS,
    )


def _forget_gone_sessions(user_id: str, listed: set[str], now_s: int) -> bool:
    """Check the sessions a speaker's active-session item lists, and forget those that are gone (ended,
    expired, or deleted by TTL before the sweeper saw them, so that no end write took them out); whether
    any was. Otherwise the speaker would be locked out by sessions that no longer exist."""
    gone = listed - runtime.sessions().live_ids(listed, user_id, now_s)
    if not gone:
        return False
    logger.info("forgetting gone sessions of a speaker at its active-session limit", extra={"sessions": len(gone)})
    runtime.rate_limits().forget_active_sessions(user_id, gone)
    return True


@metrics.timed(telemetry.LISTENER_JOIN_LATENCY)
def join_session(request: JoinSessionRequest, caller: Caller, *, on_connect: bool) -> dict[str, Any]:
    """Add a listener to a live session in one transaction (its row, with its output choice, the count under the
    cap, the session's join rate and the caller's guards); ``sessionJoined``, then ``audioUnavailable`` when it
    wants audio in a language no voice speaks (on ``$connect`` after the first message; as a message, posted
    before the reply).

    The count with this listener counted in is something the transaction cannot return: on ``$connect`` the
    first message is stored on the row without it and the welcome function fills it in (one read per batch
    of first messages); as a message, the session is read once after the transaction (its seats, when it has
    seat shards: decision record 0040, where the join's transaction takes a seat instead of the session item).
    """
    connection_id, connected_at_ms, now_ms = caller.connection_id, caller.connected_at_ms, caller.now_ms
    user_id, guards = caller.user_id, caller.guards
    session_concerned(request.session_id)
    sessions = runtime.sessions()
    now_s = now_ms // 1000
    facts = sessions.facts(request.session_id, now_s)
    joined = messages.session_joined(
        request.session_id, facts.source_language, facts.quality_tier, request.target_language, connection_id, now_ms
    )
    notice = _audio_notice(request.session_id, request.target_language, request.output, now_ms)

    def listener_row(shard: int | None = None) -> Guarded:
        return _row(
            connection_id,
            connected_at_ms,
            on_connect=on_connect,
            role=ROLE_LISTENER,
            session_id=request.session_id,
            welcome=joined,
            user_id=user_id,
            target_language=request.target_language,
            output=request.output,
            then=() if notice is None else (notice,),
            shard=shard,
        )

    _add_listener(
        request.session_id,
        facts.seating,
        listener_row,
        request.target_language,
        now_s,
        function_settings.load().max_listeners,
        guards,
    )
    if not on_connect:
        _add_listener_count(joined, request.session_id, facts.seating)
        if notice is not None:
            fanout.post_quietly(connection_id, notice)
    return joined


def _audio_notice(session_id: str, target_language: str, output: str, now_ms: int) -> dict[str, Any] | None:
    """``audioUnavailable``, for a listener that wants audio (``output`` audio or both) in a language the
    synthesizer has no voice for (it gets captions only); None otherwise. Told when it joins, changes its language
    or its output: once per choice, never per segment."""
    if output == wire.OUTPUT_CAPTIONS or not voices.cannot_speak(target_language):
        return None
    return messages.audio_unavailable(session_id, target_language, now_ms)


def _add_listener_count(joined: dict[str, Any], session_id: str, seating: Seating) -> None:
    """Give a committed join's ``sessionJoined`` the session's count, read after it (its item; or its seats, one
    BatchGetItem). Should the read fail, the listener has joined all the same: it hears ``sessionJoined`` without
    the count rather than a refusal of a join that happened."""
    sessions = runtime.sessions()
    try:
        if seating.sharded:
            count: int | None = sessions.audiences({session_id: seating})[session_id].listener_count
        else:
            session = sessions.get(session_id, None)
            count = session.listener_count if session is not None else None
    except Exception:
        logger.exception("listener count not read after a join", extra={"session_id": session_id})
        return
    if count is not None:
        joined[wire.LISTENER_COUNT] = count


def _add_listener(
    session_id: str,
    seating: Seating,
    listener_row: Callable[[int | None], Guarded],
    language: str,
    now_s: int,
    cap: int,
    guards: Sequence[Guarded] = (),
) -> None:
    """Count the listener in and write its row (``listener_row(shard)``), atomically, with the session's join rate
    and ``guards``; refused with the reason and nothing written. A session of one shard counts it on its item;
    one with seat shards on one of its seats (:func:`seats.take_seat`)."""
    if seating.sharded:
        seats.take_seat(session_id, seating, listener_row, language, now_s, cap, guards)
    else:
        sessions = runtime.sessions()
        counted_in = (
            sessions.add_listener_item(session_id, now_s, cap),
            lambda old: sessions.refusal(old, session_id, now_s),
        )
        dynamodb.transact_guarded([counted_in, listener_row(None), rate_limits.joins(session_id, now_s), *guards])
    metrics.listener_joined()


def refresh_connection(request: RefreshConnectionRequest, caller: Caller) -> dict[str, Any]:
    """A new connection takes over from one nearing API Gateway's 2-hour limit; the count does not move
    (for a listener without ``previousConnectionId``, or whose old row is gone: it is counted in, under the
    session's join limit, until the old connection closes)."""
    connection_id, now_ms, guards = caller.connection_id, caller.now_ms, caller.guards
    session_concerned(request.session_id)
    session = _live_session(request.session_id, caller.now_s)
    if request.role == ROLE_SPEAKER:
        complete = messages.connection_refresh_complete(session, ROLE_SPEAKER, None, connection_id, now_ms)
        _take_over_speaker(session, caller, complete)
        return complete
    assert request.target_language is not None  # validation requires it of listeners
    complete = messages.connection_refresh_complete(
        session, ROLE_LISTENER, request.target_language, connection_id, now_ms
    )
    target_language = request.target_language

    def row(shard: int | None = None) -> Guarded:
        return _row(
            connection_id,
            caller.connected_at_ms,
            on_connect=True,
            role=ROLE_LISTENER,
            session_id=session.session_id,
            welcome=complete,
            user_id=caller.user_id,
            target_language=target_language,
            output=request.output,
            shard=shard,
        )

    previous = request.previous_connection_id
    if previous and _replace_listener(session, previous, row, target_language, now_ms, guards):
        return complete  # rows swapped, count unchanged: not a join, so not metered as one
    # No old row to take over (none named, or it closed already): counted in like a join, under the session's
    # join limit, and allowed one over the cap.
    _add_listener(
        session.session_id,
        session.seating,
        row,
        target_language,
        now_ms // 1000,
        function_settings.load().max_listeners + 1,
        guards,
    )
    return complete


class _PreviousRowGone(Exception):
    """The listener's old row is not there to take over (it closed already, or was never this session's)."""


def _replace_listener(
    session: Session,
    previous_connection_id: str,
    row: Callable[[int | None], Guarded],
    target_language: str,
    now_ms: int,
    guards: Sequence[Guarded],
) -> bool:
    """Swap the old listener row for the new one with the count unchanged; False when the old row is gone.

    A listener of a session with seat shards keeps its old row's shard: the old row is read to know it, and the
    swap checks that seat open (not the session item), moving its language counters when the new connection
    listens in another language."""
    sessions = runtime.sessions()
    session_id, now_s = session.session_id, now_ms // 1000
    connections = runtime.connections()
    if not session.seating.sharded:
        checked = (sessions.check_live_item(session_id, now_s), lambda old: sessions.refusal(old, session_id, now_s))
        replaced = connections.replace_listener_item(previous_connection_id, session_id)
        new_row = row(None)
    else:
        old_row = connections.get(previous_connection_id)
        if (
            old_row is None
            or old_row.role != ROLE_LISTENER
            or old_row.session_id != session_id
            or old_row.shard is None
            or old_row.target_language is None
            or old_row.index_key is None
        ):
            return False
        moved = (old_row.target_language, target_language)
        seat = sessions.keep_seat_item(session_id, session.seating, old_row.shard, moved)
        checked = (seat, lambda _old: errors.session_ended(session_id))
        replaced = connections.replace_listener_item(previous_connection_id, old_row.index_key, old_row.target_language)
        new_row = row(old_row.shard)
    try:
        dynamodb.transact_guarded([checked, (replaced, lambda _old: _PreviousRowGone()), new_row, *guards])
    except _PreviousRowGone:
        return False
    return True


def resume_session(session_id: str, caller: Caller) -> dict[str, Any]:
    """The owner's new connection becomes the session's speaker: after a drop (listeners are told), or as the
    speaker app's connection to its session (``$connect`` with ``sessionId`` and no ``action``)."""
    session_concerned(session_id)
    session = _live_session(session_id, caller.now_s)
    resumed = messages.session_resumed(session, caller.connection_id, caller.now_ms)
    _take_over_speaker(session, caller, resumed)
    return resumed


def _live_session(session_id: str, now_s: int) -> Session:
    session = runtime.sessions().get(session_id, now_s)
    if session is None:
        raise errors.session_not_found(session_id)
    if not session.is_active:
        raise errors.session_ended(session_id)
    return session


def extended_expiry(session: Session, now_s: int) -> int:
    """When a session whose speaker is still there (it refreshed or resumed at ``now_s``) expires: now + the
    session lifetime, never past the lifetime ceiling counted from its creation, and never earlier than it
    already did."""
    config = function_settings.load()
    ceiling_s = session.created_at_ms // 1000 + config.lifetime_ceiling_seconds
    return max(session.expires_at_s, min(now_s + config.session_lifetime_seconds, ceiling_s))


def _take_over_speaker(session: Session, caller: Caller, welcome: dict[str, Any]) -> None:
    """Move the session's speaker to the caller's connection atomically, so the old connection's close is not
    a drop, and extend the session's life (:func:`extended_expiry`) in the same write; listeners hear
    ``speakerReconnected`` when the speaker had dropped. The new connection's first message is ``welcome``, then
    ``stateRestored`` with the broadcast state of the session as read before the takeover (no request of its
    own)."""
    connection_id, now_ms, owner = caller.connection_id, caller.now_ms, caller.speaker_user_id
    if session.speaker_user_id != owner:
        raise errors.another_speakers(session.session_id)
    sessions = runtime.sessions()
    now_s = now_ms // 1000
    row = _row(
        connection_id,
        caller.connected_at_ms,
        on_connect=True,
        role=ROLE_SPEAKER,
        session_id=session.session_id,
        welcome=welcome,
        user_id=owner,
        then=(messages.state_restored(session.session_id, session.broadcast, now_ms),),
    )
    take_over = (
        sessions.take_over_speaker_item(
            session.session_id, connection_id, owner, now_ms, extended_expiry(session, now_s)
        ),
        lambda old: sessions.refusal(old, session.session_id, now_s, user_id=owner),
    )
    dynamodb.transact_guarded([take_over, row, *caller.guards])
    # Committed: from here nothing may refuse the handshake (no $disconnect would follow a refused one, and
    # the session would show a speaker connection that does not exist).
    if not session.speaker_connected:
        reconnected = messages.session_event("speakerReconnected", session.session_id, now_ms)
        tell_listeners_quietly(session.session_id, reconnected)


def tell_listeners_quietly(session_id: str, message: dict[str, Any]) -> None:
    """Tell the listeners after the caller's write is committed: best effort, so a failure (e.g. the listener
    index read throttled) is logged and never turns the committed operation into a refusal."""
    try:
        fanout.notify_listeners(session_id, message, on_gone=count_out_if_vanished)
    except Exception:
        logger.exception("listeners not told", extra={"session_id": session_id, "message_type": message.get("type")})


def leave_session(caller: Caller) -> dict[str, Any]:
    """A listener leaves its session but keeps its connection; counted out exactly once."""
    connection_id = caller.connection_id
    row = runtime.connections().get(connection_id)
    session_id = _listeners_session(row, "a speaker ends its session with endSession, not leaveSession")
    assert row is not None and row.index_key is not None  # a listener's, attached to a session
    _count_out(row, runtime.connections().detach_item(connection_id, row.index_key))
    return messages.session_event("sessionLeft", session_id, caller.now_ms)


def _listeners_session(connection: Connection | None, to_a_speaker: str) -> str:
    """The session of a listener's connection; refused when the connection has joined none
    (``SESSION_NOT_FOUND``) or is not a listener (``FORBIDDEN``, saying ``to_a_speaker``)."""
    if connection is None or connection.session_id is None:
        raise ServiceError(ErrorCode.SESSION_NOT_FOUND, "this connection has not joined a session")
    session_concerned(connection.session_id)
    if connection.role != ROLE_LISTENER:
        raise ServiceError(ErrorCode.FORBIDDEN, to_a_speaker)
    return connection.session_id


def change_language(target_language: str, caller: Caller) -> dict[str, Any]:
    """A listener switches its target language: one conditional update of its row (it is a listener and still
    attached to a session); the session's count does not move, its listeners by language follow the row. A
    listener holding a seat shard (decision record 0040) is refused by that update, which returns its row: its
    row and its seat's language counters then change in one transaction."""
    try:
        row = runtime.connections().change_language(caller.connection_id, target_language)
    except NotAListener as refused:
        if refused.row is not None and refused.row.role == ROLE_LISTENER and refused.row.shard is not None:
            row = _change_seated_language(refused.row, target_language)
        else:
            _listeners_session(refused.row, "only a listener changes its language; a speaker's is its session's source")
            raise  # (not reached: a row the condition refused is never a listener's attached to a session)
    assert row.session_id is not None  # the condition required it
    session_concerned(row.session_id)
    _tell_audio_unavailable(row, caller)
    return messages.language_changed(row.session_id, target_language, caller.now_ms)


def _change_seated_language(row: Connection, target_language: str) -> Connection:
    """The listener ``row`` (as its refused update returned it), holding a seat shard, listens in ``target_language``
    from now on: its row and its seat's counters of both languages in one transaction (conditional on the row
    being as read: a concurrent change or departure refuses it, and the listener asks again)."""
    assert row.session_id is not None and row.shard is not None and row.target_language is not None
    changed = dataclasses.replace(row, target_language=target_language)
    if row.target_language == target_language:
        return changed
    connections = runtime.connections()
    moved = runtime.sessions().move_language_item(row.session_id, row.shard, (row.target_language, target_language))
    refused = ServiceError(ErrorCode.SERVICE_UNAVAILABLE, "the listener changed meanwhile; retry", retry_after=1)
    dynamodb.transact_guarded(
        [(connections.change_language_item(row, target_language), lambda _old: refused), (moved, lambda _old: refused)]
    )
    return changed


def set_output(output: str, caller: Caller) -> dict[str, Any]:
    """``setOutput``: a listener chooses what it receives from the next segment on (``audio``, ``captions`` or
    ``both``): one conditional update of its row (it is a listener attached to a session); ``outputSet``."""
    try:
        row = runtime.connections().set_output(caller.connection_id, output)
    except NotAListener as refused:
        _listeners_session(refused.row, "only a listener chooses its output; a speaker receives its transcript")
        raise  # (not reached, as in change_language)
    assert row.session_id is not None  # the condition required it
    session_concerned(row.session_id)
    _tell_audio_unavailable(row, caller)
    return messages.output_set(row.session_id, output, caller.now_ms)


def _tell_audio_unavailable(row: Connection, caller: Caller) -> None:
    """Post ``audioUnavailable`` (before the reply) when the listener's row, as just changed, wants audio in a
    language no voice speaks."""
    assert row.session_id is not None and row.target_language is not None  # a listener's row attached to a session
    notice = _audio_notice(row.session_id, row.target_language, row.output, caller.now_ms)
    if notice is not None:
        fanout.post_quietly(caller.connection_id, notice)


def playback(message_type: str, *, paused: bool) -> Callable[[None, Caller], dict[str, Any]]:
    """``pausePlayback`` / ``resumePlayback``: recorded on the listener's row (one conditional update: no
    ``translatedAudio`` is posted to it while paused, and none is owed after; captions go on) and acknowledged
    (``message_type``) to the listener that asked, and to nobody else (the speaker's broadcast state is the
    speaker's)."""

    def record(_request: None, caller: Caller) -> dict[str, Any]:
        try:
            row = runtime.connections().set_playback_paused(caller.connection_id, paused)
        except NotAListener as refused:
            _listeners_session(refused.row, "playback controls are a listener's; a speaker pauses its broadcast")
            raise  # (not reached, as in change_language)
        assert row.session_id is not None  # the condition required it
        session_concerned(row.session_id)
        return messages.session_event(message_type, row.session_id, caller.now_ms)

    return record


def _count_out(row: Connection, row_change: TransactItem) -> None:
    """Remove a listener's row (or detach it) and decrement, only if this call is the one that removed it: the
    session's count, or the count of the seat the row names (and its language's).

    When the session (the seat) is gone or already counted to zero (it ended), only the row change is made.
    """
    assert row.session_id is not None
    sessions = runtime.sessions()
    if row.shard is None:
        counted = sessions.remove_listener_item(row.session_id)
    else:
        counted = sessions.leave_seat_item(row.session_id, row.shard, row.target_language)
    try:
        dynamodb.transact_guarded(
            [
                (row_change, lambda _old: _RowGone()),
                (counted, lambda _old: _NotCounted()),
            ]
        )
    except _RowGone:
        return  # another call removed the row first and counted the departure
    except _NotCounted:
        _apply_quietly(row_change)
        return
    metrics.listener_left()  # only the call whose transaction decremented the count gets here


class _RowGone(Exception):
    """The connection's row was already removed (or changed) by another call, which did what this one meant to."""


class _NotCounted(Exception):
    """The session is gone, or its count is already zero (it ended): there is nothing to count out."""


def _apply_quietly(change: TransactItem) -> None:
    """Apply one row change whose condition may already have been met by a concurrent call."""
    with contextlib.suppress(_RowGone):
        dynamodb.transact_guarded([(change, lambda _old: _RowGone())])


def heartbeat(caller: Caller, notify: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """``heartbeatAck``; near API Gateway's 2-hour limit, first ``notify`` the client with
    ``connectionRefreshRequired`` (once: recorded on the row, and forgotten again if it could not be
    delivered) and, from the warning threshold on, ``connectionWarning`` with the minutes left. The connection's
    age is counted in minutes of the connections' clock (``CONNECTION_TIME_SCALE``: faster in a scaled local run, as
    its gateway's limits are; 1 deployed)."""
    connection_id, connected_at_ms, now_ms = caller.connection_id, caller.connected_at_ms, caller.now_ms
    age_minutes = (now_ms - connected_at_ms) / 60_000 * function_settings.load().connection_time_scale
    minutes_left = max(0, math.ceil(limits.CONNECTION_LIMIT_MINUTES - age_minutes))
    connections = runtime.connections()
    refresh_due = age_minutes >= limits.REFRESH_REQUIRED_AT_MINUTES
    # Recorded first (so it goes out once without a read), then posted; forgotten again if it did not arrive.
    if (
        refresh_due
        and connections.mark_refresh_notified(connection_id)
        and not notify(messages.connection_refresh_required(minutes_left, now_ms))
    ):
        try:
            connections.clear_refresh_notified(connection_id)
        except ServiceError:
            # The ack still goes out; from 105 minutes every heartbeat carries connectionWarning anyway.
            logger.warning("an undelivered refresh notice could not be forgotten")
    if age_minutes >= limits.CONNECTION_WARNING_FROM_MINUTES:
        notify(messages.connection_warning(minutes_left, now_ms))
    return messages.heartbeat_ack(now_ms)


def disconnect(connection_id: str, now_ms: int | None = None) -> None:
    """Forget a closed connection: a listener is counted out once; the session's current speaker dropping
    opens the resume window and tells the listeners; anything else just loses its row."""
    connections = runtime.connections()
    connection = connections.get(connection_id)
    if connection is None:
        return
    session_concerned(connection.session_id)
    if connection.session_id is None:
        connections.delete(connection_id)
    elif connection.role == ROLE_LISTENER:
        _count_out(connection, connections.delete_item(connection_id))
    elif connection.role == ROLE_SPEAKER:
        _speaker_dropped(connection, now_ms if now_ms is not None else messages.now_ms())
    else:
        connections.delete(connection_id)


def count_out_if_vanished(connection_id: str) -> bool:
    """A listener's connection answered 410 Gone to a notice or a probe: forget its row and count it out
    (once: only the write that removes the row counts), unless its handshake may still be completing.

    Until API Gateway completes a handshake (its ``$connect`` integration may take up to 29 s) the
    connection answers 410 exactly as a vanished one does, so a 410 proves a connection gone only when it
    is older than ``HANDSHAKE_WINDOW_SECONDS`` or it was attached by a message (its row carries no first
    message: the connection was open to send it). True when it is gone; False when it is too young to tell
    (left alone: its own ``$disconnect``, a later notice, or the sweeper's probe settles it).
    Unlike :func:`disconnect`, where API Gateway itself says the connection closed, this never opens a
    speaker's resume window: it only ever counts out a listener.
    """
    connections = runtime.connections()
    connection = connections.get(connection_id)
    if connection is None:
        return True  # its $disconnect, or another cleanup, removed it already
    age_ms = messages.now_ms() - connection.connected_at_ms
    if connection.welcome is not None and age_ms < limits.HANDSHAKE_WINDOW_SECONDS * 1000:
        logger.info(
            "a listener answered 410 within its handshake window; not taken as gone",
            extra={"listener_connection_id": connection_id, "age_ms": age_ms},
        )
        return False
    if connection.role == ROLE_LISTENER and connection.session_id is not None:
        _count_out(connection, connections.delete_item(connection_id))
    return True


class _NotTheSpeaker(Exception):
    """The connection is no longer its session's speaker (refreshed or resumed elsewhere), or the session is over."""


def _speaker_dropped(connection: Connection, now_ms: int) -> None:
    assert connection.session_id is not None
    grace = function_settings.load().speaker_grace_seconds
    now_s = now_ms // 1000
    connections = runtime.connections()
    dropped = runtime.sessions().speaker_dropped_item(
        connection.session_id, connection.connection_id, now_s, now_s + grace
    )
    try:
        dynamodb.transact_guarded(
            [
                (connections.delete_item(connection.connection_id), lambda _old: _RowGone()),
                (dropped, lambda _old: _NotTheSpeaker()),
            ]
        )
    except _RowGone:
        return  # a repeated $disconnect: the first one handled it
    except _NotTheSpeaker:
        # Not the session's speaker any more (refreshed or resumed elsewhere), or the session is over.
        connections.delete(connection.connection_id)
        return
    tell_listeners_quietly(
        connection.session_id,
        messages.session_event("speakerDisconnected", connection.session_id, now_ms, graceSeconds=grace),
    )
