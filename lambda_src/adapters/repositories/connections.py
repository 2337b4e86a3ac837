"""The Connections table: one row per open WebSocket connection, the only code that touches it."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.attribute_values import from_attribute
from lambda_src.adapters.repositories.dynamodb import TransactItem
from lambda_src.contract import limits, wire
from lambda_src.contract.schema import (
    CONNECTIONS_BY_SESSION_INDEX,
    CONNECTIONS_BY_SESSION_PARTITION_KEY,
    CONNECTIONS_BY_SESSION_SORT_KEY,
    CONNECTIONS_PARTITION_KEY,
    CONNECTIONS_TTL_ATTRIBUTE,
    ROLE_LISTENER,
    ROLE_NONE,
    ROLE_SPEAKER,
    WELCOME_ATTRIBUTE,
)
from lambda_src.model.session import shard_key

# API Gateway closes every WebSocket connection after 2 hours; a row outlives it by a margin so that a
# late $disconnect still finds it, then TTL removes rows whose $disconnect never came.
ROW_LIFETIME_SECONDS = 3 * 3600
# The stream-triggered welcome function delivers the message of WELCOME_ATTRIBUTE once the handshake is done.
# Messages the welcome function posts after the first one, in order (a speaker's restored broadcast state).
WELCOME_THEN_ATTRIBUTE = "welcomeThen"
# Set once the client has been asked to refresh its connection before API Gateway's 2-hour limit.
REFRESH_NOTIFIED_ATTRIBUTE = "refreshNotified"
# A listener's choice of what it receives (``wire.OUTPUTS``), written only when it is not the default (both), so
# the original listener app's row keeps its shape; absent reads as both.
OUTPUT_ATTRIBUTE = "output"
# Present (true) while the listener has paused its playback (``pausePlayback``): no ``translatedAudio`` is posted
# to it until ``resumePlayback`` removes it, and none is owed after.
PLAYBACK_PAUSED_ATTRIBUTE = "playbackPaused"
_CACHE_SIZE = 4096
# BatchGetItem's most keys a request, and the requests made for keys it leaves unprocessed (throttled).
BATCH_GET_SIZE = 100
BATCH_GET_ATTEMPTS = 4


@dataclass(frozen=True)
class Connection:
    connection_id: str
    connected_at_ms: int
    role: str = ROLE_NONE
    user_id: str | None = None
    session_id: str | None = None
    target_language: str | None = None
    welcome: str | None = None
    welcome_then: tuple[str, ...] = ()
    output: str = wire.DEFAULT_OUTPUT
    playback_paused: bool = False
    # The seat shard a listener of a session with seat shards holds (decision record 0040); None otherwise. Its
    # ``sessionId`` attribute is then the shard's key, ``<sessionId>#<k>``, which is also its listener-index key.
    shard: int | None = None

    @property
    def index_key(self) -> str | None:
        """The row's ``sessionId`` attribute as stored: its session's id, or its shard's key."""
        if self.session_id is None or self.shard is None:
            return self.session_id
        return shard_key(self.session_id, self.shard)

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            CONNECTIONS_PARTITION_KEY: self.connection_id,
            "role": self.role,
            "connectedAt": self.connected_at_ms,
            CONNECTIONS_TTL_ATTRIBUTE: self.connected_at_ms // 1000 + ROW_LIFETIME_SECONDS,
        }
        optional = {
            "userId": self.user_id,
            "sessionId": self.index_key,
            CONNECTIONS_BY_SESSION_SORT_KEY: self.target_language,
            WELCOME_ATTRIBUTE: self.welcome,
            WELCOME_THEN_ATTRIBUTE: list(self.welcome_then) or None,
            OUTPUT_ATTRIBUTE: self.output if self.output != wire.DEFAULT_OUTPUT else None,
            PLAYBACK_PAUSED_ATTRIBUTE: True if self.playback_paused else None,
        }
        item.update({key: value for key, value in optional.items() if value is not None})
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Connection:
        session_id, shard = split_index_key(item.get("sessionId"))
        return cls(
            connection_id=item[CONNECTIONS_PARTITION_KEY],
            connected_at_ms=int(item.get("connectedAt", 0)),
            role=item.get("role", ROLE_NONE),
            user_id=item.get("userId"),
            session_id=session_id,
            shard=shard,
            target_language=item.get(CONNECTIONS_BY_SESSION_SORT_KEY),
            welcome=item.get(WELCOME_ATTRIBUTE),
            welcome_then=tuple(item.get(WELCOME_THEN_ATTRIBUTE) or ()),
            output=output_of(item),
            playback_paused=item.get(PLAYBACK_PAUSED_ATTRIBUTE) is True,
        )


def split_index_key(value: Any) -> tuple[str | None, int | None]:
    """(session id, shard) of a row's ``sessionId`` attribute: ``<sessionId>#<k>`` for a listener holding seat
    shard k, else the session id and None."""
    if not isinstance(value, str):
        return None, None
    session_id, mark, shard = value.rpartition("#")
    if mark and shard.isdigit():
        return session_id, int(shard)
    return value, None


def output_of(item: Mapping[str, Any]) -> str:
    """A (deserialized) row's output choice: absent or unreadable, the default (both)."""
    output = item.get(OUTPUT_ATTRIBUTE)
    return output if isinstance(output, str) and output in wire.OUTPUTS else wire.DEFAULT_OUTPUT


@dataclass(frozen=True)
class DeliveryChoice:
    """What a listener wants delivered: its ``output`` (``wire.OUTPUTS``) and whether its playback is paused."""

    output: str = wire.DEFAULT_OUTPUT
    playback_paused: bool = False

    @property
    def wants_captions(self) -> bool:
        return self.output != wire.OUTPUT_AUDIO

    @property
    def wants_audio(self) -> bool:
        """Whether ``translatedAudio`` goes to it now: it asked for audio and has not paused its playback."""
        return self.output != wire.OUTPUT_CAPTIONS and not self.playback_paused


@dataclass(frozen=True)
class RowChange:
    """One record of the Connections table's stream: what happened to a row (``INSERT``, ``MODIFY``, ``REMOVE``),
    and the row before and after it (None where the record carries no such image)."""

    event_name: str
    old: Connection | None
    new: Connection | None


def stream_changes(event: Mapping[str, Any]) -> list[RowChange]:
    """The row changes of a Connections stream event, their images read as rows: the one reader of this table's
    stream images, as :meth:`Connection.from_item` is of its items."""
    changes = []
    for record in event.get("Records", []):
        images = record.get("dynamodb", {})
        old, new = _row_of(images.get("OldImage")), _row_of(images.get("NewImage"))
        changes.append(RowChange(record.get("eventName", ""), old, new))
    return changes


def _row_of(image: Mapping[str, Any] | None) -> Connection | None:
    if not image or CONNECTIONS_PARTITION_KEY not in image:
        return None
    return Connection.from_item({name: from_attribute(value) for name, value in image.items()})


class ConnectionsRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        # Connection id -> session id, for connections this process saw attached to a session. A connection
        # is attached once; speakers never detach, so a cached speaker mapping cannot go stale (and every
        # speaker action's write re-checks it anyway).
        self._sessions: dict[str, str] = {}

    def remember_session(self, connection_id: str, session_id: str) -> None:
        if len(self._sessions) >= _CACHE_SIZE:
            self._sessions.pop(next(iter(self._sessions)))
        self._sessions[connection_id] = session_id

    def session_of(self, connection_id: str) -> str | None:
        """The session this connection belongs to (cached after the first lookup), or None."""
        cached = self._sessions.get(connection_id)
        if cached is not None:
            return cached
        connection = self.get(connection_id)
        if connection is None or connection.session_id is None:
            return None
        if connection.role == ROLE_SPEAKER:
            self.remember_session(connection_id, connection.session_id)
        return connection.session_id

    def put(self, connection: Connection) -> None:
        """Register a plain connection (no session yet)."""
        dynamodb.request("put_item", TableName=self.table_name, Item=dynamodb.serialize(connection.to_item()))

    def put_item(self, connection: Connection) -> TransactItem:
        """Transaction item: register a connection that joins or creates a session as it connects."""
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": dynamodb.serialize(connection.to_item()),
                "ConditionExpression": "attribute_not_exists(#id)",
                "ExpressionAttributeNames": {"#id": CONNECTIONS_PARTITION_KEY},
            }
        }

    def attach_item(
        self,
        connection_id: str,
        session_id: str,
        role: str,
        target_language: str | None = None,
        output: str = wire.DEFAULT_OUTPUT,
        shard: int | None = None,
    ) -> TransactItem:
        """Transaction item: an open connection that is in no session yet becomes a speaker or listener (with its
        ``output`` choice, written when it is not the default; and the seat ``shard`` it holds, if any)."""
        names = {"#id": CONNECTIONS_PARTITION_KEY, "#session": "sessionId", "#role": "role"}
        assignments = ["#session = :session", "#role = :role"]
        index_key = session_id if shard is None else shard_key(session_id, shard)
        named_values: dict[str, Any] = {"session": index_key, "role": role}
        if target_language is not None:
            names["#language"] = CONNECTIONS_BY_SESSION_SORT_KEY
            assignments.append("#language = :language")
            named_values["language"] = target_language
        if output != wire.DEFAULT_OUTPUT:
            names["#output"] = OUTPUT_ATTRIBUTE
            assignments.append("#output = :output")
            named_values["output"] = output
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
                "UpdateExpression": "SET " + ", ".join(assignments),
                "ConditionExpression": "attribute_exists(#id) AND attribute_not_exists(#session)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": dynamodb.values(**named_values),
            }
        }

    def get(self, connection_id: str) -> Connection | None:
        response = dynamodb.request(
            "get_item",
            TableName=self.table_name,
            Key=dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return Connection.from_item(dynamodb.deserialize(item)) if item else None

    def delete_item(self, connection_id: str) -> TransactItem:
        """Transaction item: remove the row, only if it is still there (so a removal is counted once)."""
        return {
            "Delete": {
                "TableName": self.table_name,
                "Key": dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
                "ConditionExpression": "attribute_exists(#id)",
                "ExpressionAttributeNames": {"#id": CONNECTIONS_PARTITION_KEY},
            }
        }

    def replace_listener_item(
        self, connection_id: str, index_key: str, target_language: str | None = None
    ) -> TransactItem:
        """Transaction item: remove a listener's old row when its refreshed connection takes its place (the row's
        ``index_key``: its session's id, or its seat shard's key; and, when given, still in ``target_language``)."""
        condition = "#session = :session AND #role = :listener"
        names = {"#session": "sessionId", "#role": "role"}
        named_values = {"session": index_key, "listener": ROLE_LISTENER}
        if target_language is not None:
            condition += " AND #language = :language"
            names["#language"] = CONNECTIONS_BY_SESSION_SORT_KEY
            named_values["language"] = target_language
        return {
            "Delete": {
                "TableName": self.table_name,
                "Key": dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": dynamodb.values(**named_values),
            }
        }

    def detach_item(self, connection_id: str, session_id: str) -> TransactItem:
        """Transaction item: a listener leaves its session but keeps its connection open (``session_id``: the row's
        ``sessionId`` as stored, :attr:`Connection.index_key`)."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
                "UpdateExpression": "SET #role = :none REMOVE #session, #language",
                "ConditionExpression": "#session = :session AND #role = :listener",
                "ExpressionAttributeNames": {
                    "#session": "sessionId",
                    "#role": "role",
                    "#language": CONNECTIONS_BY_SESSION_SORT_KEY,
                },
                "ExpressionAttributeValues": dynamodb.values(
                    session=session_id, listener=ROLE_LISTENER, none=ROLE_NONE
                ),
            }
        }

    def change_language(self, connection_id: str, target_language: str) -> Connection:
        """A listener of a session with no seat shards listens in ``target_language`` from now on (its index entry
        moves with it); the row as it is now. Refused with :class:`NotAListener` (holding the row as it was, or
        None) when the connection is not a listener attached to a session, or holds a seat shard (its shard's
        language counters move with it: :meth:`change_language_item`, with the row as read)."""
        return self._update_listener(
            connection_id,
            "SET #language = :language",
            {"#language": CONNECTIONS_BY_SESSION_SORT_KEY},
            unsharded=True,
            language=target_language,
        )

    def change_language_item(self, row: Connection, target_language: str) -> TransactItem:
        """Transaction item: the listener ``row`` (as read) listens in ``target_language`` from now on, only if it
        is still that session's listener on that shard, in the language read."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": dynamodb.serialize({CONNECTIONS_PARTITION_KEY: row.connection_id}),
                "UpdateExpression": "SET #language = :language",
                "ConditionExpression": "#role = :listener AND #session = :session AND #language = :was",
                "ExpressionAttributeNames": {
                    "#role": "role",
                    "#session": "sessionId",
                    "#language": CONNECTIONS_BY_SESSION_SORT_KEY,
                },
                "ExpressionAttributeValues": dynamodb.values(
                    listener=ROLE_LISTENER, session=row.index_key, was=row.target_language, language=target_language
                ),
            }
        }

    def set_output(self, connection_id: str, output: str) -> Connection:
        """A listener of a session receives ``output`` (``wire.OUTPUTS``) from now on (the default, both, is
        stored as no attribute); the row as it is now. Refused as :meth:`change_language` is."""
        names = {"#output": OUTPUT_ATTRIBUTE}
        if output == wire.DEFAULT_OUTPUT:
            return self._update_listener(connection_id, "REMOVE #output", names)
        return self._update_listener(connection_id, "SET #output = :output", names, output=output)

    def set_playback_paused(self, connection_id: str, paused: bool) -> Connection:
        """A listener of a session pauses (or resumes) its playback; the row as it is now. Refused as
        :meth:`change_language` is."""
        names = {"#paused": PLAYBACK_PAUSED_ATTRIBUTE}
        if paused:
            return self._update_listener(connection_id, "SET #paused = :paused", names, paused=True)
        return self._update_listener(connection_id, "REMOVE #paused", names)

    def _update_listener(
        self, connection_id: str, update: str, names: dict[str, str], *, unsharded: bool = False, **named_values: Any
    ) -> Connection:
        """One conditional UpdateItem of a listener's row (it is a listener attached to a session; and, when
        ``unsharded``, holding no seat shard); the row as it is now, or :class:`NotAListener` with the row as it
        was (None: no row)."""
        condition = "#role = :listener AND attribute_exists(#session)"
        if unsharded:
            condition += " AND NOT contains(#session, :shardMark)"
            named_values["shardMark"] = "#"
        try:
            response = dynamodb.request(
                "update_item",
                TableName=self.table_name,
                Key=dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={**names, "#role": "role", "#session": "sessionId"},
                ExpressionAttributeValues=dynamodb.values(**named_values, listener=ROLE_LISTENER),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if dynamodb.error_code(error) != "ConditionalCheckFailedException":
                raise
            old = dynamodb.old_image(error)
            raise NotAListener(Connection.from_item(dynamodb.deserialize(old)) if old else None) from error
        return Connection.from_item(dynamodb.deserialize(response["Attributes"]))

    def delivery_choices(self, connection_ids: Sequence[str]) -> dict[str, DeliveryChoice]:
        """What each of ``connection_ids`` wants delivered (its output choice and playback), read with
        BatchGetItem (``BATCH_GET_SIZE`` rows a request, eventually consistent, projected to the two attributes:
        the listener index projects keys only). A row not found is left out (it is gone); keys DynamoDB leaves
        unprocessed are asked again, up to ``BATCH_GET_ATTEMPTS`` times, then this raises rather than answer
        short."""
        projection = "#id, #output, #paused"
        names = {"#id": CONNECTIONS_PARTITION_KEY, "#output": OUTPUT_ATTRIBUTE, "#paused": PLAYBACK_PAUSED_ATTRIBUTE}
        keys = [dynamodb.serialize({CONNECTIONS_PARTITION_KEY: c}) for c in dict.fromkeys(connection_ids)]
        choices: dict[str, DeliveryChoice] = {}
        for start in range(0, len(keys), BATCH_GET_SIZE):
            pending = keys[start : start + BATCH_GET_SIZE]
            for attempt in range(BATCH_GET_ATTEMPTS):
                if attempt:
                    time.sleep(random.uniform(0, 0.05 * 2**attempt))
                request = {"Keys": pending, "ProjectionExpression": projection, "ExpressionAttributeNames": names}
                response = dynamodb.request("batch_get_item", RequestItems={self.table_name: request})
                for item in response.get("Responses", {}).get(self.table_name, []):
                    row = dynamodb.deserialize(item)
                    choices[row[CONNECTIONS_PARTITION_KEY]] = DeliveryChoice(
                        output_of(row), row.get(PLAYBACK_PAUSED_ATTRIBUTE) is True
                    )
                pending = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if not pending:
                    break
            else:
                raise RuntimeError(f"{len(pending)} listener rows left unprocessed after {BATCH_GET_ATTEMPTS} attempts")
        return choices

    def listener_pages(self, session_id: str, target_language: str | None = None) -> Iterator[list[tuple[str, str]]]:
        """The session's listeners as (connection id, target language), one index page at a time; only those of
        ``target_language`` when given (the index's sort key: the query reads no other language's entries)."""
        condition = "#session = :session"
        names = {"#session": CONNECTIONS_BY_SESSION_PARTITION_KEY}
        named_values: dict[str, Any] = {"session": session_id}
        if target_language is not None:
            condition += " AND #language = :language"
            names["#language"] = CONNECTIONS_BY_SESSION_SORT_KEY
            named_values["language"] = target_language
        pages = dynamodb.pages(
            "query",
            TableName=self.table_name,
            IndexName=CONNECTIONS_BY_SESSION_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=dynamodb.values(**named_values),
            Limit=limits.FANOUT_PAGE_SIZE,
        )
        for page in pages:
            yield [
                (item[CONNECTIONS_PARTITION_KEY]["S"], item[CONNECTIONS_BY_SESSION_SORT_KEY]["S"])
                for item in page.get("Items", [])
            ]

    def mark_refresh_notified(self, connection_id: str) -> bool:
        """Record that the client was asked to refresh; False when it already was (or the row is gone)."""
        try:
            dynamodb.request(
                "update_item",
                TableName=self.table_name,
                Key=dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
                UpdateExpression="SET #notified = :true",
                ConditionExpression="attribute_exists(#id) AND attribute_not_exists(#notified)",
                ExpressionAttributeNames={"#id": CONNECTIONS_PARTITION_KEY, "#notified": REFRESH_NOTIFIED_ATTRIBUTE},
                ExpressionAttributeValues=dynamodb.values(true=True),
            )
        except ClientError as error:
            if dynamodb.error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def clear_refresh_notified(self, connection_id: str) -> None:
        """Forget an undelivered refresh notice, so the next heartbeat sends it again."""
        try:
            dynamodb.request(
                "update_item",
                TableName=self.table_name,
                Key=dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
                UpdateExpression="REMOVE #notified",
                ConditionExpression="attribute_exists(#id)",
                ExpressionAttributeNames={"#id": CONNECTIONS_PARTITION_KEY, "#notified": REFRESH_NOTIFIED_ATTRIBUTE},
            )
        except ClientError as error:
            if dynamodb.error_code(error) != "ConditionalCheckFailedException":
                raise

    def delete(self, connection_id: str) -> None:
        """Remove the row if present (a connection that never joined a session)."""
        dynamodb.request(
            "delete_item",
            TableName=self.table_name,
            Key=dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
        )


class NotAListener(Exception):
    """A listener's action on a connection that is not a listener attached to a session (``row``: as it was)."""

    def __init__(self, row: Connection | None) -> None:
        super().__init__(row.connection_id if row else "no row")
        self.row = row
