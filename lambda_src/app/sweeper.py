"""The sweeper (every minute): ends sessions nobody ends (a dropped speaker's window passed, or the lifetime is
over), finishes dismissing the listeners of ended ones, publishes the gauges and the periodic ``sessionStatus``, and
counts out listeners whose ``$disconnect`` was lost.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from lambda_src import runtime
from lambda_src.adapters.repositories.connections import ROW_LIFETIME_SECONDS
from lambda_src.app import connections, fanout, seats, speaker, speaker_status
from lambda_src.contract import limits, wire
from lambda_src.model.session import Session
from lambda_src.platform import metrics
from lambda_src.platform.log import SESSION_ID_KEY, logger
from lambda_src.protocol import messages

_T = TypeVar("_T")


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
    no_longer_active = speaker.no_longer_active(session.speaker_user_id, session_id, now_ms)
    if not sessions.end_if_due(session_id, sweep_at_s, reason, now_ms, session.seating, no_longer_active):
        return None  # it changed since the index was read (e.g. the speaker resumed)
    metrics.session_ended(reason)
    if session.speaker_connected:
        fanout.post_quietly(session.speaker_connection_id, messages.session_ended(session_id, reason, now_ms))
    speaker.dismiss_listeners(session_id, reason, now_ms, seating=session.seating)
    return reason


def _dismiss_remaining_listeners(session: Session, sweep_at_s: int, now_ms: int) -> None:
    """An ended session came due again: dismiss the listeners still attached to it (a dismissal that
    failed or was never made, a handshake that was still completing, a ``$disconnect`` that gave up), and
    look again one sweep interval later; with none left, or once every row's own lifetime since the end is
    over, take it out of the index."""
    reason = session.end_reason or wire.EXPIRED
    remaining = speaker.dismiss_listeners(
        session.session_id, reason, now_ms, "ended session revisited", seating=session.seating
    ).reached  # (those handed to the fan-out function too: whether they are gone is known at the next revisit)
    rows_outlived = (session.ended_at_ms or 0) // 1000 + ROW_LIFETIME_SECONDS <= now_ms // 1000
    revisit_s = now_ms // 1000 + limits.SWEEP_INTERVAL_SECONDS if remaining and not rows_outlived else None
    runtime.sessions().revisit_ended(session.session_id, sweep_at_s, revisit_s)
    if remaining and rows_outlived:
        logger.warning(
            "an ended session's listener rows outlived their lifetime; left to their TTL",
            extra={"session_id": session.session_id, "listeners": remaining},
        )


def _probe_listeners(session_id: str) -> None:
    """Ask API Gateway about each listener of the session; one gone without its ``$disconnect`` (and past
    its handshake) is counted out, once. (The gauges' read of the sessions told this process their seating.)"""
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
    try:
        active = seats.counted_all(active)
    except Exception:
        logger.exception("gauges not published: the sessions' seats could not be read")
        return active
    metrics.gauges(len(active), sum(session.listener_count for session in active))
    return active
