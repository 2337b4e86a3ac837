"""A session's seat shards (decision record 0040): a session created under a cap above ``ONE_SHARD_MAX_LISTENERS``
counts its listeners on N seat items instead of its own item, so that a thousand joins a second neither queue on one
item nor meet the write limit of one partition.

- A join takes a shard at random (one transaction: the seat under its share of the cap, the listener's row, which
  names the shard, the shard's share of the join-rate allowance and the caller's guards). A conflict sends the next
  attempt of the one retry policy to another shard (``dynamodb.transact_guarded``'s ``on_conflict``); a full shard
  sends the join to one with room, as one read of every seat shows; only when every shard is full is it refused,
  ``SESSION_FULL``.
- The count, and the listeners by language, are the sums over the seats: one BatchGetItem.
- The listener index is keyed by shard as well: a session's listeners are read one shard's key after another, only
  the keys of the seats that count listeners (one read of the seats first).
- Ending closes every seat, after the ending's own write; the sweeper's revisit closes them again.

A session of one shard (every session under the default cap) is untouched by all this: its item is its one seat,
its listeners' index key is its id, and it pays exactly the requests it did before.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lambda_src import runtime
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.connections import ROW_LIFETIME_SECONDS
from lambda_src.adapters.repositories.dynamodb import Guarded
from lambda_src.app import rate_limits
from lambda_src.contract import errors, function_settings, limits
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.model.session import (
    SEAT_CREATED_ATTRIBUTE,
    Audience,
    Seat,
    Seating,
    Session,
    number_attribute,
    shard_key,
    shares,
)
from lambda_src.platform.log import logger
from lambda_src.protocol import messages

# Seats closed at once when a session ends.
_CLOSE_PARALLELISM = 16


def seat_expiry(seating: Seating) -> int:
    """A seat item's TTL (epoch seconds): past the latest its session can live (the lifetime ceiling from its
    creation) and every listener row's own lifetime after that."""
    ceiling = function_settings.load().lifetime_ceiling_seconds
    return seating.created_at_ms // 1000 + ceiling + ROW_LIFETIME_SECONDS


# -- joining ---------------------------------------------------------------------------------------------------------
class _SeatRefused(Exception):
    """The seat's condition failed: it is full, closed, or an earlier session's (``old``: the seat as it was)."""

    def __init__(self, shard: int, old: dict[str, Any] | None) -> None:
        super().__init__(shard)
        self.shard = shard
        self.old = old


class _SeatRateLimited(Exception):
    """The shard's share of the session's join-rate allowance is spent for this window (``refusal``: as a client
    hears it)."""

    def __init__(self, shard: int, refusal: Exception) -> None:
        super().__init__(shard)
        self.shard = shard
        self.refusal = refusal


def session_full(session_id: str, cap: int) -> ServiceError:
    return ServiceError(
        ErrorCode.SESSION_FULL, f"session {session_id} has reached its listener limit of {cap}", field="sessionId"
    )


def take_seat(
    session_id: str,
    seating: Seating,
    row_for: Callable[[int], Guarded],
    language: str,
    now_s: int,
    cap: int,
    guards: Sequence[Guarded] = (),
) -> int:
    """Count a listener of ``language`` in on one of the session's seats and write its row (``row_for(shard)``),
    atomically; the shard taken. Refused with nothing written: ``SESSION_FULL`` only when a read of every seat
    finds each at its share of ``cap``; ``SESSION_ENDED`` once a seat is closed; refused for the join rate when
    ``SEAT_RATE_LIMITED_TRIES`` shards have spent their share of the join-rate allowance
    (``RATE_LIMIT_EXCEEDED``); a guard's own refusal.

    Conflicts are the retry policy's (each of its attempts on another shard); what this loops over is answers: a
    full seat (go where a read of the seats shows room), an earlier session's seat (replaced, then taken), a shard
    over its join rate (another one). ``SEAT_JOIN_ROUNDS`` bounds it: seats that fill between the read and the
    join, round after round, end in ``SERVICE_UNAVAILABLE`` (retry) unless every seat is then full."""
    choice = _SeatChoice(session_id, seating, row_for, language, now_s, cap, guards)
    for _round in range(limits.SEAT_JOIN_ROUNDS):
        try:
            return choice.attempt()
        except _SeatRefused as refused:
            if _replaced_if_stale(session_id, seating, refused, choice.expires_s):
                continue
            choice.full.update(_full_seats(session_id, seating, choice.seat_caps))
            if len(choice.full) == seating.shards:
                raise session_full(session_id, cap) from None
        except _SeatRateLimited as limited:
            choice.rate_limited.add(limited.shard)
            if len(choice.rate_limited) >= min(limits.SEAT_RATE_LIMITED_TRIES, seating.shards - len(choice.full)):
                raise limited.refusal from None
    if len(_full_seats(session_id, seating, choice.seat_caps)) == seating.shards:
        raise session_full(session_id, cap)
    logger.warning("no seat taken within the rounds of a join", extra={"session_id": session_id})
    raise dynamodb.unavailable()


class _SeatChoice:
    """One join's choice of a seat: the shards it knows full or over their join rate, and the one it tries."""

    def __init__(
        self,
        session_id: str,
        seating: Seating,
        row_for: Callable[[int], Guarded],
        language: str,
        now_s: int,
        cap: int,
        guards: Sequence[Guarded],
    ) -> None:
        self.session_id, self.seating, self.row_for, self.language = session_id, seating, row_for, language
        self.now_s, self.cap, self.guards = now_s, cap, guards
        self.seat_caps = shares(cap, seating.shards)
        self.allowances = shares(function_settings.load().joins_per_session_per_minute, seating.shards)
        self.expires_s = seat_expiry(seating)
        self.full: set[int] = set()
        self.rate_limited: set[int] = set()
        self.current = 0

    def attempt(self) -> int:
        """One transaction on a shard chosen at random among those not known full (the retry policy moves it to
        another on a conflict); the shard taken."""
        self.current = self._pick()
        try:
            dynamodb.transact_guarded(self._items(), on_conflict=self._another)
        except ServiceError as unavailable:
            # The retry policy gave up (conflicts over the last seats, or throttling): when every seat is full by
            # now, the join was refused for the cap, and is told so.
            full = (
                unavailable.code is ErrorCode.SERVICE_UNAVAILABLE
                and len(_full_seats(self.session_id, self.seating, self.seat_caps)) == self.seating.shards
            )
            if full:
                raise session_full(self.session_id, self.cap) from None
            raise
        return self.current

    def _pick(self, avoiding: int = 0) -> int:
        open_shards = [
            k for k in range(1, self.seating.shards + 1) if k not in self.full and k not in self.rate_limited
        ]
        others = [k for k in open_shards if k != avoiding]
        return random.choice(others or open_shards)

    def _another(self) -> list[Guarded]:
        self.current = self._pick(avoiding=self.current)
        return self._items()

    def _items(self) -> list[Guarded]:
        shard = self.current
        sessions = runtime.sessions()
        seat = sessions.take_seat_item(
            self.session_id, self.seating, shard, self.seat_caps[shard - 1], self.language, self.expires_s
        )
        rate_item, rate_refusal = rate_limits.joins(
            self.session_id, self.now_s, allowance=self.allowances[shard - 1], shard=shard
        )
        return [
            (seat, lambda old: _SeatRefused(shard, old)),
            self.row_for(shard),
            (rate_item, lambda old: _SeatRateLimited(shard, rate_refusal(old))),
            *self.guards,
        ]


def _replaced_if_stale(session_id: str, seating: Seating, refused: _SeatRefused, expires_s: int) -> bool:
    """A refused seat that an earlier session of the same id left is replaced by an empty one (True: take it
    again); a closed one refuses the join (the session ended); otherwise it was full (False)."""
    old = dynamodb.deserialize(refused.old) if refused.old else None
    seat = Seat.from_item(refused.shard, old, seating.created_at_ms)
    if seat.stale and old is not None:
        stale = number_attribute(old, SEAT_CREATED_ATTRIBUTE, None)
        runtime.sessions().reset_seat(session_id, seating, refused.shard, stale, expires_s)
        return True
    if seat.closed:
        raise errors.session_ended(session_id) from None
    return False


def _full_seats(session_id: str, seating: Seating, seat_caps: list[int]) -> set[int]:
    """The shards whose seats are at their share of the cap, from one strongly consistent read of every seat; a
    closed seat refuses the join (the session ended)."""
    seats = runtime.sessions().seats(session_id, seating)
    if any(seat.closed for seat in seats):
        raise errors.session_ended(session_id)
    return {seat.shard for seat in seats if not seat.stale and seat.count >= seat_caps[seat.shard - 1]}


# -- the count and the listeners by language -------------------------------------------------------------------------
def audience(session: Session) -> Audience:
    """A sharded session's listener count and listeners by language: the sums over its seats (one BatchGetItem)."""
    return runtime.sessions().audiences({session.session_id: session.seating})[session.session_id]


def counted(session: Session) -> Session:
    """``session`` with its listener count: its item's, or the sum of its seats' (one BatchGetItem) when it has seat
    shards."""
    if not session.seating.sharded:
        return session
    return dataclasses.replace(session, listener_count=audience(session).listener_count)


def counted_all(sessions: Sequence[Session]) -> list[Session]:
    """Each of ``sessions`` with its listener count, the seats of all the sharded ones read together
    (``BATCH_GET_SIZE`` seats a BatchGetItem)."""
    sharded = {session.session_id: session.seating for session in sessions if session.seating.sharded}
    if not sharded:
        return list(sessions)
    audiences = runtime.sessions().audiences(sharded)
    return [
        dataclasses.replace(session, listener_count=audiences[session.session_id].listener_count)
        if session.session_id in audiences
        else session
        for session in sessions
    ]


# -- the listener index ----------------------------------------------------------------------------------------------
def listener_pages(
    session_id: str,
    target_language: str | None = None,
    seating: Seating | None = None,
    *,
    taken_elsewhere: Callable[[list[Seat]], bool] | None = None,
) -> Iterator[list[tuple[str, str]]]:
    """The session's listeners as (connection id, target language), one index page at a time, shard after shard;
    only those of ``target_language`` when given. A sharded session's seats are read first (one BatchGetItem) and
    only the shards whose seats count listeners (of that language) are queried (:func:`occupied`).

    ``seating``: when the caller has read the session. Otherwise this process's knowledge of it, and failing
    that the session's own key is read first, as for a session of one shard (every listener of one is there); only
    when nobody is found there is the session read to know whether its listeners are under its shards' keys.

    ``taken_elsewhere``: given a sharded session's occupied seats once read, before any shard is queried; when it
    says True its caller has reached those listeners another way (the fan-out function) and no page follows."""
    if seating is None:
        seating = runtime.sessions().known_seating(session_id, messages.now_ms() // 1000)
    if seating is None:
        found = False
        for page in _pages(session_id, target_language):
            found = found or bool(page)
            yield page
        if found:
            return
        seating = runtime.sessions().seating(session_id, messages.now_ms() // 1000)
        if not seating.sharded:
            return
    if not seating.sharded:
        yield from _pages(session_id, target_language)
        return
    seats = occupied(session_id, seating, target_language)
    if taken_elsewhere is not None and taken_elsewhere(seats):
        return
    yield from occupied_pages(session_id, seats, target_language)


def occupied(session_id: str, seating: Seating, target_language: str | None = None) -> list[Seat]:
    """The seats of a sharded session with listeners (of ``target_language``, when given), in shard order: one
    strongly consistent BatchGetItem of every seat (N ≤ 100 keys). A seat's count moves with its rows, in the same
    transactions, so a seat counting nobody has no rows under its key and its shard need not be queried: a session
    of 10 listeners on 100 shards reads at most 10 keys, not 100. A seat an earlier session of the id left holds
    none of this session's listeners."""
    seats = runtime.sessions().seats(session_id, seating)
    return [seat for seat in seats if not seat.stale and _listening(seat, target_language) > 0]


def _listening(seat: Seat, target_language: str | None) -> int:
    return seat.count if target_language is None else seat.by_language.get(target_language, 0)


def occupied_pages(
    session_id: str, seats: Sequence[Seat], target_language: str | None = None
) -> Iterator[list[tuple[str, str]]]:
    """The listeners under the keys of the given seats (read by :func:`occupied`), one index page at a time, shard
    after shard."""
    for seat in seats:
        yield from _pages(shard_key(session_id, seat.shard), target_language)


def _pages(key: str, target_language: str | None) -> Iterator[list[tuple[str, str]]]:
    connections = runtime.connections()
    if target_language is None:
        return connections.listener_pages(key)
    return connections.listener_pages(key, target_language)


# -- ending ----------------------------------------------------------------------------------------------------------
def close(session_id: str, seating: Seating) -> None:
    """Close every seat of an ended session (made closed where no join took it yet), in parallel: no join takes one
    from now on. Idempotent (the sweeper's revisit closes them again); a failure is logged and left to it."""
    if not seating.sharded:
        return
    sessions = runtime.sessions()
    expires_s = seat_expiry(seating)

    def close_one(shard: int) -> bool:
        try:
            sessions.close_seat(session_id, seating, shard, expires_s)
        except Exception:
            logger.exception("seat not closed", extra={"session_id": session_id, "shard": shard})
            return False
        return True

    with ThreadPoolExecutor(max_workers=min(_CLOSE_PARALLELISM, seating.shards)) as pool:
        closed = sum(pool.map(close_one, range(1, seating.shards + 1)))
    if closed < seating.shards:
        logger.warning(
            "seats left open for the sweeper's revisit",
            extra={"session_id": session_id, "open": seating.shards - closed},
        )
