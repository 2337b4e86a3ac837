"""A session as the service knows it: the values of a Sessions item (the contract's schema) and how they read from
and write to an item, deserialized (plain Python values: the Sessions repository is what talks to the table)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lambda_src.contract import limits
from lambda_src.contract.schema import SESSIONS_PARTITION_KEY, SESSIONS_SWEEP_AT_ATTRIBUTE, SESSIONS_TTL_ATTRIBUTE
from lambda_src.model import broadcast, partial_results
from lambda_src.model.broadcast import BroadcastState
from lambda_src.model.partial_results import PartialResultConfig

_log = logging.getLogger(__name__)

GRACE_ATTRIBUTE = "speakerGraceEndsAt"
END_REASON_ATTRIBUTE = "endReason"
ENDED_AT_ATTRIBUTE = "endedAt"
# When the speaker's current connection took the session (epoch milliseconds), written by each refresh or
# resume; absent, the creating connection is the speaker (``createdAt``), so a new item keeps the contract's schema.
SPEAKER_CONNECTED_AT_ATTRIBUTE = "speakerConnectedAt"
# The session's transcription consumer (``lambda_src.app.transcription.consumer``): its lease (until when, epoch
# milliseconds, and whose), and how far in the audio buffer it got (the last chunk's sort key it processed).
# Absent until audio first arrives.
TRANSCRIBER_LEASE_UNTIL_ATTRIBUTE = "transcriberLeaseUntil"
TRANSCRIBER_LEASE_ID_ATTRIBUTE = "transcriberLeaseId"
TRANSCRIBER_CURSOR_ATTRIBUTE = "transcriberCursor"
# The last ``translatedAudio`` sequence number drawn for each language of the session (decision record 0039): one
# number attribute per language, ``audioSequence:<language>``, added to by one UpdateItem per spoken segment for all
# its languages at once (ADD works on top-level attributes only); absent until that language is first spoken, which
# reads as 0, so the numbers run from 1.
AUDIO_SEQUENCE_ATTRIBUTE_PREFIX = "audioSequence:"


def audio_sequence_attribute(language: str) -> str:
    """The attribute holding the last sequence number drawn for ``language``'s spoken segments."""
    return AUDIO_SEQUENCE_ATTRIBUTE_PREFIX + language


# What the speaker was last pushed on a change of its audience (``sessionStatus``): the count, the languages
# and when (epoch milliseconds). Absent until the first push.
STATUS_COUNT_ATTRIBUTE = "statusListenerCount"
STATUS_LANGUAGES_ATTRIBUTE = "statusLanguages"
STATUS_PUSHED_AT_ATTRIBUTE = "statusPushedAt"
# Which write recorded the last push (an id each recording draws): a repeat of that write, its answer lost,
# finds its own record by it.
STATUS_PUSH_ID_ATTRIBUTE = "statusPushId"
# The session's seat shards (decision record 0040), written only when there are more than one: absent, the session
# item itself counts the listeners (its ``listenerCount``), as every session did before.
SEAT_SHARDS_ATTRIBUTE = "seatShards"
# A seat item (``<sessionId>#<k>`` in the Sessions table, made by the first join that takes it): its ``listenerCount``,
# which incarnation of the session id it counts for (the session's ``createdAt``: an id is reused once its session
# expired), whether the session ended (no join takes a closed seat), and its listeners by language, one top-level
# counter per language (``listeners:<language>``: ``ADD`` needs no map to exist). Its TTL is ``expiresAt``; it never
# carries ``sweepAt`` (the sweeper's index holds sessions only).
SEAT_CREATED_ATTRIBUTE = "sessionCreatedAt"
SEAT_CLOSED_ATTRIBUTE = "seatClosed"
SEAT_LANGUAGE_PREFIX = "listeners:"
LISTENER_COUNT_ATTRIBUTE = "listenerCount"


def seat_language_attribute(language: str) -> str:
    """The seat item's attribute counting its listeners of ``language``."""
    return SEAT_LANGUAGE_PREFIX + language


def seat_shards_for(cap: int) -> int:
    """How many seat shards a session created under the listener cap ``cap`` has: one up to
    ``ONE_SHARD_MAX_LISTENERS``, otherwise one per ``SEATS_PER_SHARD`` seats (rounded up), at most
    ``MAX_SEAT_SHARDS``."""
    if cap <= limits.ONE_SHARD_MAX_LISTENERS:
        return 1
    return min(limits.MAX_SEAT_SHARDS, -(-cap // limits.SEATS_PER_SHARD))


def shares(total: int, shards: int) -> list[int]:
    """``total`` split over ``shards`` (the first shard's share first): shares that differ by at most one and sum
    to ``total`` exactly (the cap, or the join-rate allowance)."""
    base, extra = divmod(total, shards)
    return [base + (1 if shard < extra else 0) for shard in range(shards)]


def shard_key(session_id: str, shard: int) -> str:
    """The key of a session's shard ``shard`` (1..N): its seat item's, and its listeners' listener-index key. A session
    id never holds ``#``, so no session's key is another's shard key."""
    return f"{session_id}#{shard}"


@dataclass(frozen=True)
class Seating:
    """How a session counts its listeners: ``shards`` seat shards (1: on the session item itself), for the
    incarnation of its id created at ``created_at_ms``."""

    shards: int
    created_at_ms: int

    @property
    def sharded(self) -> bool:
        return self.shards > 1

    def keys(self, session_id: str) -> list[str]:
        """The listener-index keys of the session's listeners: its id, or each shard's key."""
        if not self.sharded:
            return [session_id]
        return [shard_key(session_id, shard) for shard in range(1, self.shards + 1)]


@dataclass(frozen=True)
class Seat:
    """One seat item as read (an absent one reads as empty): its shard, count, listeners by language, and whether the
    session closed it. ``stale``: it belongs to an earlier session of the same id (its counts are not this one's)."""

    shard: int
    count: int = 0
    by_language: dict[str, int] = field(default_factory=dict)
    closed: bool = False
    stale: bool = False

    @classmethod
    def from_item(cls, shard: int, item: dict[str, Any] | None, created_at_ms: int) -> Seat:
        if item is None:
            return cls(shard)
        if number_attribute(item, SEAT_CREATED_ATTRIBUTE, None) != created_at_ms:
            return cls(shard, stale=True)
        by_language = {
            name.removeprefix(SEAT_LANGUAGE_PREFIX): number_attribute(item, name, 0) or 0
            for name in item
            if name.startswith(SEAT_LANGUAGE_PREFIX)
        }
        return cls(
            shard,
            count=number_attribute(item, LISTENER_COUNT_ATTRIBUTE, 0) or 0,
            by_language={language: count for language, count in by_language.items() if count > 0},
            closed=item.get(SEAT_CLOSED_ATTRIBUTE) is True,
        )


@dataclass(frozen=True)
class Audience:
    """A session's listener count and its listeners by language, summed over its seats (one read of them)."""

    listener_count: int
    by_language: dict[str, int]

    @classmethod
    def of(cls, seats: list[Seat]) -> Audience:
        by_language: dict[str, int] = {}
        for seat in seats:
            if seat.stale:
                continue
            for language, count in seat.by_language.items():
                by_language[language] = by_language.get(language, 0) + count
        count = sum(seat.count for seat in seats if not seat.stale)
        return cls(count, dict(sorted(by_language.items())))


# Which write last set the broadcast state (an id each broadcast action draws): a repeat of that write, its
# answer lost, finds the state it set by it. Absent until the speaker first sets the state.
BROADCAST_CHANGE_ID_ATTRIBUTE = "broadcastChangeId"


@dataclass(frozen=True)
class Session:
    """A Sessions item (the contract's schema)."""

    session_id: str
    speaker_connection_id: str
    speaker_user_id: str
    source_language: str
    quality_tier: str
    created_at_ms: int
    expires_at_s: int
    is_active: bool = True
    listener_count: int = 0
    config: PartialResultConfig = field(default_factory=PartialResultConfig)
    broadcast: BroadcastState = field(default_factory=BroadcastState)
    # Set while the speaker's connection has dropped: when its reconnection window closes (epoch seconds).
    speaker_grace_ends_at_s: int | None = None
    end_reason: str | None = None
    ended_at_ms: int | None = None
    status_pushed: PushedStatus | None = None
    speaker_connected_at_ms: int | None = None
    transcriber: TranscriberLease | None = None
    broadcast_change_id: str | None = None
    seat_shards: int = 1

    @property
    def seating(self) -> Seating:
        return Seating(self.seat_shards, self.created_at_ms)

    @property
    def speaker_connected(self) -> bool:
        return self.speaker_grace_ends_at_s is None

    def speaker_settled(self, now_ms: int) -> bool:
        """Whether the speaker's connection is connected and has had time to receive its welcome
        (``SPEAKER_SETTLE_SECONDS`` since it took the session): an unasked push before then could overtake it."""
        if not self.speaker_connected:
            return False
        connected_at = self.created_at_ms if self.speaker_connected_at_ms is None else self.speaker_connected_at_ms
        return now_ms - connected_at >= limits.SPEAKER_SETTLE_SECONDS * 1000

    @property
    def sweep_at_s(self) -> int:
        """When the sweeper is due to look at this active session: its speaker's reconnection window's end while
        the speaker is away, otherwise its expiry."""
        if self.speaker_grace_ends_at_s is None:
            return self.expires_at_s
        return min(self.speaker_grace_ends_at_s, self.expires_at_s)

    def to_item(self) -> dict[str, Any]:
        return {
            SESSIONS_PARTITION_KEY: self.session_id,
            # Absent while no connection was ever the speaker's (a session created over HTTP, its speaker away).
            **({"speakerConnectionId": self.speaker_connection_id} if self.speaker_connection_id else {}),
            "speakerUserId": self.speaker_user_id,
            "sourceLanguage": self.source_language,
            "qualityTier": self.quality_tier,
            "createdAt": self.created_at_ms,
            **(
                {}
                if self.speaker_connected_at_ms is None
                else {SPEAKER_CONNECTED_AT_ATTRIBUTE: self.speaker_connected_at_ms}
            ),
            "isActive": self.is_active,
            LISTENER_COUNT_ATTRIBUTE: self.listener_count,
            **({SEAT_SHARDS_ATTRIBUTE: self.seat_shards} if self.seat_shards > 1 else {}),
            SESSIONS_TTL_ATTRIBUTE: self.expires_at_s,
            **self.config.to_item(),
            # Written once the speaker sets it: a new session's item keeps the contract's schema (absent reads as
            # not paused, not muted, full volume).
            **({} if self.broadcast == BroadcastState() else self.broadcast.to_item()),
            **({} if self.speaker_grace_ends_at_s is None else {GRACE_ATTRIBUTE: self.speaker_grace_ends_at_s}),
            # In the sweeper's sparse index while active: it ends the session when its lifetime is over, or when
            # its speaker's reconnection window closes first.
            **({SESSIONS_SWEEP_AT_ATTRIBUTE: self.sweep_at_s} if self.is_active else {}),
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Session:
        """A session from a (deserialized) item; an attribute of the wrong type reads as its default, with a
        warning (an unreadable ``expiresAt`` reads as 0: the session counts as expired, never as live)."""
        grace = number_attribute(item, GRACE_ATTRIBUTE, None)
        return cls(
            session_id=item[SESSIONS_PARTITION_KEY],
            speaker_connection_id=_text(item, "speakerConnectionId"),
            speaker_user_id=_text(item, "speakerUserId"),
            source_language=_text(item, "sourceLanguage"),
            quality_tier=_text(item, "qualityTier"),
            created_at_ms=number_attribute(item, "createdAt", 0) or 0,
            expires_at_s=number_attribute(item, SESSIONS_TTL_ATTRIBUTE, 0) or 0,
            is_active=item.get("isActive") is True,
            listener_count=number_attribute(item, LISTENER_COUNT_ATTRIBUTE, 0) or 0,
            config=partial_results.from_item(item),
            broadcast=broadcast.from_item(item),
            speaker_grace_ends_at_s=grace,
            end_reason=item.get(END_REASON_ATTRIBUTE) if isinstance(item.get(END_REASON_ATTRIBUTE), str) else None,
            ended_at_ms=number_attribute(item, ENDED_AT_ATTRIBUTE, None),
            status_pushed=PushedStatus.from_item(item),
            speaker_connected_at_ms=number_attribute(item, SPEAKER_CONNECTED_AT_ATTRIBUTE, None),
            transcriber=TranscriberLease.from_item(item),
            broadcast_change_id=_optional_text(item, BROADCAST_CHANGE_ID_ATTRIBUTE),
            seat_shards=max(1, number_attribute(item, SEAT_SHARDS_ATTRIBUTE, 1) or 1),
        )


@dataclass(frozen=True)
class TranscriberLease:
    """The session's transcription consumer: whose lease, until when (epoch ms), and the buffer position it
    reached (the sort key of the last chunk it processed; empty before the first)."""

    lease_id: str
    until_ms: int
    cursor: str = ""

    def live_at(self, now_ms: int) -> bool:
        return self.until_ms > now_ms

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> TranscriberLease | None:
        until = number_attribute(item, TRANSCRIBER_LEASE_UNTIL_ATTRIBUTE, None)
        lease_id, cursor = item.get(TRANSCRIBER_LEASE_ID_ATTRIBUTE), item.get(TRANSCRIBER_CURSOR_ATTRIBUTE, "")
        if until is None and not cursor:
            return None
        return cls(
            lease_id if isinstance(lease_id, str) else "",
            until or 0,
            cursor if isinstance(cursor, str) else "",
        )


@dataclass(frozen=True)
class PushedStatus:
    """What the speaker was last told on a change of its audience: the count, the languages, and when."""

    listener_count: int
    languages: frozenset[str]
    pushed_at_ms: int

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> PushedStatus | None:
        pushed_at = number_attribute(item, STATUS_PUSHED_AT_ATTRIBUTE, None)
        if pushed_at is None:
            return None
        languages = item.get(STATUS_LANGUAGES_ATTRIBUTE)
        return cls(
            listener_count=number_attribute(item, STATUS_COUNT_ATTRIBUTE, 0) or 0,
            languages=frozenset(x for x in languages if isinstance(x, str))
            if isinstance(languages, list)
            else frozenset(),
            pushed_at_ms=pushed_at,
        )


def number_attribute(item: dict[str, Any], name: str, default: int | None) -> int | None:
    """A number attribute of a session item as an int; absent, ``default``; of another type, ``default`` (logged)."""
    value = item.get(name)
    if value is None:
        return default
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool) and Decimal(value).is_finite():
        return int(value)
    _log.warning("session item has a non-numeric %s; reading it as %s", name, default)
    return default


def _text(item: dict[str, Any], name: str) -> str:
    value = item.get(name, "")
    if isinstance(value, str):
        return value
    _log.warning("session item has a non-text %s; reading it as empty", name)
    return ""


def _optional_text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class BroadcastUpdate:
    """What a broadcast write found: the session as it was before it, and whether that state was already this
    very write's (an earlier attempt of it was applied and its answer lost, so the repeat finds what it set;
    whether that attempt changed anything can no longer be told)."""

    before: Session
    repeated: bool


@dataclass(frozen=True)
class SessionFacts:
    """What never changes about a session, cached by the processes that meet it (until ``expires_at_s``)."""

    source_language: str
    quality_tier: str
    expires_at_s: int
    seating: Seating = Seating(1, 0)
