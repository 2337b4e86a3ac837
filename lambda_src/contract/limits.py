"""Every limit and default of the service, in one place.

The CDK configuration imports the per-environment defaults from here, and the Lambda code reads the
deployed values from its environment, falling back to these. Nothing else spells these numbers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

# Partial-result configuration (per session).
DEFAULT_PARTIAL_RESULTS_ENABLED: Final = True
DEFAULT_MIN_STABILITY: Final = Decimal("0.85")
MIN_STABILITY_LOWER: Final = Decimal("0.70")
MIN_STABILITY_UPPER: Final = Decimal("0.95")
DEFAULT_MAX_BUFFER_TIMEOUT: Final = Decimal("5.0")
MAX_BUFFER_TIMEOUT_LOWER: Final = Decimal("2.0")
MAX_BUFFER_TIMEOUT_UPPER: Final = Decimal("10.0")

# Broadcast state (per session, set by its speaker): the volume level's inclusive bounds and a new session's
# state (not paused, not muted, full volume).
VOLUME_LOWER: Final = Decimal("0.0")
VOLUME_UPPER: Final = Decimal("1.0")
DEFAULT_VOLUME: Final = Decimal("1.0")

# Sessions (per environment; the stack passes the deployed values as environment variables).
DEFAULT_SESSION_LIFETIME_HOURS: Final = 3
# A speaker's refreshConnection or resumeSession extends its session to now + the lifetime, never past this
# many hours from the session's creation (nor below the lifetime itself).
DEFAULT_MAX_SESSION_LIFETIME_HOURS: Final = 24
# Sessions one speaker (user id) may have active at once; creating another is refused with the active ids.
DEFAULT_MAX_ACTIVE_SESSIONS_PER_SPEAKER: Final = 3
DEFAULT_MAX_LISTENERS_PER_SESSION: Final = 500
# The most listeners an environment may allow one session (``maxListenersPerSession`` above it is refused at synth).
MAX_LISTENERS_PER_SESSION_CEILING: Final = 10_000

# Seat shards (decision record 0040): a session whose cap is at most ONE_SHARD_MAX_LISTENERS counts its listeners
# on its own item (one shard: the original design); above it, on ceil(cap / SEATS_PER_SHARD) seat items, at most
# MAX_SEAT_SHARDS (one BatchGetItem reads them all). A join takes a shard at random; one that is full sends it to
# another, up to SEAT_JOIN_ROUNDS times, and a shard over its share of the join-rate allowance to another, up to
# SEAT_RATE_LIMITED_TRIES shards, before the join is refused.
ONE_SHARD_MAX_LISTENERS: Final = 500
SEATS_PER_SHARD: Final = 100
MAX_SEAT_SHARDS: Final = 100
SEAT_JOIN_ROUNDS: Final = 8
SEAT_RATE_LIMITED_TRIES: Final = 3
# How long a dropped speaker may take to resume before the session ends (reason speakerTimeout).
DEFAULT_SPEAKER_GRACE_SECONDS: Final = 120
# How often the deployed sweeper ends sessions whose speaker's grace window or lifetime has passed
# (EventBridge's finest schedule); a session ends at most this long after its deadline.
SWEEP_INTERVAL_MINUTES: Final = 1
SWEEP_INTERVAL_SECONDS: Final = SWEEP_INTERVAL_MINUTES * 60
# The sweeper also probes every indexed session's listeners (``GET @connections``) once per this period,
# a tenth of the sessions each minute, and counts out those whose connection is gone without a
# ``$disconnect``: a lost ``$disconnect`` is counted out within this period plus one sweep interval.
RECONCILE_PERIOD_MINUTES: Final = 10
# A sweep starts no more probing once fewer than this many seconds of its function's time are left (the
# sessions it had no time for are probed in a later round).
RECONCILE_RESERVE_SECONDS: Final = 15

# The speaker's ``sessionStatus`` without asking: pushed when the listener count moved by more than this
# percentage since the last push (or a new language arrived), from batches of the Connections stream
# gathered over this window (one push per session and batch at most); and periodically by every sweep.
STATUS_CHANGE_PERCENT: Final = 10
STATUS_BATCH_WINDOW_SECONDS: Final = 3
STATUS_PERIODIC_SECONDS: Final = SWEEP_INTERVAL_SECONDS
# A periodic push waits this long after a speaker connection took its session: its welcome (posted by the
# welcome function from the Connections stream, with its own retries of ~3 s) goes first.
SPEAKER_SETTLE_SECONDS: Final = 10
# Periodic pushes in flight at once during a sweep.
STATUS_PUSH_PARALLELISM: Final = 16

# API Gateway waits up to 29 s for the $connect integration; until the handshake completes, @connections
# answers 410 for the connection exactly as for one that is gone. So a 410 proves a connection gone only
# once it is older than this (or once it has sent a message).
HANDSHAKE_WINDOW_SECONDS: Final = 30

# API Gateway closes every WebSocket connection after 2 hours. Clients are asked to refresh at 100 minutes
# (once), and warned with the minutes left on every heartbeat from 105 minutes. It also closes a connection
# whose client has sent no message for IDLE_TIMEOUT_MINUTES (a heartbeat a minute keeps it open). Both closes
# are code 1001, then ``$disconnect``. The local run may scale these clocks (``CONNECTION_TIME_SCALE``).
CONNECTION_LIMIT_MINUTES: Final = 120
IDLE_TIMEOUT_MINUTES: Final = 10
REFRESH_REQUIRED_AT_MINUTES: Final = 100
CONNECTION_WARNING_FROM_MINUTES: Final = 105

# Fan-out to a session's listeners: posts in flight at once, and listener rows read per index page.
FANOUT_PARALLELISM: Final = 32
FANOUT_PAGE_SIZE: Final = 500

# Captions (``lambda_src/app/captions.py``): the languages a session's listeners want, and their connections, are read
# from the listener index at most once per this many seconds per consumer, so a join or a ``changeLanguage`` is
# seen by captions at most this long after it; translations in flight at once (one per target language).
CAPTION_AUDIENCE_CACHE_SECONDS: Final = 2
TRANSLATION_PARALLELISM: Final = 8

# The fan-out per shard (``lambda_src/app/shard_fanout.py``, decision record 0040). The transcription consumer posts a
# segment's messages itself while its audience fills at most LOCAL_FANOUT_SHARDS shards' worth of seats
# (LOCAL_FANOUT_SHARDS * SEATS_PER_SHARD = 500 listeners: the most a session of one shard holds, which it has always
# posted itself); a larger one it hands to the fan-out function, one asynchronous invocation per group of the
# occupied shards holding at most SHARDS_PER_FANOUT shards' worth of listeners (~1,000), each posting
# FANOUT_WORKER_PARALLELISM at a time. Counted in listeners, not in occupied shards: joins take shards at random, so
# 10 listeners of a session of 100 shards occupy ~10 of them. The consumer starts the invocations
# FANOUT_INVOKE_PARALLELISM at a time; an event stays under Lambda's 256 KB asynchronous payload
# (FANOUT_EVENT_MAX_BYTES, with room for the envelope), split by language when a segment's messages would not fit;
# a worker drops an event older than FANOUT_EVENT_MAX_AGE_SECONDS (a caption that late is of no use).
LOCAL_FANOUT_SHARDS: Final = 5
SHARDS_PER_FANOUT: Final = 10
FANOUT_WORKER_PARALLELISM: Final = 100
FANOUT_INVOKE_PARALLELISM: Final = 10
FANOUT_EVENT_MAX_BYTES: Final = 240_000
FANOUT_EVENT_MAX_AGE_SECONDS: Final = 10
# A fanned-out audience's partial captions are paced so that they spend at most FANOUT_PARTIAL_POSTS_PER_SECOND of
# the account's @connections budget (API Gateway: 10,000 requests a second per account, all APIs and sessions):
# a partial is handed off only once listeners / FANOUT_PARTIAL_POSTS_PER_SECOND seconds have passed since the last
# one (2,000 listeners: one a second at most; 10,000: one every 4 s); finals are never held back.
FANOUT_PARTIAL_POSTS_PER_SECOND: Final = 2_500

# Speech (``lambda_src/app/speech.py``, decision record 0039): languages synthesized at once for one segment, and
# how long a ``translatedAudio`` URL stays valid (the listener app fetches each chunk as it arrives and prefetches
# a few ahead: minutes are plenty, and an old URL is of no use to anyone else).
SPEECH_PARALLELISM: Final = 4
AUDIO_URL_EXPIRY_SECONDS: Final = 300

# Rate limits (per environment). A whole venue's audience may share one public address and join within a
# minute, so the per-source and per-session limits sit well above the listener cap; they stop floods and
# join/leave churn, not audiences.
DEFAULT_SESSIONS_PER_USER_PER_HOUR: Final = 50
DEFAULT_JOINS_PER_SESSION_PER_MINUTE: Final = 1000
DEFAULT_CONNECTIONS_PER_SOURCE_PER_MINUTE: Final = 2000

# Input sizes, refused before any parsing work.
MAX_FIELD_LENGTH: Final = 256
# A speaker token (a Cognito JWT is ~1 KB) is the one longer value; its own bound, checked before parsing.
TOKEN_FIELD: Final = "token"
MAX_TOKEN_LENGTH: Final = 4096
# API Gateway's message payload size, either way (a client's message, a ``@connections`` post): a larger
# message from a client closes its connection (1009), a larger post is refused (413).
MAX_FRAME_BYTES: Final = 128 * 1024
# API Gateway's WebSocket frame size: a longer message travels in several frames of at most this; a larger
# frame from a client closes its connection (1009).
MAX_WEBSOCKET_FRAME_BYTES: Final = 32 * 1024

# Audio chunks (``sendAudio``): 16-bit little-endian mono PCM at the recognizer's sample rate, base64 in the
# message. A chunk's decoded size, in bytes (an even number: whole samples); ~100 ms of audio is 3.2 KB.
MIN_AUDIO_CHUNK_BYTES: Final = 100
MAX_AUDIO_CHUNK_BYTES: Final = 32 * 1024
AUDIO_SAMPLE_BYTES: Final = 2
# A chunk's sequence number: a JSON integer from 0 to the largest integer a JavaScript client counts exactly.
MAX_AUDIO_SEQUENCE_NUMBER: Final = 2**53 - 1
# How long a buffered chunk is kept for its consumer (DynamoDB's TTL deletion lags behind this).
AUDIO_CHUNK_LIFETIME_SECONDS: Final = 5 * 60
# How long the message function reuses what it read of a session (speaker, activity, broadcast state) for the
# audio path: a pause takes effect within this long.
AUDIO_SESSION_CACHE_MS: Final = 1000

# The transcription consumer (``lambda_src.app.transcription.consumer``, decision record 0001): one per session
# with audio, holding a lease on the session item that it renews every TRANSCRIBER_RENEW_SECONDS (the same
# write reads the session: its state, settings and speaker); a consumer that stops renewing loses it after
# TRANSCRIBER_LEASE_SECONDS, and the next chunk's writer starts another.
TRANSCRIBER_LEASE_SECONDS: Final = 5
TRANSCRIBER_RENEW_SECONDS: Final = 1.0
# How often it looks for new chunks in the buffer (the floor of the audio's hand-off latency) when there were
# none last time; a page of chunks is followed at once by the next.
TRANSCRIBER_POLL_SECONDS: Final = 0.05
TRANSCRIBER_PAGE_CHUNKS: Final = 50
# The recognizer's stream is closed, and the consumer stops, after this long without audio.
TRANSCRIBER_IDLE_SECONDS: Final = 60
# Before its invocation's timeout, the consumer hands over to a successor with this much time left (closing a
# Transcribe stream waits up to 10 s for its last results).
TRANSCRIBER_HANDOVER_SECONDS: Final = 30
# How often a consumer publishes its metrics (one EMF line), besides at its end.
TRANSCRIBER_METRICS_SECONDS: Final = 10

# Transcripts (``lambda_src.app.transcripts``, decision record 0036): each final segment of a session, in its
# source language and every language it was captioned in, kept this many days after the session started (TTL),
# unless an environment sets ``TRANSCRIPT_RETENTION_DAYS``.
DEFAULT_TRANSCRIPT_RETENTION_DAYS: Final = 7
# BatchWriteItem's most items a request, and the requests made for the items it leaves unprocessed (throttled):
# the segments waiting when a write starts go in one request; what is still unprocessed after the last attempt is
# counted (``TranscriptWriteFailures``) and logged, never waited for by captions.
TRANSCRIPT_BATCH_SIZE: Final = 25
TRANSCRIPT_WRITE_ATTEMPTS: Final = 4
# The shortest cue a transcript document gives a segment (a recognizer may time a one-word final to nothing).
MIN_TRANSCRIPT_CUE_MS: Final = 500

# Session ids: conditional writes retried on collision, bounded well inside the function timeout.
SESSION_ID_ATTEMPTS: Final = 5

QUALITY_TIERS: Final = ("standard", "premium")
DEFAULT_QUALITY_TIER: Final = "standard"

# The speaker app's audio format: 16-bit little-endian mono PCM at 16 kHz, the one format the service takes. A chunk
# may say so (``audioChunk``'s ``format``, ``encoding``, ``sampleRate``, ``channels``); saying anything else is refused.
SAMPLE_RATE_HZ: Final = 16_000
AUDIO_FORMAT: Final = "pcm"
AUDIO_ENCODING: Final = "s16le"
AUDIO_CHANNELS: Final = 1
