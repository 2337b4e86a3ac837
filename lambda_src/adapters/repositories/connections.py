"""The Connections table: one row per open WebSocket connection, the only code that touches it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.attribute_values import from_attribute
from lambda_src.adapters.repositories.dynamodb import TransactItem
from lambda_src.contract import limits
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

# API Gateway closes every WebSocket connection after 2 hours; a row outlives it by a margin so that a
# late $disconnect still finds it, then TTL removes rows whose $disconnect never came.
ROW_LIFETIME_SECONDS = 3 * 3600
# The stream-triggered welcome function delivers the message of WELCOME_ATTRIBUTE once the handshake is done.
# Messages the welcome function posts after the first one, in order (a speaker's restored broadcast state).
WELCOME_THEN_ATTRIBUTE = "welcomeThen"
# Set once the client has been asked to refresh its connection before API Gateway's 2-hour limit.
REFRESH_NOTIFIED_ATTRIBUTE = "refreshNotified"
_CACHE_SIZE = 4096


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

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            CONNECTIONS_PARTITION_KEY: self.connection_id,
            "role": self.role,
            "connectedAt": self.connected_at_ms,
            CONNECTIONS_TTL_ATTRIBUTE: self.connected_at_ms // 1000 + ROW_LIFETIME_SECONDS,
        }
        optional = {
            "userId": self.user_id,
            "sessionId": self.session_id,
            CONNECTIONS_BY_SESSION_SORT_KEY: self.target_language,
            WELCOME_ATTRIBUTE: self.welcome,
            WELCOME_THEN_ATTRIBUTE: list(self.welcome_then) or None,
        }
        item.update({key: value for key, value in optional.items() if value is not None})
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Connection:
        return cls(
            connection_id=item[CONNECTIONS_PARTITION_KEY],
            connected_at_ms=int(item.get("connectedAt", 0)),
            role=item.get("role", ROLE_NONE),
            user_id=item.get("userId"),
            session_id=item.get("sessionId"),
            target_language=item.get(CONNECTIONS_BY_SESSION_SORT_KEY),
            welcome=item.get(WELCOME_ATTRIBUTE),
            welcome_then=tuple(item.get(WELCOME_THEN_ATTRIBUTE) or ()),
        )


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
        self, connection_id: str, session_id: str, role: str, target_language: str | None = None
    ) -> TransactItem:
        """Transaction item: an open connection that is in no session yet becomes a speaker or listener."""
        names = {"#id": CONNECTIONS_PARTITION_KEY, "#session": "sessionId", "#role": "role"}
        assignments = ["#session = :session", "#role = :role"]
        named_values: dict[str, Any] = {"session": session_id, "role": role}
        if target_language is not None:
            names["#language"] = CONNECTIONS_BY_SESSION_SORT_KEY
            assignments.append("#language = :language")
            named_values["language"] = target_language
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

    def replace_listener_item(self, connection_id: str, session_id: str) -> TransactItem:
        """Transaction item: remove a listener's old row when its refreshed connection takes its place."""
        return {
            "Delete": {
                "TableName": self.table_name,
                "Key": dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
                "ConditionExpression": "#session = :session AND #role = :listener",
                "ExpressionAttributeNames": {"#session": "sessionId", "#role": "role"},
                "ExpressionAttributeValues": dynamodb.values(session=session_id, listener=ROLE_LISTENER),
            }
        }

    def detach_item(self, connection_id: str, session_id: str) -> TransactItem:
        """Transaction item: a listener leaves its session but keeps its connection open."""
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
        """A listener of a session listens in ``target_language`` from now on (its index entry moves with it);
        the row as it is now. Refused with :class:`NotAListener` (holding the row as it was, or None) when the
        connection is not a listener attached to a session."""
        try:
            response = dynamodb.request(
                "update_item",
                TableName=self.table_name,
                Key=dynamodb.serialize({CONNECTIONS_PARTITION_KEY: connection_id}),
                UpdateExpression="SET #language = :language",
                ConditionExpression="#role = :listener AND attribute_exists(#session)",
                ExpressionAttributeNames={
                    "#language": CONNECTIONS_BY_SESSION_SORT_KEY,
                    "#role": "role",
                    "#session": "sessionId",
                },
                ExpressionAttributeValues=dynamodb.values(language=target_language, listener=ROLE_LISTENER),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if dynamodb.error_code(error) != "ConditionalCheckFailedException":
                raise
            old = dynamodb.old_image(error)
            raise NotAListener(Connection.from_item(dynamodb.deserialize(old)) if old else None) from error
        return Connection.from_item(dynamodb.deserialize(response["Attributes"]))

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
