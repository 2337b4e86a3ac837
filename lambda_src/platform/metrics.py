"""The service's business metrics: one namespace, their names and dimensions, in one place.

The functions below emit them through Powertools' EMF (a structured line on stdout that CloudWatch Logs
turns into metrics; no synchronous PutMetricData, no AWS call at all); the stack's alarms are built from
these same constants, so an alarm can only watch a metric the code emits.

Every metric carries exactly the default dimensions ``service`` (:data:`lambda_src.platform.log.SERVICE_NAME`, the
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

- ``SessionCreationLatency`` and ``ListenerJoinLatency`` (milliseconds): how long each successful
  ``createSession`` and ``joinSession`` took, from the handler's view (the service call: validation done,
  through the transaction that wrote it, on connect or as a message); CloudWatch gives their p50/p95/p99. A
  refused call records no latency (it is a ``Rejections`` count, and its time says nothing of the operation's).
- ``ActiveSessions`` and ``ConnectedListeners`` (gauges): once a minute, from the sweeper, the number of
  active sessions and the sum of their ``listenerCount`` (ended sessions whose listeners are still being
  dismissed are not counted). Read them with ``Maximum`` (or ``Average``) per minute, never ``Sum``.

:data:`COUNTS`, :data:`LATENCIES` and :data:`GAUGES` say which is which (so how each is read), and
:data:`UNITS` the unit each is published with.

Publishing: metrics with only the default dimensions accumulate in Powertools' ``Metrics`` and are
published as one EMF line by :func:`flush`, which every handler calls once at the end of each invocation.
A metric with an extra dimension is published on its own through Powertools' ``single_metric``: adding its
dimension to ``Metrics`` would put it on every metric of the invocation (``add_dimension``) or publish the
metric under a second dimension set as well (``add_dimensions``), and neither is an exact dimension set.
No emission ever raises: a metric that cannot be published is logged, never a failed request.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar

from aws_lambda_powertools import Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from lambda_src.platform.log import SERVICE_NAME, logger

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
)
LATENCIES: Final = (
    SESSION_CREATION_LATENCY,
    LISTENER_JOIN_LATENCY,
    AUDIO_HAND_OFF_LATENCY,
    CHUNK_PROCESSING_LATENCY,
)
GAUGES: Final = (ACTIVE_SESSIONS, CONNECTED_LISTENERS)

UNIT: Final = MetricUnit.Count  # the counts' and the gauges'
LATENCY_UNIT: Final = MetricUnit.Milliseconds
UNITS: Final = {**{name: UNIT for name in COUNTS + GAUGES}, **{name: LATENCY_UNIT for name in LATENCIES}}

_metrics = Metrics(namespace=NAMESPACE, service=SERVICE_NAME)

_F = TypeVar("_F", bound=Callable[..., None])
_P = ParamSpec("_P")
_R = TypeVar("_R")


def default_dimensions() -> dict[str, str]:
    """The dimensions every metric carries, in this order."""
    return {
        SERVICE_DIMENSION: SERVICE_NAME,
        ENVIRONMENT_DIMENSION: os.environ.get(ENV_ENVIRONMENT_NAME) or UNKNOWN_ENVIRONMENT,
    }


def dimension_names(metric: str) -> list[str]:
    """The exact dimension set ``metric`` is published with (what an alarm on it must name)."""
    extra = EXTRA_DIMENSION[metric]
    return [SERVICE_DIMENSION, ENVIRONMENT_DIMENSION, *([extra] if extra else [])]


def reset() -> None:
    """Drop unpublished metrics and read the environment again (a Lambda's never changes; tests' does)."""
    _metrics.clear_default_dimensions()
    _metrics.clear_metrics()
    _metrics.set_default_dimensions(**default_dimensions())


reset()


def _never_raises(emit: _F) -> _F:
    @functools.wraps(emit)
    def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            emit(*args, **kwargs)
        except Exception:
            logger.exception("metric not published", extra={"metric_function": emit.__name__})

    return guarded  # type: ignore[return-value]


def _count(name: str) -> None:
    assert EXTRA_DIMENSION[name] is None and name in COUNTS, name
    _metrics.add_metric(name=name, unit=UNITS[name], value=1)


def _count_by(name: str, value: str) -> None:
    extra = EXTRA_DIMENSION[name]
    assert extra is not None, name
    with single_metric(
        name=name, unit=UNITS[name], value=1, namespace=NAMESPACE, default_dimensions=default_dimensions()
    ) as metric:
        metric.add_dimension(name=extra, value=value)


@_never_raises
def session_created() -> None:
    _count(SESSIONS_CREATED)


@_never_raises
def listener_joined() -> None:
    _count(LISTENERS_JOINED)


@_never_raises
def listener_left() -> None:
    _count(LISTENERS_LEFT)


@_never_raises
def session_ended(reason: str) -> None:
    """``reason``: one of the contract's end reasons (``endedBySpeaker``, ``speakerTimeout``, ``expired``)."""
    _count_by(SESSIONS_ENDED, reason)


@_never_raises
def duplicate_audio_chunk() -> None:
    """A ``sendAudio`` chunk dropped because one with its key is stored already."""
    _count(DUPLICATE_AUDIO_CHUNKS)


@_never_raises
def audio_chunks_missing(count: int) -> None:
    """Chunks the transcription consumer gave up waiting for (a gap in a connection's sequence)."""
    _metrics.add_metric(name=MISSING_AUDIO_CHUNKS, unit=UNITS[MISSING_AUDIO_CHUNKS], value=count)


@_never_raises
def transcription_counts(*, partials: int, finals: int, partials_dropped: int, discrepancies: int) -> None:
    """What the partial-result processor did since the last call: segments forwarded (partial and final: their
    ratio is the partial-to-final ratio), partials dropped by the rate limit, finals that differed from their
    last partial by more than the discrepancy threshold. Zeros are not published."""
    for name, value in (
        (PARTIALS_FORWARDED, partials),
        (FINALS_FORWARDED, finals),
        (PARTIALS_DROPPED, partials_dropped),
        (TRANSCRIPT_DISCREPANCIES, discrepancies),
    ):
        if value:
            _metrics.add_metric(name=name, unit=UNITS[name], value=value)


def audio_hand_off(milliseconds: float) -> None:
    """From a chunk's arrival (the message function's write) to the consumer's read of it."""
    _latency(AUDIO_HAND_OFF_LATENCY, milliseconds)


def chunk_processing(milliseconds: float) -> None:
    """The consumer's time for one chunk: the recognizer, the processor and the delivery of what it forwarded."""
    _latency(CHUNK_PROCESSING_LATENCY, milliseconds)


@_never_raises
def translation_failed() -> None:
    """A caption not translated into one of its target languages (logged with the language by the caller)."""
    _count(TRANSLATION_FAILURES)


@_never_raises
def rejected(error_code: str) -> None:
    """``error_code``: the catalogue name the client received (``ErrorCode.X.name``)."""
    _count_by(REJECTIONS, error_code)


def timed(name: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator: each call of the decorated function that returns records its duration, in milliseconds, as
    the latency metric ``name``; a call that raises records nothing."""
    assert name in LATENCIES, name

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(function)
        def timed_call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            started = time.perf_counter()
            result = function(*args, **kwargs)
            _latency(name, (time.perf_counter() - started) * 1000)
            return result

        return timed_call

    return decorate


@_never_raises
def _latency(name: str, milliseconds: float) -> None:
    _metrics.add_metric(name=name, unit=UNITS[name], value=round(milliseconds, 3))


@_never_raises
def gauges(active_sessions: int, connected_listeners: int) -> None:
    """The levels the sweeper measures once a minute: active sessions, and the listeners counted in them."""
    _metrics.add_metric(name=ACTIVE_SESSIONS, unit=UNITS[ACTIVE_SESSIONS], value=active_sessions)
    _metrics.add_metric(name=CONNECTED_LISTENERS, unit=UNITS[CONNECTED_LISTENERS], value=connected_listeners)


@_never_raises
def flush() -> None:
    """Publish the invocation's metrics with only the default dimensions (one EMF line; none when there are
    none). Every handler calls this once, at the end of each invocation."""
    if _metrics.metric_set:
        _metrics.flush_metrics()
