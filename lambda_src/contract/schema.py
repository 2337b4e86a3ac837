"""The tables' definitions: keys, indexes, TTL and stream. The CDK tables construct builds the deployed
tables from these, the unit tests' moto tables are created from them, and the repositories read the
names, so a deployed table and the code that uses it cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

SESSIONS_PARTITION_KEY: Final = "sessionId"
SESSIONS_TTL_ATTRIBUTE: Final = "expiresAt"
# Sparse: when the sweeper must next look at the session. An active session's expiry, or the end of its
# speaker's reconnection window; an ended session's next look for listeners still attached (one sweep
# interval on), until none is left (or the rows' lifetime since the end is over): then it drops out.
SESSIONS_BY_SWEEP_TIME_INDEX: Final = "bySweepTime"
SESSIONS_SWEEP_AT_ATTRIBUTE: Final = "sweepAt"

CONNECTIONS_PARTITION_KEY: Final = "connectionId"
CONNECTIONS_TTL_ATTRIBUTE: Final = "expiresAt"
# Listeners of a session by target language, for fan-out. Speaker and plain connections have no
# ``targetLanguage`` and so stay out of the index.
CONNECTIONS_BY_SESSION_INDEX: Final = "bySessionLanguage"
CONNECTIONS_BY_SESSION_PARTITION_KEY: Final = "sessionId"
CONNECTIONS_BY_SESSION_SORT_KEY: Final = "targetLanguage"

# A connection's ``role``: what the connection is in its session (or ``none`` before it joins one).
ROLE_SPEAKER: Final = "speaker"
ROLE_LISTENER: Final = "listener"
ROLE_NONE: Final = "none"
# A connection's welcome (the first message it is owed once its handshake completes), written with its row: the
# welcome function's stream filter selects the records that carry it.
WELCOME_ATTRIBUTE: Final = "welcome"

AttributeType = Literal["S", "N"]


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: AttributeType = "S"


@dataclass(frozen=True)
class IndexDefinition:
    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"


@dataclass(frozen=True)
class TableDefinition:
    construct_id: str
    partition_key: KeyAttribute
    ttl_attribute: str
    sort_key: KeyAttribute | None = None
    indexes: tuple[IndexDefinition, ...] = ()
    stream: Literal["NEW_IMAGE", "NEW_AND_OLD_IMAGES"] | None = None

    def create_table_request(self, table_name: str) -> dict[str, Any]:
        """CreateTable arguments for this definition (on-demand), for engines other than CloudFormation."""
        keys = [self.partition_key, *([self.sort_key] if self.sort_key else [])] + [
            k for i in self.indexes for k in (i.partition_key, i.sort_key) if k
        ]
        attributes = {key.name: key.type for key in keys}
        request: dict[str, Any] = {
            "TableName": table_name,
            "KeySchema": [{"AttributeName": self.partition_key.name, "KeyType": "HASH"}]
            + ([{"AttributeName": self.sort_key.name, "KeyType": "RANGE"}] if self.sort_key else []),
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in attributes.items()],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if self.indexes:
            request["GlobalSecondaryIndexes"] = [
                {
                    "IndexName": index.name,
                    "KeySchema": [{"AttributeName": index.partition_key.name, "KeyType": "HASH"}]
                    + ([{"AttributeName": index.sort_key.name, "KeyType": "RANGE"}] if index.sort_key else []),
                    "Projection": {"ProjectionType": index.projection},
                }
                for index in self.indexes
            ]
        if self.stream:
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": self.stream}
        return request


SESSIONS: Final = TableDefinition(
    construct_id="Sessions",
    partition_key=KeyAttribute(SESSIONS_PARTITION_KEY),
    ttl_attribute=SESSIONS_TTL_ATTRIBUTE,
    indexes=(
        IndexDefinition(
            SESSIONS_BY_SWEEP_TIME_INDEX, KeyAttribute(SESSIONS_SWEEP_AT_ATTRIBUTE, "N"), projection="KEYS_ONLY"
        ),
    ),
)

CONNECTIONS: Final = TableDefinition(
    construct_id="Connections",
    partition_key=KeyAttribute(CONNECTIONS_PARTITION_KEY),
    ttl_attribute=CONNECTIONS_TTL_ATTRIBUTE,
    indexes=(
        IndexDefinition(
            CONNECTIONS_BY_SESSION_INDEX,
            KeyAttribute(CONNECTIONS_BY_SESSION_PARTITION_KEY),
            KeyAttribute(CONNECTIONS_BY_SESSION_SORT_KEY),
            projection="KEYS_ONLY",  # fan-out and counts need only the keys
        ),
    ),
    # New rows feed the function that delivers a connection's first message after its handshake; listener
    # rows arriving, leaving and changing feed the speaker's status pushes, which need a removed row's old
    # image to know its session.
    stream="NEW_AND_OLD_IMAGES",
)

RATE_LIMITS_PARTITION_KEY: Final = "limitKey"
RATE_LIMITS_TTL_ATTRIBUTE: Final = "expiresAt"

# One counter per limit and time window (e.g. joins of one session in one minute); TTL removes old windows.
RATE_LIMITS: Final = TableDefinition(
    construct_id="RateLimits",
    partition_key=KeyAttribute(RATE_LIMITS_PARTITION_KEY),
    ttl_attribute=RATE_LIMITS_TTL_ATTRIBUTE,
)

AUDIO_CHUNKS_PARTITION_KEY: Final = "sessionId"
# ``<connectedAt>#<connectionId>#<sequenceNumber>``, the numbers zero-padded to fixed widths
# (AUDIO_CHUNK_SORT_KEY_WIDTHS), so that the string order is the order of the audio: a speaker's sequence numbers
# count per connection, and a refreshed or resumed speaker's new connection (connected later) starts again at 0
# after the old one's chunks, never on them (the connection id keeps even two connections of one millisecond apart).
# A chunk sent without a sequence number is placed by its arrival instead (decision record 0035):
# ``<connectedAt>#<connectionId>#t<arrivedAt>.<clientTimestamp>.<requestId>``, the gateway's time of the request and,
# for two of one millisecond, the client's own time stamp (0 when it gave none), then the request's id, which keeps
# every request's chunk apart. The mark sorts after digits: a connection's unnumbered chunks follow its numbered ones.
AUDIO_CHUNKS_SORT_KEY: Final = "sequence"
AUDIO_CHUNK_SORT_KEY_WIDTHS: Final = (15, 16)  # epoch milliseconds until the year 33658; 2**53 - 1
AUDIO_CHUNK_ARRIVAL_MARK: Final = "t"
AUDIO_CHUNKS_TTL_ATTRIBUTE: Final = "expiresAt"

# The audio buffer: the speaker's chunks of each session in order, written by the message function (one
# conditional PutItem per chunk), read by the session's transcription consumer; TTL removes them minutes later.
AUDIO_CHUNKS: Final = TableDefinition(
    construct_id="AudioChunks",
    partition_key=KeyAttribute(AUDIO_CHUNKS_PARTITION_KEY),
    sort_key=KeyAttribute(AUDIO_CHUNKS_SORT_KEY),
    ttl_attribute=AUDIO_CHUNKS_TTL_ATTRIBUTE,
)


def audio_chunk_sort_key(connected_at_ms: int, connection_id: str, sequence_number: int) -> str:
    """A chunk's sort key: its connection's ``connectedAt`` and id, and its sequence number."""
    connected_width, sequence_width = AUDIO_CHUNK_SORT_KEY_WIDTHS
    return f"{connected_at_ms:0{connected_width}d}#{connection_id}#{sequence_number:0{sequence_width}d}"


def audio_chunk_arrival_key(
    connected_at_ms: int, connection_id: str, arrived_at_ms: int, client_timestamp_ms: int | None, request_id: str
) -> str:
    """An unnumbered chunk's sort key: its connection's ``connectedAt`` and id, then when it arrived, the client's
    time stamp and the request's id (``#`` taken out: it separates the key's parts)."""
    connected_width, number_width = AUDIO_CHUNK_SORT_KEY_WIDTHS
    arrival = (
        f"{arrived_at_ms:0{connected_width}d}.{client_timestamp_ms or 0:0{number_width}d}.{request_id.replace('#', '')}"
    )
    return f"{connected_at_ms:0{connected_width}d}#{connection_id}#{AUDIO_CHUNK_ARRIVAL_MARK}{arrival}"


TRANSCRIPTS_PARTITION_KEY: Final = "sessionId"
# ``<session createdAt>#<deliveredAt>#<n>#<segmentId>``, the numbers zero-padded (TRANSCRIPT_SORT_KEY_WIDTHS): a
# session's segments in the order they were delivered, and a session id reused by a later session (after the
# first one's item expired) kept apart from it by its own creation time.
TRANSCRIPTS_SORT_KEY: Final = "segment"
TRANSCRIPT_SORT_KEY_WIDTHS: Final = (15, 15, 6)
TRANSCRIPTS_TTL_ATTRIBUTE: Final = "expiresAt"

# Transcripts: one item per final segment (its source text and each captioned language's translation, its times
# and the session's owner), written in batches by the transcription consumer, read and deleted by the session's
# owner; TTL removes them the retention after the session started (``TRANSCRIPT_RETENTION_DAYS``).
TRANSCRIPTS: Final = TableDefinition(
    construct_id="Transcripts",
    partition_key=KeyAttribute(TRANSCRIPTS_PARTITION_KEY),
    sort_key=KeyAttribute(TRANSCRIPTS_SORT_KEY),
    ttl_attribute=TRANSCRIPTS_TTL_ATTRIBUTE,
)


def transcript_sort_key(session_created_at_ms: int, delivered_at_ms: int, number: int, segment_id: str) -> str:
    """A transcript segment's sort key: its session's ``createdAt``, when it was delivered, its number among the
    segments its consumer delivered at that millisecond, and its id (unique in the session)."""
    created_width, delivered_width, number_width = TRANSCRIPT_SORT_KEY_WIDTHS
    return (
        f"{session_created_at_ms:0{created_width}d}#{delivered_at_ms:0{delivered_width}d}#"
        f"{number:0{number_width}d}#{segment_id}"
    )


def transcript_sort_key_prefix(session_created_at_ms: int) -> str:
    """What the sort keys of one session (of its id's sessions, the one created then) begin with."""
    return f"{session_created_at_ms:0{TRANSCRIPT_SORT_KEY_WIDTHS[0]}d}#"


TABLES: Final = (SESSIONS, CONNECTIONS, RATE_LIMITS, AUDIO_CHUNKS, TRANSCRIPTS)
