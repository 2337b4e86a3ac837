"""The Transcripts table: each final segment of a session, one item with its text in every language it has
(``schema.TRANSCRIPTS``), written in batches by the session's transcription consumer, read and deleted by the
session's owner; TTL removes them the retention after the session started (decision record 0036)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lambda_src.adapters.repositories import dynamodb
from lambda_src.contract import limits
from lambda_src.contract.schema import (
    TRANSCRIPTS_PARTITION_KEY,
    TRANSCRIPTS_SORT_KEY,
    TRANSCRIPTS_TTL_ATTRIBUTE,
    transcript_sort_key,
)
from lambda_src.model.session import number_attribute
from lambda_src.model.transcripts import TranscriptSegment


@dataclass(frozen=True)
class TranscriptEntry:
    """One stored final segment: its session (by id and creation time: an id can be reused once a session's item
    has expired), the session's owner (so that ownership is checkable after the session item is gone), when the
    consumer delivered it and its number among that millisecond's deliveries (the order), when it was said
    (milliseconds from the session's start), its text by language, and when TTL removes it (epoch seconds)."""

    session_id: str
    session_created_at_ms: int
    owner_id: str
    source_language: str
    segment_id: str
    delivered_at_ms: int
    number: int
    start_ms: int
    end_ms: int
    texts: Mapping[str, str]
    expires_at_s: int

    @property
    def key(self) -> str:
        return transcript_sort_key(self.session_created_at_ms, self.delivered_at_ms, self.number, self.segment_id)

    @property
    def segment(self) -> TranscriptSegment:
        return TranscriptSegment(self.start_ms, self.end_ms, self.texts)

    def to_item(self) -> dict[str, Any]:
        return {
            TRANSCRIPTS_PARTITION_KEY: self.session_id,
            TRANSCRIPTS_SORT_KEY: self.key,
            "sessionCreatedAt": self.session_created_at_ms,
            "speakerUserId": self.owner_id,
            "sourceLanguage": self.source_language,
            "segmentId": self.segment_id,
            "deliveredAt": self.delivered_at_ms,
            "number": self.number,
            "startMs": self.start_ms,
            "endMs": self.end_ms,
            "texts": dict(self.texts),
            TRANSCRIPTS_TTL_ATTRIBUTE: self.expires_at_s,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> TranscriptEntry:
        texts = item.get("texts")
        return cls(
            session_id=str(item[TRANSCRIPTS_PARTITION_KEY]),
            session_created_at_ms=number_attribute(item, "sessionCreatedAt", 0) or 0,
            owner_id=str(item.get("speakerUserId", "")),
            source_language=str(item.get("sourceLanguage", "")),
            segment_id=str(item.get("segmentId", "")),
            delivered_at_ms=number_attribute(item, "deliveredAt", 0) or 0,
            number=number_attribute(item, "number", 0) or 0,
            start_ms=number_attribute(item, "startMs", 0) or 0,
            end_ms=number_attribute(item, "endMs", 0) or 0,
            texts={str(k): str(v) for k, v in texts.items()} if isinstance(texts, dict) else {},
            expires_at_s=number_attribute(item, TRANSCRIPTS_TTL_ATTRIBUTE, 0) or 0,
        )


class TranscriptsRepository:
    def __init__(self, table_name: str) -> None:
        if not table_name:
            raise RuntimeError("TRANSCRIPTS_TABLE is not set")
        self.table_name = table_name

    def put_all(self, entries: Sequence[TranscriptEntry]) -> list[TranscriptEntry]:
        """Store ``entries`` (a put of a key already stored replaces it: a repeat is harmless),
        ``TRANSCRIPT_BATCH_SIZE`` a BatchWriteItem; what is still unprocessed after ``TRANSCRIPT_WRITE_ATTEMPTS`` is
        returned (not written).
        A request that fails past the retry policy raises its ``ServiceError``."""
        by_key = {entry.key: entry for entry in entries}
        requests = [{"PutRequest": {"Item": dynamodb.serialize(entry.to_item())}} for entry in by_key.values()]
        left = self._write(requests)
        return [by_key[str(dynamodb.deserialize(r["PutRequest"]["Item"])[TRANSCRIPTS_SORT_KEY])] for r in left]

    def of_session(self, session_id: str, now_s: int) -> list[TranscriptEntry]:
        """Every unexpired entry of ``session_id`` (of every session that had the id), in key order: by session,
        then in delivery order. Strongly consistent Query pages: a segment delivered a moment ago is there."""
        entries: list[TranscriptEntry] = []
        for page in dynamodb.pages(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="#session = :session",
            ExpressionAttributeNames={"#session": TRANSCRIPTS_PARTITION_KEY},
            ExpressionAttributeValues=dynamodb.values(session=session_id),
            ConsistentRead=True,
        ):
            entries += [TranscriptEntry.from_item(dynamodb.deserialize(item)) for item in page.get("Items", [])]
        # TTL deletion lags behind expiry by up to days: an expired entry is gone for every reader.
        return [entry for entry in entries if entry.expires_at_s > now_s]

    def delete_all(self, entries: Iterable[TranscriptEntry]) -> None:
        """Delete ``entries`` (BatchWriteItem, ``TRANSCRIPT_BATCH_SIZE`` a request); some still there after
        ``TRANSCRIPT_WRITE_ATTEMPTS``: SERVICE_UNAVAILABLE (a repeat deletes the rest)."""
        keys = dict.fromkeys((entry.session_id, entry.key) for entry in entries)
        requests = [
            {"DeleteRequest": {"Key": dynamodb.serialize({TRANSCRIPTS_PARTITION_KEY: s, TRANSCRIPTS_SORT_KEY: k})}}
            for s, k in keys
        ]
        if self._write(requests):
            raise dynamodb.unavailable()

    def _write(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """BatchWriteItem ``requests``, ``TRANSCRIPT_BATCH_SIZE`` at a time, each request through the repositories'
        retry policy; items DynamoDB leaves unprocessed are sent again (after a jittered pause) up to
        ``TRANSCRIPT_WRITE_ATTEMPTS`` requests in all; what is still unprocessed then."""
        left: list[dict[str, Any]] = []
        for start in range(0, len(requests), limits.TRANSCRIPT_BATCH_SIZE):
            pending = requests[start : start + limits.TRANSCRIPT_BATCH_SIZE]
            for attempt in range(limits.TRANSCRIPT_WRITE_ATTEMPTS):
                if attempt:
                    time.sleep(random.uniform(0, 0.05 * 2**attempt))
                response = dynamodb.request("batch_write_item", RequestItems={self.table_name: pending})
                pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if not pending:
                    break
            left += pending
        return left
