"""The Sessions table: the only code that reads or writes session items."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.dynamodb import Guarded, TransactItem
from lambda_src.contract import errors, limits
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.contract.schema import (
    SESSIONS_BY_SWEEP_TIME_INDEX,
    SESSIONS_PARTITION_KEY,
    SESSIONS_SWEEP_AT_ATTRIBUTE,
    SESSIONS_TTL_ATTRIBUTE,
)
from lambda_src.model.broadcast import BroadcastChange
from lambda_src.model.partial_results import PartialResultUpdate
from lambda_src.model.session import (
    BROADCAST_CHANGE_ID_ATTRIBUTE,
    END_REASON_ATTRIBUTE,
    ENDED_AT_ATTRIBUTE,
    GRACE_ATTRIBUTE,
    LISTENER_COUNT_ATTRIBUTE,
    SEAT_CLOSED_ATTRIBUTE,
    SEAT_CREATED_ATTRIBUTE,
    SEAT_SHARDS_ATTRIBUTE,
    SPEAKER_CONNECTED_AT_ATTRIBUTE,
    STATUS_COUNT_ATTRIBUTE,
    STATUS_LANGUAGES_ATTRIBUTE,
    STATUS_PUSH_ID_ATTRIBUTE,
    STATUS_PUSHED_AT_ATTRIBUTE,
    TRANSCRIBER_CURSOR_ATTRIBUTE,
    TRANSCRIBER_LEASE_ID_ATTRIBUTE,
    TRANSCRIBER_LEASE_UNTIL_ATTRIBUTE,
    Audience,
    BroadcastUpdate,
    PushedStatus,
    Seat,
    Seating,
    Session,
    SessionFacts,
    audio_sequence_attribute,
    number_attribute,
    seat_language_attribute,
    shard_key,
)

_log = logging.getLogger(__name__)

# Every attribute name the update expressions use, as ``#name`` placeholders (some are reserved words).
_NAMES = {
    "#id": SESSIONS_PARTITION_KEY,
    "#expires": SESSIONS_TTL_ATTRIBUTE,
    "#sweep": SESSIONS_SWEEP_AT_ATTRIBUTE,
    "#grace": GRACE_ATTRIBUTE,
    "#speaker": "speakerConnectionId",
    "#speakerAt": SPEAKER_CONNECTED_AT_ATTRIBUTE,
    "#lease": TRANSCRIBER_LEASE_UNTIL_ATTRIBUTE,
    "#leaseId": TRANSCRIBER_LEASE_ID_ATTRIBUTE,
    "#cursor": TRANSCRIBER_CURSOR_ATTRIBUTE,
    "#user": "speakerUserId",
    "#active": "isActive",
    "#count": LISTENER_COUNT_ATTRIBUTE,
    "#seats": SEAT_SHARDS_ATTRIBUTE,
    "#seatCreated": SEAT_CREATED_ATTRIBUTE,
    "#seatClosed": SEAT_CLOSED_ATTRIBUTE,
    "#reason": END_REASON_ATTRIBUTE,
    "#ended": ENDED_AT_ATTRIBUTE,
    "#statusCount": STATUS_COUNT_ATTRIBUTE,
    "#statusLanguages": STATUS_LANGUAGES_ATTRIBUTE,
    "#statusAt": STATUS_PUSHED_AT_ATTRIBUTE,
    "#statusId": STATUS_PUSH_ID_ATTRIBUTE,
}
_LIVE = "attribute_exists(#id) AND #active = :true AND #expires > :now"


class SessionIdTaken(Exception):
    """The conditional put found a session with the same id that cannot be replaced (live, or expired with
    listeners still attached); draw another id."""


def _names(expression: str) -> dict[str, str]:
    """The ``#name`` placeholders ``expression`` uses, from the one table of names."""
    return {placeholder: name for placeholder, name in _NAMES.items() if placeholder in expression}


def _update(table: str, session_id: str, update: str, condition: str, **named_values: Any) -> dict[str, Any]:
    """UpdateItem arguments whose failed condition returns the old item (to say why it was refused)."""
    arguments: dict[str, Any] = {
        "TableName": table,
        "Key": dynamodb.serialize({SESSIONS_PARTITION_KEY: session_id}),
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": _names(update + " " + condition),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if named_values:
        arguments["ExpressionAttributeValues"] = dynamodb.values(**named_values)
    return arguments


class SessionsRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        # Immutable facts of sessions this process has seen (id -> facts): a join needs the source language
        # and quality tier for its reply, and cached ones save a read on every join after the first. An id
        # can be reused only after its session expired, so the facts are trusted until that expiry.
        self._facts: dict[str, SessionFacts] = {}

    def create_item(self, session: Session) -> Guarded:
        """Transaction item: a new session, only if its id is free — no item, or an expired session that TTL
        has not yet deleted and that has nothing attached any more (its ``listenerCount``, which equals its
        listener rows, is 0: otherwise they would become listeners of the new session); refused with
        :class:`SessionIdTaken` (draw another id). An expired session with seat shards counts its listeners on
        them, not on its item: its id is taken until TTL deletes its item."""
        condition = (
            "attribute_not_exists(#id) OR (#expires <= :now AND #count = :zero AND attribute_not_exists(#seats))"
        )
        put = {
            "Put": {
                "TableName": self.table_name,
                "Item": dynamodb.serialize(session.to_item()),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": _names(condition),
                "ExpressionAttributeValues": dynamodb.values(now=session.created_at_ms // 1000, zero=0),
            }
        }
        return put, lambda _old: SessionIdTaken(session.session_id)

    def get(self, session_id: str, now_s: int | None) -> Session | None:
        """The session, or None when there is none or it has expired by ``now_s`` (TTL deletion lags);
        ``now_s=None`` returns an expired session too (the sweeper ends those)."""
        response = dynamodb.request(
            "get_item",
            TableName=self.table_name,
            Key=dynamodb.serialize({SESSIONS_PARTITION_KEY: session_id}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        session = Session.from_item(dynamodb.deserialize(item))
        self.remember(session)
        return session if now_s is None or session.expires_at_s > now_s else None

    def remember(self, session: Session) -> None:
        if len(self._facts) >= _FACTS_CACHE_SIZE:
            self._facts.pop(next(iter(self._facts)))
        self._facts[session.session_id] = SessionFacts(
            session.source_language, session.quality_tier, session.expires_at_s, session.seating
        )

    def known_seating(self, session_id: str, now_s: int) -> Seating | None:
        """The session's seating when this process has seen the session (and it has not expired since), else None."""
        cached = self._facts.get(session_id)
        return cached.seating if cached is not None and cached.expires_at_s > now_s else None

    def seating(self, session_id: str, now_s: int) -> Seating:
        """The session's seating: as this process knows it, or read (expired sessions too: their listeners are still
        dismissed); a session that is gone has one shard (its listeners, if any, are under its id)."""
        known = self.known_seating(session_id, now_s)
        if known is not None:
            return known
        session = self.get(session_id, None)
        return session.seating if session is not None else Seating(1, 0)

    def facts(self, session_id: str, now_s: int) -> SessionFacts:
        """The session's immutable facts (source language, quality tier), from this process's cache when it
        has seen the session.

        Only existence is established by a read on a cache miss; whether the session is live is always
        decided by the condition of the write that follows.
        """
        cached = self._facts.get(session_id)
        if cached is not None and cached.expires_at_s > now_s:
            return cached
        session = self.get(session_id, now_s)
        if session is None:
            raise errors.session_not_found(session_id)
        if not session.is_active and session.seating.sharded:
            # A join of a session with seat shards writes nothing on its item: the read is what refuses it (its
            # seats, once closed, refuse the joins of processes that knew it live).
            raise errors.session_ended(session_id)
        return self._facts[session_id]

    def listener_counts(self, session_ids: Iterable[str]) -> dict[str, int]:
        """Each existing session's listener count (strongly consistent, so a join committed before the call
        is counted), ``BATCH_GET_SIZE`` sessions a BatchGetItem: its ``listenerCount``, or for a session with seat
        shards the sum of its seats' (their BatchGetItems follow); a session that is gone is left out."""
        projection = "#id, #count, #seats, #createdAt"
        options = {
            "ProjectionExpression": projection,
            "ExpressionAttributeNames": {**_names(projection), "#createdAt": "createdAt"},
            "ConsistentRead": True,
        }
        counts: dict[str, int] = {}
        sharded: dict[str, Seating] = {}
        for item in self._batch_get(session_ids, options):
            session = dynamodb.deserialize(item)
            session_id = session[SESSIONS_PARTITION_KEY]
            shards = number_attribute(session, SEAT_SHARDS_ATTRIBUTE, 1) or 1
            if shards > 1:
                sharded[session_id] = Seating(shards, number_attribute(session, "createdAt", 0) or 0)
            else:
                counts[session_id] = number_attribute(session, LISTENER_COUNT_ATTRIBUTE, 0) or 0
        for session_id, audience in self.audiences(sharded).items():
            counts[session_id] = audience.listener_count
        return counts

    # -- seat shards (decision record 0040) --------------------------------------------------------
    def seats(self, session_id: str, seating: Seating) -> list[Seat]:
        """The session's seats, in shard order, read with one strongly consistent BatchGetItem (a seat no join has
        taken yet reads as empty)."""
        return self.seats_of({session_id: seating})[session_id]

    def seats_of(self, seatings: dict[str, Seating]) -> dict[str, list[Seat]]:
        """The seats of each of the sharded sessions ``seatings`` names, ``BATCH_GET_SIZE`` seats a BatchGetItem,
        strongly consistent."""
        keys = {
            shard_key(session_id, shard): (session_id, shard)
            for session_id, seating in seatings.items()
            for shard in range(1, seating.shards + 1)
        }
        items: dict[str, dict[str, Any]] = {}
        for item in self._batch_get(keys, {"ConsistentRead": True}):
            seat = dynamodb.deserialize(item)
            items[seat[SESSIONS_PARTITION_KEY]] = seat
        seats: dict[str, list[Seat]] = {session_id: [] for session_id in seatings}
        for key, (session_id, shard) in keys.items():
            seats[session_id].append(Seat.from_item(shard, items.get(key), seatings[session_id].created_at_ms))
        return seats

    def audiences(self, seatings: dict[str, Seating]) -> dict[str, Audience]:
        """Each sharded session's listener count and listeners by language, summed over its seats."""
        return {session_id: Audience.of(seats) for session_id, seats in self.seats_of(seatings).items()}

    def take_seat_item(
        self, session_id: str, seating: Seating, shard: int, share: int, language: str, expires_at_s: int
    ) -> TransactItem:
        """Transaction item: count one more listener of ``language`` on the session's seat ``shard``, only while it
        is open and under its ``share`` of the cap; the first join to take the seat makes it (the session's
        creation writes none). Refused, with the seat as it was, when it is full, closed (the session ended) or an
        earlier session's of the same id (:meth:`reset_seat`)."""
        arguments = _update(
            self.table_name,
            shard_key(session_id, shard),
            "ADD #count :one, #language :one SET #seatCreated = :created, #expires = if_not_exists(#expires, :expires)",
            "attribute_not_exists(#id)"
            " OR (#seatCreated = :created AND attribute_not_exists(#seatClosed) AND #count < :share)",
            one=1,
            created=seating.created_at_ms,
            expires=expires_at_s,
            share=share,
        )
        arguments["ExpressionAttributeNames"]["#language"] = seat_language_attribute(language)
        return {"Update": arguments}

    def keep_seat_item(
        self, session_id: str, seating: Seating, shard: int, moved: tuple[str, str] | None = None
    ) -> TransactItem:
        """Transaction item: the seat ``shard`` is this session's and open (a refreshed listener takes over another's
        place on it, the count unchanged); when ``moved`` (old language, new language), its listener changes
        language on it."""
        condition = "#seatCreated = :created AND attribute_not_exists(#seatClosed)"
        if moved is None or moved[0] == moved[1]:
            arguments = _update(
                self.table_name, shard_key(session_id, shard), "", condition, created=seating.created_at_ms
            )
            del arguments["UpdateExpression"]
            return {"ConditionCheck": arguments}
        return {"Update": self._move_language(session_id, shard, moved, condition, created=seating.created_at_ms)}

    def move_language_item(self, session_id: str, shard: int, moved: tuple[str, str]) -> TransactItem:
        """Transaction item: one listener of the seat ``shard`` changes from ``moved[0]`` to ``moved[1]``."""
        return {"Update": self._move_language(session_id, shard, moved, "attribute_exists(#id)")}

    def _move_language(
        self, session_id: str, shard: int, moved: tuple[str, str], condition: str, **named_values: Any
    ) -> dict[str, Any]:
        arguments = _update(
            self.table_name,
            shard_key(session_id, shard),
            "ADD #from :minus, #to :one",
            condition,
            minus=-1,
            one=1,
            **named_values,
        )
        arguments["ExpressionAttributeNames"].update(
            {"#from": seat_language_attribute(moved[0]), "#to": seat_language_attribute(moved[1])}
        )
        return arguments

    def leave_seat_item(self, session_id: str, shard: int, language: str | None) -> TransactItem:
        """Transaction item: count one listener (of ``language``) less on the seat ``shard``; never below zero."""
        update = "ADD #count :minus" + (", #language :minus" if language else "")
        arguments = _update(
            self.table_name,
            shard_key(session_id, shard),
            update,
            "attribute_exists(#id) AND #count > :zero",
            minus=-1,
            zero=0,
        )
        if language:
            arguments["ExpressionAttributeNames"]["#language"] = seat_language_attribute(language)
        return {"Update": arguments}

    def reset_seat(
        self, session_id: str, seating: Seating, shard: int, stale_created_at_ms: int | None, expires_at_s: int
    ) -> None:
        """Replace the seat ``shard`` left by an earlier session of the same id (its incarnation
        ``stale_created_at_ms``) with an empty one of this session's; nothing when another call replaced it first."""
        item = {
            SESSIONS_PARTITION_KEY: shard_key(session_id, shard),
            LISTENER_COUNT_ATTRIBUTE: 0,
            SEAT_CREATED_ATTRIBUTE: seating.created_at_ms,
            SESSIONS_TTL_ATTRIBUTE: expires_at_s,
        }
        condition = "attribute_not_exists(#id)" if stale_created_at_ms is None else "#seatCreated = :stale"
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": dynamodb.serialize(item),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": _names(condition),
        }
        if stale_created_at_ms is not None:
            arguments["ExpressionAttributeValues"] = dynamodb.values(stale=stale_created_at_ms)
        try:
            dynamodb.request("put_item", **arguments)
        except ClientError as error:
            if dynamodb.error_code(error) != "ConditionalCheckFailedException":
                raise

    def close_seat(self, session_id: str, seating: Seating, shard: int, expires_at_s: int) -> None:
        """Close the session's seat ``shard`` (made closed when no join has taken it): no join takes it from now on.
        Idempotent; a seat an earlier session of the same id left is replaced by a closed one of this session's."""
        arguments = _update(
            self.table_name,
            shard_key(session_id, shard),
            "SET #seatClosed = :true, #seatCreated = :created, #count = if_not_exists(#count, :zero),"
            " #expires = if_not_exists(#expires, :expires)",
            "attribute_not_exists(#id) OR #seatCreated = :created",
            true=True,
            created=seating.created_at_ms,
            zero=0,
            expires=expires_at_s,
        )
        for _attempt in range(2):  # the second after replacing an earlier session's seat
            try:
                dynamodb.request("update_item", **arguments)
                return
            except ClientError as error:
                if dynamodb.error_code(error) != "ConditionalCheckFailedException":
                    raise
                old = dynamodb.old_image(error)
                stale = number_attribute(dynamodb.deserialize(old), SEAT_CREATED_ATTRIBUTE, None) if old else None
                self.reset_seat(session_id, seating, shard, stale, expires_at_s)
        _log.warning("seat %s of session %s could not be closed", shard, session_id)

    # -- listeners ---------------------------------------------------------------------------------
    def add_listener_item(self, session_id: str, now_s: int, cap: int) -> TransactItem:
        """Transaction item: count one more listener, only on a live, active session under the cap."""
        return {
            "Update": _update(
                self.table_name,
                session_id,
                "ADD #count :one",
                f"{_LIVE} AND #count < :cap",
                one=1,
                true=True,
                now=now_s,
                cap=cap,
            )
        }

    def check_live_item(self, session_id: str, now_s: int) -> TransactItem:
        """Transaction item: the session is live (a listener takes over another's place, count unchanged)."""
        arguments = _update(self.table_name, session_id, "", _LIVE, true=True, now=now_s)
        del arguments["UpdateExpression"]
        return {"ConditionCheck": arguments}

    def remove_listener_item(self, session_id: str) -> TransactItem:
        """Transaction item: count one listener less; never below zero and never on a deleted session."""
        return {
            "Update": _update(
                self.table_name,
                session_id,
                "ADD #count :minus",
                "attribute_exists(#id) AND #count > :zero",
                minus=-1,
                zero=0,
            )
        }

    # -- the speaker -------------------------------------------------------------------------------
    def speaker_dropped_item(self, session_id: str, connection_id: str, now_s: int, grace_ends_s: int) -> TransactItem:
        """Transaction item: the session's current speaker connection dropped; open the resume window.

        Fails when ``connection_id`` is no longer the session's speaker (it was refreshed or resumed away),
        so an old connection's close never looks like a drop.
        """
        return {
            "Update": _update(
                self.table_name,
                session_id,
                "SET #grace = :grace, #sweep = :grace",
                f"{_LIVE} AND #speaker = :connection",
                grace=grace_ends_s,
                true=True,
                now=now_s,
                connection=connection_id,
            )
        }

    def take_over_speaker_item(
        self, session_id: str, connection_id: str, user_id: str, now_ms: int, expires_at_s: int
    ) -> TransactItem:
        """Transaction item: ``connection_id`` becomes the speaker connection of the owner's live session, which
        now lives until ``expires_at_s`` (its speaker is connected again, so that is also when it is due for
        the sweeper)."""
        return {
            "Update": _update(
                self.table_name,
                session_id,
                "SET #speaker = :connection, #speakerAt = :connectedAt, #expires = :expires, #sweep = :expires"
                " REMOVE #grace",
                f"{_LIVE} AND #user = :user",
                connection=connection_id,
                connectedAt=now_ms,
                user=user_id,
                expires=expires_at_s,
                true=True,
                now=now_ms // 1000,
            )
        }

    def update_config(self, session_id: str, connection_id: str, update: PartialResultUpdate, now_s: int) -> Session:
        """Apply the partial-result settings ``update`` asks for, as the session's speaker; the new session."""
        return self._set_as_speaker(session_id, connection_id, update.to_item(), now_s, returning="ALL_NEW")

    def update_config_as_owner(self, session_id: str, user_id: str, update: PartialResultUpdate, now_s: int) -> Session:
        """Apply the partial-result settings ``update`` asks for, as the session's owner (the HTTP API: no
        connection), on a live session only; the new session. Refused as :meth:`refusal` says (gone, ended,
        another speaker's)."""
        return self._set(session_id, update.to_item(), now_s, returning="ALL_NEW", user_id=user_id)

    def update_broadcast(
        self, session_id: str, connection_id: str, change: BroadcastChange, now_s: int
    ) -> BroadcastUpdate:
        """Set what ``change`` sets of the broadcast state, as the session's live speaker; the session as it was
        before (so the caller knows, without a read, whether anything changed). The write also sets an id it
        draws, so that a repeat of it (its first attempt applied, the answer lost) knows the state it finds for
        its own: ``BroadcastUpdate.repeated``."""
        change_id = uuid.uuid4().hex
        changes = {**change.to_item(), BROADCAST_CHANGE_ID_ATTRIBUTE: change_id}
        before = self._set_as_speaker(session_id, connection_id, changes, now_s, returning="ALL_OLD")
        self.remember(before)
        return BroadcastUpdate(before, repeated=before.broadcast_change_id == change_id)

    def _set_as_speaker(
        self, session_id: str, connection_id: str, changes: dict[str, Any], now_s: int, *, returning: str
    ) -> Session:
        """SET ``changes`` (attribute -> value) on the live session whose speaker is ``connection_id``, in one
        conditional UpdateItem; the session as ``returning`` says (``ALL_NEW`` or ``ALL_OLD``)."""
        return self._set(session_id, changes, now_s, returning=returning, connection_id=connection_id)

    def _set(
        self,
        session_id: str,
        changes: dict[str, Any],
        now_s: int,
        *,
        returning: str,
        connection_id: str | None = None,
        user_id: str | None = None,
    ) -> Session:
        """SET ``changes`` on the live session, as its speaker connection (``connection_id``) or its owner
        (``user_id``), in one conditional UpdateItem; the session as ``returning`` says."""
        names = {f"#c{i}": attribute for i, attribute in enumerate(changes)}
        assignments = ", ".join(f"{placeholder} = :c{i}" for i, placeholder in enumerate(names))
        caller: dict[str, str]
        if connection_id is not None:
            condition, caller = f"{_LIVE} AND #speaker = :connection", {"connection": connection_id}
        elif user_id is not None:
            condition, caller = f"{_LIVE} AND #user = :user", {"user": user_id}
        else:
            raise ValueError("a session is changed as its speaker connection or as its owner")
        arguments = _update(
            self.table_name,
            session_id,
            f"SET {assignments}",
            condition,
            true=True,
            now=now_s,
            **caller,
            **{f"c{i}": value for i, value in enumerate(changes.values())},
        )
        arguments["ExpressionAttributeNames"].update(names)
        arguments["ReturnValues"] = returning
        attributes = self._conditional_update(
            arguments, session_id, now_s, connection_id=connection_id, user_id=user_id
        )
        return Session.from_item(dynamodb.deserialize(attributes))

    # -- the transcription consumer ------------------------------------------------------------------
    def hold_transcriber_lease(
        self,
        session_id: str,
        lease_id: str,
        now_ms: int,
        cursor: str | None,
        *,
        taking_over: str | None = None,
        renewing: bool = False,
    ) -> tuple[bool, Session | None]:
        """Take or renew the lease of the session's transcription consumer until ``now_ms`` +
        ``TRANSCRIBER_LEASE_SECONDS`` (one conditional UpdateItem), recording ``cursor`` when given, on a live
        session only. A renewal (``renewing``) succeeds only while the lease is still ``lease_id``'s: once
        another consumer took it, or its holder let it go, the holder must not go on. A take succeeds when the
        lease has lapsed or is absent, is ``lease_id``'s, or is ``taking_over``'s (a predecessor handing over).
        (held, the session): as it is now when held; as it was when not (None: no session)."""
        assignments = "SET #lease = :until, #leaseId = :leaseId" + (", #cursor = :cursor" if cursor else "")
        owners = "#leaseId = :leaseId" + (" OR #leaseId = :previous" if taking_over and not renewing else "")
        takeable = owners if renewing else f"attribute_not_exists(#lease) OR #lease <= :nowMs OR {owners}"
        arguments = _update(
            self.table_name,
            session_id,
            assignments,
            f"{_LIVE} AND ({takeable})",
            until=now_ms + limits.TRANSCRIBER_LEASE_SECONDS * 1000,
            leaseId=lease_id,
            true=True,
            now=now_ms // 1000,
            **({} if renewing else {"nowMs": now_ms}),
            **({"cursor": cursor} if cursor else {}),
            **({"previous": taking_over} if taking_over and not renewing else {}),
        )
        arguments["ReturnValues"] = "ALL_NEW"
        try:
            response = dynamodb.request("update_item", **arguments)
        except ClientError as error:
            if dynamodb.error_code(error) != "ConditionalCheckFailedException":
                raise
            old: Any = error.response.get("Item")
            return False, None if old is None else Session.from_item(dynamodb.deserialize(old))
        held = Session.from_item(dynamodb.deserialize(response["Attributes"]))
        self.remember(held)
        return True, held

    def release_transcriber_lease(self, session_id: str, lease_id: str, cursor: str | None) -> bool:
        """Let the lease go (its consumer stopped), recording ``cursor`` when given; whether it was still
        ``lease_id``'s (one conditional UpdateItem; the item may have been deleted by now)."""
        arguments = _update(
            self.table_name,
            session_id,
            "REMOVE #lease, #leaseId" + (" SET #cursor = :cursor" if cursor else ""),
            "attribute_exists(#id) AND #leaseId = :leaseId",
            leaseId=lease_id,
            **({"cursor": cursor} if cursor else {}),
        )
        return _applied_if(arguments)

    def draw_audio_sequence_numbers(
        self, session_id: str, lease_id: str | None, languages: Sequence[str]
    ) -> dict[str, int] | None:
        """The next ``translatedAudio`` sequence number of each of ``languages`` (consecutive from 1 per session and
        language), drawn by one UpdateItem that adds 1 to each language's counter on the session item and returns
        the new values. Drawn only while the transcription consumer's lease is ``lease_id``'s (so a consumer that
        lost its lease numbers nothing beside its successor); ``lease_id`` None (a delivery outside a consumer)
        draws on any existing session. None when the condition failed: nothing was drawn."""
        if not languages:
            return {}
        placeholders = {f"#audio{n}": audio_sequence_attribute(language) for n, language in enumerate(languages)}
        condition = "attribute_exists(#id)" + (" AND #leaseId = :leaseId" if lease_id is not None else "")
        arguments = _update(
            self.table_name,
            session_id,
            "ADD " + ", ".join(f"{placeholder} :one" for placeholder in placeholders),
            condition,
            one=1,
            **({"leaseId": lease_id} if lease_id is not None else {}),
        )
        # Named here, not by _names: "#leaseId" would also bring in "#lease", which this update does not use.
        arguments["ExpressionAttributeNames"] = {
            "#id": SESSIONS_PARTITION_KEY,
            **({"#leaseId": TRANSCRIBER_LEASE_ID_ATTRIBUTE} if lease_id is not None else {}),
            **placeholders,
        }
        arguments["ReturnValues"] = "UPDATED_NEW"
        del arguments["ReturnValuesOnConditionCheckFailure"]
        try:
            response = dynamodb.request("update_item", **arguments)
        except ClientError as error:
            if dynamodb.error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        drawn = dynamodb.deserialize(response["Attributes"])
        return {language: int(drawn[audio_sequence_attribute(language)]) for language in languages}

    def record_status_push(self, session: Session, status: PushedStatus) -> bool:
        """Record the change push about to be sent to the session's speaker, only if nobody recorded one since
        ``session`` was read (another shard's batch of the same session) and the speaker is still the same
        live connection; whether this call recorded it (then, and only then, it is sent).

        The record carries an id this call draws: a repeat of the write whose first attempt was applied but
        whose answer was lost is refused (the record is no longer the one read), finds its own id, and so
        knows the record for this call's."""
        seen = session.status_pushed.pushed_at_ms if session.status_pushed else None
        seen_condition = "attribute_not_exists(#statusAt)" if seen is None else "#statusAt = :seen"
        push_id = uuid.uuid4().hex
        arguments = _update(
            self.table_name,
            session.session_id,
            "SET #statusCount = :count, #statusLanguages = :languages, #statusAt = :at, #statusId = :pushId",
            f"attribute_exists(#id) AND #active = :true AND #speaker = :connection AND {seen_condition}",
            count=status.listener_count,
            languages=sorted(status.languages),
            at=status.pushed_at_ms,
            pushId=push_id,
            true=True,
            connection=session.speaker_connection_id,
            **({"seen": seen} if seen is not None else {}),
        )
        try:
            dynamodb.request("update_item", **arguments)
        except ClientError as error:
            if dynamodb.error_code(error) != "ConditionalCheckFailedException":
                raise
            old = dynamodb.old_image(error)
            recorded = dynamodb.deserialize(old).get(STATUS_PUSH_ID_ATTRIBUTE) if old is not None else None
            if recorded == push_id:
                _log.info("session %s: an earlier attempt of this status record was applied", session.session_id)
                return True
            return False
        return True

    def end_by_speaker(
        self, session_id: str, connection_id: str, reason: str, now_ms: int, also: Sequence[TransactItem] = ()
    ) -> Seating:
        """End the session for good, as its current speaker (with ``also`` in the same transaction); its seating."""
        return self._end(session_id, reason, now_ms, "#speaker = :connection", also, None, connection=connection_id)

    def end_by_owner(
        self,
        session_id: str,
        user_id: str,
        reason: str,
        now_ms: int,
        seating: Seating,
        also: Sequence[TransactItem] = (),
    ) -> Seating:
        """End the session for good, as its owner (the HTTP API: whether or not its speaker is connected)."""
        return self._end(session_id, reason, now_ms, "#user = :user", also, seating, user=user_id)

    def end_if_due(
        self,
        session_id: str,
        sweep_at_s: int,
        reason: str,
        now_ms: int,
        seating: Seating,
        also: Sequence[TransactItem] = (),
    ) -> bool:
        """End a session the sweeper found due (with ``also`` in the same transaction), unless it changed since
        (e.g. its speaker resumed); whether it was ended."""
        try:
            self._end(session_id, reason, now_ms, "#sweep = :seen", also, seating, seen=sweep_at_s)
        except ServiceError:
            return False
        return True

    def _end(
        self,
        session_id: str,
        reason: str,
        now_ms: int,
        condition: str,
        also: Sequence[TransactItem],
        seating: Seating | None,
        **named_values: Any,
    ) -> Seating:
        """Mark the session ended: inactive (no join succeeds from now on), and due for one more sweep a
        sweep interval later, so that the sweeper dismisses any listener this ending did not reach (it
        takes the session out of its index once no listener is left). One transaction with ``also`` (the
        speaker's active sessions lose this one in the same write). The session's seating: the seats of a
        session with seat shards are closed by the caller, after this.

        The listener count is left to fall as the listeners' connections close and are counted out, so it
        keeps matching the listener rows. A repeat whose first attempt was applied but whose reply was lost
        finds the session inactive with this call's reason and ``endedAt``: it was this very call, so that
        is a success.

        When neither the caller (``seating``) nor this process knows the session's seating, the write also requires
        it to have no seat shards (so it costs nothing to learn for a session of one shard): one that has them is
        refused with the item as it was, which tells them, and the ending is made again.
        """
        known = seating if seating is not None else self.known_seating(session_id, now_ms // 1000)
        assumed = " AND attribute_not_exists(#seats)" if known is None else ""
        arguments = _update(
            self.table_name,
            session_id,
            "SET #active = :false, #reason = :reason, #ended = :ended, #sweep = :revisit REMOVE #grace",
            f"attribute_exists(#id) AND #active = :true AND {condition}{assumed}",
            false=False,
            true=True,
            reason=reason,
            ended=now_ms,
            revisit=now_ms // 1000 + limits.SWEEP_INTERVAL_SECONDS,
            **named_values,
        )
        try:
            dynamodb.transact([{"Update": arguments}, *also])
        except ClientError as error:
            reasons: list[Any] = list(error.response.get("CancellationReasons", []))
            if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
                raise
            old: dict[str, Any] | None = reasons[0].get("Item")
            current = Session.from_item(dynamodb.deserialize(old)) if old is not None else None
            if (
                current is not None
                and not current.is_active
                and (current.end_reason, current.ended_at_ms) == (reason, now_ms)
            ):
                _log.info("session %s: an earlier attempt of this ending was applied", session_id)
                return current.seating
            if known is None and current is not None and current.seating.sharded:
                # Refused for the guess alone, maybe: made again knowing the session's seating.
                return self._end(session_id, reason, now_ms, condition, also, current.seating, **named_values)
            raise self.refusal(
                old, session_id, None, connection_id=named_values.get("connection"), user_id=named_values.get("user")
            ) from error
        return known if known is not None else Seating(1, 0)

    def revisit_ended(self, session_id: str, seen_s: int, next_s: int | None) -> bool:
        """An ended session the sweeper looked at again: due again at ``next_s`` (listeners were still
        attached), or out of the sweeper's index for good (``None``). Only if ``sweepAt`` is still
        ``seen_s`` (another sweep got there first otherwise); whether this call changed it."""
        update = "SET #sweep = :next" if next_s is not None else "REMOVE #sweep"
        arguments = _update(
            self.table_name,
            session_id,
            update,
            "attribute_exists(#id) AND #active = :false AND #sweep = :seen",
            false=False,
            seen=seen_s,
            **({"next": next_s} if next_s is not None else {}),
        )
        return _applied_if(arguments)

    def _conditional_update(
        self,
        arguments: dict[str, Any],
        session_id: str,
        now_s: int | None,
        *,
        connection_id: str | None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        try:
            return dynamodb.request("update_item", **arguments)["Attributes"]
        except ClientError as error:
            if dynamodb.error_code(error) != "ConditionalCheckFailedException":
                raise
            old = dynamodb.old_image(error)
            raise self.refusal(old, session_id, now_s, connection_id=connection_id, user_id=user_id) from error

    # -- the sweeper -------------------------------------------------------------------------------
    def sweep_index(self) -> Iterator[tuple[str, int]]:
        """(session id, sweep time) of every session in the sweeper's sparse index: the active ones, and
        ended ones whose listeners are still being dismissed. The whole index is read (a filtered Scan
        reads, and costs, every item all the same); the sweeper picks the due ones and those to probe."""
        pages = dynamodb.pages("scan", TableName=self.table_name, IndexName=SESSIONS_BY_SWEEP_TIME_INDEX)
        for page in pages:
            for item in page.get("Items", []):
                row = dynamodb.deserialize(item)
                yield row[SESSIONS_PARTITION_KEY], int(row[SESSIONS_SWEEP_AT_ATTRIBUTE])

    def active_sessions(self, session_ids: Iterable[str]) -> list[Session]:
        """The active sessions among ``session_ids`` (the sweep index's: every active session is in it), read
        whole with BatchGetItem, ``BATCH_GET_SIZE`` keys a request, eventually consistent (half a read unit per
        session, items being well under 4 KB: a level published once a minute, and the periodic status, need
        no more)."""
        sessions = [Session.from_item(dynamodb.deserialize(item)) for item in self._batch_get(session_ids, {})]
        for session in sessions:
            self.remember(session)
        return [session for session in sessions if session.is_active]

    def live_ids(self, session_ids: Iterable[str], user_id: str, now_s: int) -> set[str]:
        """Which of ``session_ids`` are live sessions of ``user_id`` (there, theirs, active and unexpired at
        ``now_s``; an expired id may have been reused by another speaker), read consistently with
        BatchGetItem, projected to what decides it."""
        projection = "#id, #user, #active, #expires"
        options = {"ProjectionExpression": projection, "ExpressionAttributeNames": _names(projection)}
        sessions = (
            dynamodb.deserialize(item) for item in self._batch_get(session_ids, {**options, "ConsistentRead": True})
        )
        return {
            session[SESSIONS_PARTITION_KEY]
            for session in sessions
            if session.get("isActive") is True
            and session.get("speakerUserId") == user_id
            and (number_attribute(session, SESSIONS_TTL_ATTRIBUTE, 0) or 0) > now_s
        }

    def _batch_get(self, session_ids: Iterable[str], options: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The items of ``session_ids`` (each once), ``BATCH_GET_SIZE`` keys a request with ``options``. Keys
        DynamoDB leaves unprocessed are asked again, up to ``BATCH_GET_ATTEMPTS`` times; then this raises
        rather than answer short."""
        keys = [dynamodb.serialize({SESSIONS_PARTITION_KEY: s}) for s in dict.fromkeys(session_ids)]
        for start in range(0, len(keys), BATCH_GET_SIZE):
            pending = keys[start : start + BATCH_GET_SIZE]
            for attempt in range(BATCH_GET_ATTEMPTS):
                if attempt:
                    time.sleep(random.uniform(0, 0.05 * 2**attempt))
                response = dynamodb.request(
                    "batch_get_item", RequestItems={self.table_name: {"Keys": pending, **options}}
                )
                yield from response.get("Responses", {}).get(self.table_name, [])
                pending = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if not pending:
                    break
            else:
                raise RuntimeError(f"{len(pending)} sessions left unprocessed after {BATCH_GET_ATTEMPTS} attempts")

    # -- refusals ----------------------------------------------------------------------------------
    @staticmethod
    def refusal(
        old_item: dict[str, Any] | None,
        session_id: str,
        now_s: int | None,
        *,
        connection_id: str | None = None,
        user_id: str | None = None,
    ) -> ServiceError:
        """Why a conditional write on the session was refused, as the client should hear it.

        Checked in the order the conditions matter to a client: gone, ended, not the speaker / owner,
        and otherwise (for a join) the listener cap.
        """
        if old_item is None:
            return errors.session_not_found(session_id)
        session = Session.from_item(dynamodb.deserialize(old_item))
        if now_s is not None and session.expires_at_s <= now_s:
            return errors.session_not_found(session_id)
        if not session.is_active:
            return errors.session_ended(session_id)
        if connection_id is not None and session.speaker_connection_id != connection_id:
            return errors.not_the_speaker(session_id)
        if user_id is not None and session.speaker_user_id != user_id:
            return errors.another_speakers(session_id)
        return ServiceError(
            ErrorCode.SESSION_FULL,
            f"session {session_id} has reached its listener limit of {session.listener_count}",
            field="sessionId",
        )


def _applied_if(arguments: dict[str, Any]) -> bool:
    """Make a conditional UpdateItem; whether its condition held (a failed one is an answer, not an error)."""
    del arguments["ReturnValuesOnConditionCheckFailure"]
    try:
        dynamodb.request("update_item", **arguments)
    except ClientError as error:
        if dynamodb.error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


_FACTS_CACHE_SIZE = 4096
# BatchGetItem's most keys a request, and the requests made for keys it leaves unprocessed (throttled).
BATCH_GET_SIZE = 100
BATCH_GET_ATTEMPTS = 4
