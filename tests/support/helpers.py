"""Helpers of the unit suite: table access for assertions and builders of API Gateway WebSocket events."""

from __future__ import annotations

import base64
import itertools
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from lambda_src.contract import schema

SESSIONS_TABLE = "unit-sessions"
CONNECTIONS_TABLE = "unit-connections"
RATE_LIMITS_TABLE = "unit-rate-limits"
AUDIO_CHUNKS_TABLE = "unit-audio-chunks"
TRANSCRIPTS_TABLE = "unit-transcripts"
REGION = "us-east-1"

_deserializer = TypeDeserializer()
_serializer = TypeSerializer()
_ids = itertools.count(1)


class Tables:
    """The two moto tables, read back raw (``{"N": "0.85"}``) or deserialized."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sessions = SESSIONS_TABLE
        self.connections = CONNECTIONS_TABLE
        self.audio_chunks = AUDIO_CHUNKS_TABLE
        self.transcripts = TRANSCRIPTS_TABLE
        self.rate_limits = RATE_LIMITS_TABLE

    def _scan(self, table: str) -> list[dict[str, Any]]:
        return self.client.scan(TableName=table, ConsistentRead=True)["Items"]

    def raw_rate_limits(self) -> list[dict[str, Any]]:
        return self._scan(self.rate_limits)

    def raw_sessions(self) -> list[dict[str, Any]]:
        return self._scan(self.sessions)

    def raw_connections(self) -> list[dict[str, Any]]:
        return self._scan(self.connections)

    def audio_chunks_items(self) -> list[dict[str, Any]]:
        """The buffered audio chunks, in key order."""
        return sorted(
            (deserialize(item) for item in self._scan(self.audio_chunks)),
            key=lambda item: (item[schema.AUDIO_CHUNKS_PARTITION_KEY], item[schema.AUDIO_CHUNKS_SORT_KEY]),
        )

    def transcripts_items(self) -> list[dict[str, Any]]:
        """The transcripts' segments, in key order (by session, then as delivered)."""
        return sorted(
            (deserialize(item) for item in self._scan(self.transcripts)),
            key=lambda item: (item[schema.TRANSCRIPTS_PARTITION_KEY], item[schema.TRANSCRIPTS_SORT_KEY]),
        )

    def sessions_items(self) -> list[dict[str, Any]]:
        return [deserialize(item) for item in self.raw_sessions()]

    def connections_items(self) -> list[dict[str, Any]]:
        return [deserialize(item) for item in self.raw_connections()]

    def session(self, session_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.sessions, Key={schema.SESSIONS_PARTITION_KEY: {"S": session_id}}, ConsistentRead=True
        ).get("Item")
        return deserialize(item) if item else None

    def connection(self, connection_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.connections,
            Key={schema.CONNECTIONS_PARTITION_KEY: {"S": connection_id}},
            ConsistentRead=True,
        ).get("Item")
        return deserialize(item) if item else None

    def put_session(self, **overrides: Any) -> dict[str, Any]:
        """Write a live session item directly (the contract's schema), overriding any attribute."""
        now_s = int(time.time())
        item: dict[str, Any] = {
            "sessionId": "golden-eagle-427",
            "speakerConnectionId": "speaker-conn",
            "speakerUserId": "user-1",
            "sourceLanguage": "en",
            "qualityTier": "standard",
            "createdAt": now_s * 1000,
            "isActive": True,
            "listenerCount": 0,
            "expiresAt": now_s + 3 * 3600,
            "partialResultsEnabled": True,
            "minStabilityThreshold": Decimal("0.85"),
            "maxBufferTimeout": Decimal("5.0"),
        }
        item.update(overrides)
        item = {key: value for key, value in item.items() if value is not _ABSENT}
        self.client.put_item(TableName=self.sessions, Item={k: _serializer.serialize(v) for k, v in item.items()})
        return item


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


_ABSENT = _Absent()
ABSENT: Any = _ABSENT  # pass as an override to leave an attribute out of put_session's item


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


# --- API Gateway WebSocket events -------------------------------------------------------------------


def new_connection_id() -> str:
    return f"conn-{next(_ids):06d}="


def connect_event(
    query: dict[str, str] | None = None,
    *,
    connection_id: str | None = None,
    user_id: str | None = None,
    connected_at_ms: int | None = None,
    source_ip: str | None = None,
) -> dict[str, Any]:
    """A ``$connect`` event as API Gateway delivers it (``authorizer`` only when a speaker token passed)."""
    context: dict[str, Any] = {
        "routeKey": "$connect",
        "eventType": "CONNECT",
        "connectionId": connection_id or new_connection_id(),
        "connectedAt": connected_at_ms if connected_at_ms is not None else time.time_ns() // 1_000_000,
        "requestId": f"req-{next(_ids)}",
        "stage": "test",
        "domainName": "example.execute-api.us-east-1.amazonaws.com",
        "apiId": "example",
    }
    if user_id is not None:
        context["authorizer"] = {"userId": user_id, "principalId": user_id}
    if source_ip is not None:
        context["identity"] = {"sourceIp": source_ip}
    return {"requestContext": context, "queryStringParameters": query, "isBase64Encoded": False}


def message_event(
    body: Any,
    *,
    connection_id: str,
    route_key: str = "$default",
    user_id: str | None = None,
    connected_at_ms: int | None = None,
    request_time_ms: int | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """A ``MESSAGE`` event; ``body`` is sent as is when a string, JSON-encoded otherwise. ``request_time_ms`` and
    ``request_id``: the gateway's stamp of the request (``requestTimeEpoch``; a fresh id unless given)."""
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": "MESSAGE",
        "connectionId": connection_id,
        "connectedAt": connected_at_ms if connected_at_ms is not None else time.time_ns() // 1_000_000,
        "requestId": request_id if request_id is not None else f"req-{next(_ids)}",
        "stage": "test",
        "messageId": f"msg-{next(_ids)}",
    }
    if request_time_ms is not None:
        context["requestTimeEpoch"] = request_time_ms
    if user_id is not None:
        context["authorizer"] = {"userId": user_id, "principalId": user_id}
    return {
        "requestContext": context,
        "body": body if isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
    }


def disconnect_event(connection_id: str) -> dict[str, Any]:
    return {
        "requestContext": {
            "routeKey": "$disconnect",
            "eventType": "DISCONNECT",
            "connectionId": connection_id,
            "connectedAt": time.time_ns() // 1_000_000,
            "requestId": f"req-{next(_ids)}",
        },
        "headers": {},
    }


def http_event(
    route_key: str,
    body: Any = None,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    base64_body: bool = False,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An HTTP API request as API Gateway delivers it (payload format 2.0): the route key (``POST /sessions``),
    the path's ``sessionId``, the JWT authorizer's verified claims when ``user_id`` is given, and ``body`` sent as is
    when a string, JSON-encoded otherwise (none when None)."""
    method, path = route_key.split(" ", 1)
    raw_path = path.replace("{sessionId}", session_id or "")
    context: dict[str, Any] = {
        "requestId": f"req-{next(_ids)}",
        "routeKey": route_key,
        "stage": "test",
        "domainName": "example.execute-api.us-east-1.amazonaws.com",
        "apiId": "example",
        "http": {"method": method, "path": f"/test{raw_path}", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7"},
        "timeEpoch": time.time_ns() // 1_000_000,
    }
    if user_id is not None:
        context["authorizer"] = {"jwt": {"claims": {"sub": user_id, "token_use": "id"}, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": f"/test{raw_path}",
        "rawQueryString": urlencode(query or {}),
        "headers": {"content-type": "application/json"},
        "requestContext": context,
        "isBase64Encoded": base64_body,
    }
    if session_id is not None:
        event["pathParameters"] = {"sessionId": session_id}
    if query:
        event["queryStringParameters"] = dict(query)
    if body is not None:
        text = body if isinstance(body, str) else json.dumps(body)
        event["body"] = base64.b64encode(text.encode("utf-8")).decode("ascii") if base64_body else text
    return event


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    return json.loads(response["body"])


# --- request budgets --------------------------------------------------------------------------------


class DynamoDBRequests:
    """Counts the DynamoDB API calls the process's client makes (a botocore event hook), by operation.

    ``with DynamoDBRequests() as requests: ...`` then ``requests.total`` / ``requests.by_operation``.
    """

    def __init__(self) -> None:
        self.by_operation: dict[str, int] = {}

    def _count(self, model: Any, **_: Any) -> None:
        self.by_operation[model.name] = self.by_operation.get(model.name, 0) + 1

    def __enter__(self) -> DynamoDBRequests:
        from lambda_src.adapters.repositories import dynamodb

        self._events = dynamodb.client().meta.events
        self._events.register("before-call.dynamodb", self._count, unique_id=f"count-{id(self)}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._events.unregister("before-call.dynamodb", unique_id=f"count-{id(self)}")

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())


# The fields of sessionCreated (the seed's shape, plus expiresAt) and of sessionJoined as a message route
# answers it; on $connect, sessionJoined is stored without listenerCount (the welcome function adds it).
SESSION_CREATED_KEYS = frozenset(
    {
        "type",
        "sessionId",
        "sourceLanguage",
        "qualityTier",
        "partialResultsEnabled",
        "minStabilityThreshold",
        "maxBufferTimeout",
        "expiresAt",
        "connectionId",
        "timestamp",
    }
)
SESSION_JOINED_KEYS = frozenset(
    {
        "type",
        "sessionId",
        "sourceLanguage",
        "targetLanguage",
        "qualityTier",
        "listenerCount",
        "connectionId",
        "timestamp",
    }
)
