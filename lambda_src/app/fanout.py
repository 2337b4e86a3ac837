"""Telling a session's listeners what happened to it, or asking API Gateway which of them are still there:
calls in parallel, one index page at a time; or posting to connections the caller names (:func:`post_each`, what
``downstream.broadcast`` and captions use), settled the same way.

A listener that answers 410 Gone is handed to ``on_gone``, which says whether that proves it gone (its row
is then cleaned up) or not yet (a connection whose handshake has not completed answers 410 too); no single
listener's failure stops the others. A 429 (API Gateway's throttling) is no departure: the request is retried
(``connections_api``) until the fan-out's one retry deadline, and a post still throttled then is FAILED, like any
other failure, never GONE.

A notice or a dismissal (:func:`notify_listeners`) to a sharded session whose audience (its seats' sum) is over
``fanout_groups.local_listeners()`` (500) is not posted here: it is handed to the fan-out function, one asynchronous
invocation per group of occupied shards (decision record 0040), and the caller's reply does not wait for the
posts. A session of one shard, or a sharded one at or under that, is posted here as always (the same requests).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lambda_src.adapters import connections_api
from lambda_src.app import fanout_groups, seats
from lambda_src.contract import limits
from lambda_src.model.session import Seat, Seating
from lambda_src.platform.log import logger
from lambda_src.protocol import messages


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    CONNECTED = "connected"  # a probe found the connection open
    GONE = "gone"
    # 410 from a connection whose handshake may still be completing: neither reached nor proved gone.
    HANDSHAKING = "handshaking"
    FAILED = "failed"


# Given a listener's connection id that answered 410: True when that proves it gone (its row is cleaned up),
# False when it may still be completing its handshake.
OnGone = Callable[[str], bool]


@dataclass
class FanoutResult:
    listeners: list[str] = field(default_factory=list)
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    # The listeners ``on_gone`` took as gone (those counted under GONE, when there was an ``on_gone``).
    gone: list[str] = field(default_factory=list)
    # How many listeners (the seats' count) were handed to the fan-out function rather than posted here: what
    # becomes of each is not known here (none of them is in ``listeners`` or ``outcomes``).
    handed_off: int = 0

    @property
    def reached(self) -> int:
        """The listeners posted to here or handed off: whom this fan-out was for."""
        return len(self.listeners) + self.handed_off


def _deliver(connection_id: str, data: str, close: bool, deadline: float | None) -> Outcome:
    """Post ``data`` (and close the connection when ``close``), retrying throttled requests until ``deadline``."""
    try:
        if not connections_api.post(connection_id, data, deadline=deadline):
            return Outcome.GONE
        outcome = Outcome.DELIVERED
    except connections_api.Throttled as throttled:
        _log_throttled("could not notify a listener", connection_id, throttled)
        outcome = Outcome.FAILED
    except Exception:
        logger.exception("could not notify a listener", extra={"listener_connection_id": connection_id})
        outcome = Outcome.FAILED
    if close:
        try:  # closed even when the message failed: a dismissed listener must not stay attached
            connections_api.close(connection_id, deadline=deadline)
        except connections_api.Throttled as throttled:
            _log_throttled("could not close a listener", connection_id, throttled)
            outcome = Outcome.FAILED
        except Exception:
            logger.exception("could not close a listener", extra={"listener_connection_id": connection_id})
            outcome = Outcome.FAILED
    return outcome


def _probe(connection_id: str, deadline: float | None) -> Outcome:
    try:
        return Outcome.CONNECTED if connections_api.is_connected(connection_id, deadline=deadline) else Outcome.GONE
    except connections_api.Throttled as throttled:
        _log_throttled("could not ask about a listener", connection_id, throttled)
        return Outcome.FAILED
    except Exception:
        logger.exception("could not ask about a listener", extra={"listener_connection_id": connection_id})
        return Outcome.FAILED


def _log_throttled(what: str, connection_id: str, throttled: connections_api.Throttled) -> None:
    """A request API Gateway kept throttling: a warning without a traceback (a busy account is no bug), and the
    connection is left as it is (throttling says nothing of whether it is still there)."""
    logger.warning(f"{what}: {throttled}", extra={"listener_connection_id": connection_id, "throttled": True})


def _each_listener(
    session_id: str,
    call: Callable[[str], Outcome],
    on_gone: OnGone | None,
    what: str,
    seating: Seating | None = None,
    taken_elsewhere: Callable[[list[Seat]], int] | None = None,
    **log_extra: Any,
) -> FanoutResult:
    """``call`` for every listener of the session (in parallel, page by page, shard by shard:
    :func:`seats.listener_pages`), then ``on_gone`` for each that answered 410; the outcomes are logged under
    ``what``. ``taken_elsewhere``: given a sharded session's occupied seats, how many listeners it handed off (then
    none is called here), or 0."""
    result = FanoutResult()
    gone: list[str] = []

    def handed_off(occupied: list[Seat]) -> bool:
        assert taken_elsewhere is not None
        result.handed_off = taken_elsewhere(occupied)
        return result.handed_off > 0

    with ThreadPoolExecutor(max_workers=limits.FANOUT_PARALLELISM) as pool:
        pages = seats.listener_pages(
            session_id, seating=seating, taken_elsewhere=handed_off if taken_elsewhere is not None else None
        )
        for page in pages:
            ids = [connection_id for connection_id, _language in page]
            result.listeners.extend(ids)
            for connection_id, outcome in zip(ids, pool.map(call, ids), strict=True):
                result.outcomes[outcome] += 1
                if outcome is Outcome.GONE:
                    gone.append(connection_id)
    _settle_gone(result, gone, on_gone)
    _log_outcomes(result, what, session_id=session_id, **log_extra)
    return result


def _settle_gone(result: FanoutResult, gone: list[str], on_gone: OnGone | None) -> None:
    """``on_gone`` for each listener that answered 410, one after the other in the caller's thread; those it
    does not take as gone are moved from GONE to HANDSHAKING."""
    if on_gone is None:
        return
    for connection_id in gone:
        try:  # the caller's operation is done; a cleanup that fails is left to a later one, or the TTL
            proved_gone = on_gone(connection_id)
        except Exception:
            logger.exception("could not forget a vanished listener", extra={"listener_connection_id": connection_id})
            continue
        if proved_gone:
            result.gone.append(connection_id)
        else:
            result.outcomes[Outcome.GONE] -= 1
            result.outcomes[Outcome.HANDSHAKING] += 1


def _log_outcomes(result: FanoutResult, what: str, **extra: Any) -> None:
    if result.handed_off:
        extra = {**extra, "handed_off": result.handed_off}
    logger.info(what, extra={**extra, **{outcome.value: count for outcome, count in result.outcomes.items()}})


@dataclass
class Posting:
    """One message posted to given connections, in flight on an executor; :meth:`settle` waits for it."""

    connection_ids: list[str]
    futures: list[Future[Outcome]]

    def settle(self, on_gone: OnGone | None, what: str, **log_extra: Any) -> FanoutResult:
        """Wait for every post, then ``on_gone`` for each connection that answered 410 (in the caller's thread, as
        every fan-out does). The outcomes are logged under ``what`` when a post did not arrive (a message posted
        several times a second, such as a caption, logs nothing while every post arrives)."""
        result = FanoutResult(listeners=list(self.connection_ids))
        gone: list[str] = []
        for connection_id, future in zip(self.connection_ids, self.futures, strict=True):
            outcome = future.result()  # (_deliver never raises: a failure is an outcome)
            result.outcomes[outcome] += 1
            if outcome is Outcome.GONE:
                gone.append(connection_id)
        _settle_gone(result, gone, on_gone)
        if result.outcomes[Outcome.DELIVERED] < len(self.connection_ids):
            _log_outcomes(result, what, **log_extra)
        return result


def post_each(
    executor: Executor, connection_ids: Iterable[str], message: dict[str, Any], *, close: bool = False
) -> Posting:
    """Start posting ``message`` to each of ``connection_ids`` on ``executor`` (in parallel, up to its workers), and
    closing each connection after when ``close``; returns at once. A failed post never stops or delays the others."""
    data = messages.encode(message)
    ids = list(connection_ids)
    deadline = connections_api.retry_deadline()  # one for all of them: the whole posting waits at most that long
    return Posting(ids, [executor.submit(_deliver, connection_id, data, close, deadline) for connection_id in ids])


def notify_listeners(
    session_id: str,
    message: dict[str, Any],
    *,
    close: bool = False,
    on_gone: OnGone | None = None,
    seating: Seating | None = None,
) -> FanoutResult:
    """Post ``message`` to every listener of the session (and close their connections when ``close``);
    ``seating``: the session's, when the caller read it. An audience over ``fanout_groups.local_listeners()`` on a
    sharded session's seats is handed to the fan-out function instead (``handed_off``; returns once Lambda took or
    refused each invocation, a refusal logged: those listeners miss the notice, and a dismissal's are dismissed by
    the sweeper's next revisit)."""
    data = messages.encode(message)
    deadline = connections_api.retry_deadline()

    def to_fanout_function(occupied: list[Seat]) -> int:
        planned = fanout_groups.plan(session_id, occupied)
        if planned is None:
            return 0
        handed = fanout_groups.hand_off_notice(planned, message, messages.now_ms(), close=close)
        if handed.failed:
            logger.warning(
                "listeners not told: fan-out invocations refused",
                extra={
                    "session_id": session_id,
                    "message_type": message.get("type"),
                    "failed": handed.failed,
                    "lost_listeners": handed.lost_listeners,
                },
            )
        return planned.listeners

    return _each_listener(
        session_id,
        lambda c: _deliver(c, data, close, deadline),
        on_gone,
        "listeners notified",
        seating,
        to_fanout_function,
        message_type=message.get("type"),
    )


def probe_listeners(session_id: str, on_gone: OnGone, seating: Seating | None = None) -> FanoutResult:
    """Ask API Gateway about every listener of the session (``GET @connections``, nothing is sent)."""
    deadline = connections_api.retry_deadline()
    return _each_listener(session_id, lambda c: _probe(c, deadline), on_gone, "listeners probed", seating)


def post_quietly(connection_id: str, message: dict[str, Any]) -> bool:
    """Post one message where delivery is best effort (e.g. to a speaker); False when it did not arrive."""
    try:
        return connections_api.post(connection_id, messages.encode(message))
    except connections_api.Throttled as throttled:
        logger.warning(f"could not post a message: {throttled}", extra={"target_connection_id": connection_id})
        return False
    except Exception:
        logger.exception("could not post a message", extra={"target_connection_id": connection_id})
        return False
