"""What a session's speaker is told without asking: ``sessionStatus`` pushed when its audience changes
notably (the Connections stream's listener rows, in batches) and periodically while it is connected (each
sweep).

A change push goes out when, since the last one, the listener count moved by more than
``STATUS_CHANGE_PERCENT`` or a listener arrived with a language that was not there. It is recorded on the
session item before it is posted, conditional on nobody having recorded one since the session was read, so
two batches of the same session (the stream's shards are read in parallel) never push the same change twice.
Coalescing comes from the stream's batching window: a batch carries every listener change of its window, and
each session gets at most one push per batch.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lambda_src import runtime
from lambda_src.adapters.repositories.connections import Connection, RowChange
from lambda_src.app import fanout, seats
from lambda_src.contract import limits, wire
from lambda_src.contract.schema import (
    ROLE_LISTENER,
)
from lambda_src.model.session import PushedStatus, Session
from lambda_src.platform.log import SESSION_ID_KEY, logger
from lambda_src.protocol import messages

TimeLeft = Callable[[], float]


def listeners_by_language(session: Session) -> dict[str, int]:
    """The session's listeners per target language: from the listener index (one query per page), or for a session
    with seat shards from its seats' counters (one BatchGetItem, whatever the audience: decision record 0040)."""
    if session.seating.sharded:
        return seats.audience(session).by_language
    pages = seats.listener_pages(session.session_id, seating=session.seating)
    by_language = Counter(language for page in pages for _connection, language in page)
    return dict(sorted(by_language.items()))


def status_message(session: Session, by_language: dict[str, int], now_ms: int, update_reason: str) -> dict[str, Any]:
    """``sessionStatus`` for ``session`` whose listener count is the sum of ``by_language`` (one read of the
    listener index), so that the count and the languages are of one moment. The session's counter is read
    apart (before): while listeners join or leave, a count from it beside languages from the index contradicted
    each other (38 listeners, 40 of them French) until the next push."""
    as_read = dataclasses.replace(session, listener_count=sum(by_language.values()))
    return messages.session_status(as_read, by_language, now_ms, update_reason)


def _listener(row: Connection | None) -> tuple[str, str] | None:
    """(session id, target language) of a Connections row that is a session's listener, else None."""
    if row is None or row.role != ROLE_LISTENER or row.session_id is None or row.target_language is None:
        return None
    return row.session_id, row.target_language


def listener_changes(changes: Iterable[RowChange]) -> dict[str, set[str]]:
    """Session id -> the target languages listeners arrived with, for every session whose listeners changed in
    these row changes: a listener row inserted or removed, or a row whose session, role or language changed
    (a row change that leaves all three alone, such as the refresh notice, is no change to the audience)."""
    result: dict[str, set[str]] = {}
    for change in changes:
        old, new = _listener(change.old), _listener(change.new)
        if old == new:
            continue
        if old is not None:
            result.setdefault(old[0], set())
        if new is not None:
            result.setdefault(new[0], set()).add(new[1])
    return result


def change_reason(session: Session, arrived_languages: Iterable[str]) -> str | None:
    """Why the speaker should be told about its audience now, or None: ``newLanguage`` when a listener
    arrived with a language that was not there at the last push, else ``listenerCountChange`` when the count
    moved by more than ``STATUS_CHANGE_PERCENT`` since then (any move from zero does)."""
    last = session.status_pushed
    last_count, last_languages = (last.listener_count, last.languages) if last else (0, frozenset[str]())
    if set(arrived_languages) - last_languages:
        return wire.STATUS_NEW_LANGUAGE
    if abs(session.listener_count - last_count) * 100 > limits.STATUS_CHANGE_PERCENT * last_count:
        return wire.STATUS_LISTENER_COUNT_CHANGE
    return None


def push_changes(changes: Iterable[RowChange], now_ms: int) -> list[tuple[str, str]]:
    """For one batch of the Connections stream's row changes: (session id, update reason) of each push sent. Per
    session with a listener change, one read of the session; for a push also the listener index's pages, one
    conditional write (the record) and one post. One session's failure never keeps the others from being told."""
    pushed: list[tuple[str, str]] = []
    for session_id, arrived in listener_changes(changes).items():
        try:
            with logger.append_context_keys(**{SESSION_ID_KEY: session_id}):
                reason = _push_if_notable(session_id, arrived, now_ms)
        except Exception:
            logger.exception("speaker not told about its audience", extra={"session_id": session_id})
            continue
        if reason is not None:
            pushed.append((session_id, reason))
    return pushed


def _push_if_notable(session_id: str, arrived: set[str], now_ms: int) -> str | None:
    sessions = runtime.sessions()
    session = sessions.get(session_id, now_ms // 1000)
    if session is None or not session.is_active or not session.speaker_connected:
        return None  # nobody to tell
    by_language: dict[str, int] | None = None
    if session.seating.sharded:  # the count is its seats', read with its languages
        audience = seats.audience(session)
        session, by_language = (
            dataclasses.replace(session, listener_count=audience.listener_count),
            audience.by_language,
        )
    reason = change_reason(session, arrived)
    if reason is None:
        return None
    if by_language is None:
        by_language = listeners_by_language(session)
    status = status_message(session, by_language, now_ms, reason)
    told = PushedStatus(status[wire.LISTENER_COUNT], frozenset(by_language), now_ms)
    if not sessions.record_status_push(session, told):
        return None  # another batch of this session pushed since it was read, or the speaker changed
    fanout.post_quietly(session.speaker_connection_id, status)
    logger.info("speaker told about its audience", extra={"reason": reason, "listeners": told.listener_count})
    return reason


def push_periodic(sessions: Iterable[Session], now_ms: int, time_left: TimeLeft | None = None) -> int:
    """``sessionStatus`` (``periodic``) to the speaker of each active session whose speaker is connected and
    settled (``Session.speaker_settled``: a push never overtakes a new connection's welcome), in parallel: per
    session one listener index query per page and one post, nothing written. None is started once
    fewer than ``RECONCILE_RESERVE_SECONDS`` of ``time_left()`` remain. How many were posted."""

    def push(session: Session) -> bool:
        if time_left is not None and time_left() < limits.RECONCILE_RESERVE_SECONDS:
            return False
        try:
            status = status_message(session, listeners_by_language(session), now_ms, wire.STATUS_PERIODIC)
        except Exception:
            logger.exception("periodic status not sent", extra={"session_id": session.session_id})
            return False
        return fanout.post_quietly(session.speaker_connection_id, status)

    speakers = [session for session in sessions if session.is_active and session.speaker_settled(now_ms)]
    if not speakers:
        return 0
    with ThreadPoolExecutor(max_workers=min(limits.STATUS_PUSH_PARALLELISM, len(speakers))) as pool:
        sent = sum(pool.map(push, speakers))
    if sent < len(speakers):
        logger.info("periodic status not sent to every speaker", extra={"sent": sent, "speakers": len(speakers)})
    return sent
