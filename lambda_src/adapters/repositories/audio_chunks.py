"""The AudioChunks table: the speaker's audio of each session, one item per chunk in the order of its sort key
(``schema.audio_chunk_sort_key``), written once per chunk by the message function and read by the session's
transcription consumer; TTL removes a chunk ``AUDIO_CHUNK_LIFETIME_SECONDS`` after it arrived."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambda_src.adapters.repositories import dynamodb
from lambda_src.contract import limits
from lambda_src.contract.schema import (
    AUDIO_CHUNKS_PARTITION_KEY,
    AUDIO_CHUNKS_SORT_KEY,
    AUDIO_CHUNKS_TTL_ATTRIBUTE,
    audio_chunk_arrival_key,
    audio_chunk_sort_key,
)


@dataclass(frozen=True)
class AudioChunk:
    """One chunk as the speaker's connection sent it: raw PCM (decoded), its sequence number on that connection
    (None when the client gave none: the chunk is then placed by ``arrived_at_ms``, the gateway's time of its
    request, and ``request_id``), and the client's own ``chunkId`` and ``timestamp`` when it gave them."""

    session_id: str
    connection_id: str
    connected_at_ms: int
    sequence_number: int | None
    pcm: bytes
    received_at_ms: int
    chunk_id: str | None = None
    client_timestamp_ms: int | None = None
    arrived_at_ms: int | None = None
    request_id: str = ""

    @property
    def key(self) -> str:
        """Its sort key: by sequence number, or by arrival when unnumbered (``schema.audio_chunk_arrival_key``)."""
        if self.sequence_number is not None:
            return audio_chunk_sort_key(self.connected_at_ms, self.connection_id, self.sequence_number)
        arrived_at_ms = self.received_at_ms if self.arrived_at_ms is None else self.arrived_at_ms
        return audio_chunk_arrival_key(
            self.connected_at_ms, self.connection_id, arrived_at_ms, self.client_timestamp_ms, self.request_id
        )

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            AUDIO_CHUNKS_PARTITION_KEY: self.session_id,
            AUDIO_CHUNKS_SORT_KEY: self.key,
            "connectionId": self.connection_id,
            "audio": self.pcm,
            "receivedAt": self.received_at_ms,
            AUDIO_CHUNKS_TTL_ATTRIBUTE: self.received_at_ms // 1000 + limits.AUDIO_CHUNK_LIFETIME_SECONDS,
        }
        if self.sequence_number is not None:
            item["sequenceNumber"] = self.sequence_number
        if self.chunk_id is not None:
            item["chunkId"] = self.chunk_id
        if self.client_timestamp_ms is not None:
            item["clientTimestamp"] = self.client_timestamp_ms
        return item


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as the consumer reads it back: its sort key, the connection's part of it (a sequence counts per
    connection), its sequence number (None for a chunk placed by its arrival), the PCM and when it arrived (epoch
    ms)."""

    key: str
    connection_key: str
    sequence_number: int | None
    pcm: bytes
    received_at_ms: int

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> StoredChunk:
        key = str(item[AUDIO_CHUNKS_SORT_KEY])
        audio = item.get("audio", b"")
        sequence_number = item.get("sequenceNumber")
        return cls(
            key=key,
            connection_key=key.rpartition("#")[0],
            sequence_number=None if sequence_number is None else int(sequence_number),
            pcm=bytes(audio.value if hasattr(audio, "value") else audio),
            received_at_ms=int(item.get("receivedAt", 0)),
        )


class AudioChunksRepository:
    def __init__(self, table_name: str) -> None:
        if not table_name:
            raise RuntimeError("AUDIO_CHUNKS_TABLE is not set")
        self.table_name = table_name

    def put_new(self, chunk: AudioChunk) -> bool:
        """Store ``chunk`` unless its key is taken (one conditional PutItem); False when it was: a repeat of a
        chunk already stored (a client's resend, or this request's own retry after an unanswered attempt)."""
        try:
            dynamodb.request(
                "put_item",
                TableName=self.table_name,
                Item=dynamodb.serialize(chunk.to_item()),
                ConditionExpression="attribute_not_exists(#key)",
                ExpressionAttributeNames={"#key": AUDIO_CHUNKS_SORT_KEY},
            )
        except ClientError as error:
            if dynamodb.error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def after(self, session_id: str, key: str, limit: int = limits.TRANSCRIBER_PAGE_CHUNKS) -> list[StoredChunk]:
        """Up to ``limit`` of the session's chunks whose sort key follows ``key`` (all from the start when
        ``key`` is empty), in order: one strongly consistent Query page."""
        condition = "#session = :session" + (" AND #key > :after" if key else "")
        response = dynamodb.request(
            "query",
            TableName=self.table_name,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={
                "#session": AUDIO_CHUNKS_PARTITION_KEY,
                **({"#key": AUDIO_CHUNKS_SORT_KEY} if key else {}),
            },
            ExpressionAttributeValues=dynamodb.values(session=session_id, **({"after": key} if key else {})),
            ConsistentRead=True,
            Limit=limit,
        )
        return [StoredChunk.from_item(dynamodb.deserialize(item)) for item in response.get("Items", [])]
