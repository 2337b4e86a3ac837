"""What the service's telemetry is called: the service name its logs and metrics carry, the metrics' one
namespace, their names and dimensions, and the variable that turns on tracing of AWS calls, in one place.

``lambda_src.platform.metrics`` emits these metrics (Powertools' EMF); the stack's alarms and dashboard are built
from these same constants, so an alarm can only watch a metric the code emits.

Every metric carries exactly the default dimensions ``service`` (:data:`SERVICE_NAME`, the
value the stack also gives ``POWERTOOLS_SERVICE_NAME``) and ``environment`` (``ENVIRONMENT_NAME``, set by
the stack); those with an extra dimension name it in :data:`EXTRA_DIMENSION` and carry exactly the defaults
plus that one. Values of the extra dimensions are few (error codes, end reasons), never ids: session,
connection and user ids go to the logs, never into a dimension.

What is counted, and when:

- ``SessionsCreated``: a session was written (``createSession`` on connect or as a message).
- ``ListenersJoined``: a listener connection was counted in (``listenerCount`` went up by one). That is a
  join, and also a listener refresh that could not take over its old row (no ``previousConnectionId``, or
  the old connection had closed already): it raises the count until the old connection's close counts it
  out again, and that close is a ``ListenersLeft``. A refresh that replaced its old row moves no count and
  emits nothing. So ``ListenersJoined - ListenersLeft`` follows the sum of the sessions' ``listenerCount``.
- ``ListenersLeft``: a listener connection was counted out, by the one call that decremented the count
  (``leaveSession``, the listener's ``$disconnect``, or a listener a fan-out or the sweeper's probe found
  gone: 410 past its handshake window). A
  repeated disconnect, a close after ``leaveSession``, or a departure from a session already deleted
  emits nothing.
- ``SessionsEnded`` by ``reason``: ``endedBySpeaker`` (``endSession``), ``speakerTimeout`` and ``expired``
  (the sweeper), once per session, by the call whose write ended it.
- ``Rejections`` by ``errorCode``: every ``error`` reply a WebSocket route gives (``INTERNAL_ERROR``
  included), and ``UNAUTHORIZED`` for every token the ``$connect`` authorizer refuses.

- ``TranslationFailures``: a caption that could not be translated into one of its target languages (the
  engine refused or did not answer; the log line names the language pair and why): that language's listeners
  got no caption for that segment. Counted once per segment and language, whatever the number of listeners.
- ``SynthesisFailures``: a final segment that could not be spoken in one of its languages (its sequence numbers
  not drawn, the synthesis, the audio's upload or its URL failed; logged with the language and why): that
  language's listeners who want audio got no ``translatedAudio`` for that segment, and their captions went out all
  the same. Counted once per segment and language, whatever the number of listeners; alarmed
  (``cdk_app/monitoring.py``). A language without a voice is not a failure: it is never synthesized.
- ``TranscriptWriteFailures``: final segments the transcription consumer could not record in the session's
  transcript (the Transcripts table refused or did not answer after its retries; logged with the session): those
  segments are missing from the transcript. Their captions went out all the same.

- ``SessionCreationLatency`` and ``ListenerJoinLatency`` (milliseconds): how long each successful
  ``createSession`` and ``joinSession`` took, from the handler's view (the service call: validation done,
  through the transaction that wrote it, on connect or as a message); CloudWatch gives their p50/p95/p99. A
  refused call records no latency (it is a ``Rejections`` count, and its time says nothing of the operation's).
- ``ActiveSessions`` and ``ConnectedListeners`` (gauges): once a minute, from the sweeper, the number of
  active sessions and the sum of their ``listenerCount`` (ended sessions whose listeners are still being
  dismissed are not counted). Read them with ``Maximum`` (or ``Average``) per minute, never ``Sum``.

:data:`COUNTS`, :data:`LATENCIES` and :data:`GAUGES` say which is which (so how each is read), and
:data:`UNITS` the unit each is published with.
"""

from __future__ import annotations

from typing import Final

# The Powertools service name of every function's logs and metrics (the stack sets POWERTOOLS_SERVICE_NAME to it).
SERVICE_NAME: Final = "session-service"
NAMESPACE: Final = "SessionService"
# Default dimensions on every metric: Powertools' service name, and the deployed environment.
SERVICE_DIMENSION: Final = "service"
ENVIRONMENT_DIMENSION: Final = "environment"
# The variable the stack sets to the environment's name (dev, prod, ...); unset (e.g. unit tests): UNKNOWN.
ENV_ENVIRONMENT_NAME: Final = "ENVIRONMENT_NAME"
UNKNOWN_ENVIRONMENT: Final = "unknown"

SESSIONS_CREATED: Final = "SessionsCreated"
LISTENERS_JOINED: Final = "ListenersJoined"
LISTENERS_LEFT: Final = "ListenersLeft"
SESSIONS_ENDED: Final = "SessionsEnded"  # extra dimension: REASON_DIMENSION
REJECTIONS: Final = "Rejections"  # extra dimension: ERROR_CODE_DIMENSION
DUPLICATE_AUDIO_CHUNKS: Final = "DuplicateAudioChunks"
MISSING_AUDIO_CHUNKS: Final = "MissingAudioChunks"
PARTIALS_FORWARDED: Final = "PartialsForwarded"
FINALS_FORWARDED: Final = "FinalsForwarded"
PARTIALS_DROPPED: Final = "PartialsDropped"
TRANSCRIPT_DISCREPANCIES: Final = "TranscriptDiscrepancies"
AUDIO_HAND_OFF_LATENCY: Final = "AudioHandOffLatency"
CHUNK_PROCESSING_LATENCY: Final = "ChunkProcessingLatency"
TRANSLATION_FAILURES: Final = "TranslationFailures"
TRANSCRIPT_WRITE_FAILURES: Final = "TranscriptWriteFailures"
SYNTHESIS_FAILURES: Final = "SynthesisFailures"

SESSION_CREATION_LATENCY: Final = "SessionCreationLatency"
LISTENER_JOIN_LATENCY: Final = "ListenerJoinLatency"
ACTIVE_SESSIONS: Final = "ActiveSessions"
CONNECTED_LISTENERS: Final = "ConnectedListeners"

REASON_DIMENSION: Final = "reason"
ERROR_CODE_DIMENSION: Final = "errorCode"

# metric name -> its extra dimension (None: only the default dimensions)
EXTRA_DIMENSION: Final = {
    SESSIONS_CREATED: None,
    LISTENERS_JOINED: None,
    LISTENERS_LEFT: None,
    SESSIONS_ENDED: REASON_DIMENSION,
    REJECTIONS: ERROR_CODE_DIMENSION,
    DUPLICATE_AUDIO_CHUNKS: None,
    MISSING_AUDIO_CHUNKS: None,
    PARTIALS_FORWARDED: None,
    FINALS_FORWARDED: None,
    PARTIALS_DROPPED: None,
    TRANSCRIPT_DISCREPANCIES: None,
    AUDIO_HAND_OFF_LATENCY: None,
    CHUNK_PROCESSING_LATENCY: None,
    TRANSLATION_FAILURES: None,
    TRANSCRIPT_WRITE_FAILURES: None,
    SYNTHESIS_FAILURES: None,
    SESSION_CREATION_LATENCY: None,
    LISTENER_JOIN_LATENCY: None,
    ACTIVE_SESSIONS: None,
    CONNECTED_LISTENERS: None,
}

# What each metric is, which says how it is read: counts are summed, latencies read as percentiles, gauges
# as the level (the highest of a period).
COUNTS: Final = (
    SESSIONS_CREATED,
    LISTENERS_JOINED,
    LISTENERS_LEFT,
    SESSIONS_ENDED,
    REJECTIONS,
    DUPLICATE_AUDIO_CHUNKS,
    MISSING_AUDIO_CHUNKS,
    PARTIALS_FORWARDED,
    FINALS_FORWARDED,
    PARTIALS_DROPPED,
    TRANSCRIPT_DISCREPANCIES,
    TRANSLATION_FAILURES,
    TRANSCRIPT_WRITE_FAILURES,
    SYNTHESIS_FAILURES,
)
LATENCIES: Final = (
    SESSION_CREATION_LATENCY,
    LISTENER_JOIN_LATENCY,
    AUDIO_HAND_OFF_LATENCY,
    CHUNK_PROCESSING_LATENCY,
)
GAUGES: Final = (ACTIVE_SESSIONS, CONNECTED_LISTENERS)

# Set to "true" by the stack (cdk_app/websocket_api.py) on the functions that call AWS, where tracing is on
# (``lambda_src.platform.tracing``).
ENV_TRACE_AWS_CALLS: Final = "TRACE_AWS_CALLS"


def dimension_names(metric: str) -> list[str]:
    """The exact dimension set ``metric`` is published with (what an alarm on it must name)."""
    extra = EXTRA_DIMENSION[metric]
    return [SERVICE_DIMENSION, ENVIRONMENT_DIMENSION, *([extra] if extra else [])]
