"""Emitting the service's business metrics (their names, dimensions and what each counts:
``lambda_src.contract.telemetry``).

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

from lambda_src.contract import telemetry
from lambda_src.platform.log import logger

UNIT: Final = MetricUnit.Count  # the counts' and the gauges'
LATENCY_UNIT: Final = MetricUnit.Milliseconds
UNITS: Final = {
    **{name: UNIT for name in telemetry.COUNTS + telemetry.GAUGES},
    **{name: LATENCY_UNIT for name in telemetry.LATENCIES},
}

_metrics = Metrics(namespace=telemetry.NAMESPACE, service=telemetry.SERVICE_NAME)

_F = TypeVar("_F", bound=Callable[..., None])
_P = ParamSpec("_P")
_R = TypeVar("_R")


def default_dimensions() -> dict[str, str]:
    """The dimensions every metric carries, in this order."""
    return {
        telemetry.SERVICE_DIMENSION: telemetry.SERVICE_NAME,
        telemetry.ENVIRONMENT_DIMENSION: os.environ.get(telemetry.ENV_ENVIRONMENT_NAME)
        or telemetry.UNKNOWN_ENVIRONMENT,
    }


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
    assert telemetry.EXTRA_DIMENSION[name] is None and name in telemetry.COUNTS, name
    _metrics.add_metric(name=name, unit=UNITS[name], value=1)


def _count_by(name: str, value: str) -> None:
    extra = telemetry.EXTRA_DIMENSION[name]
    assert extra is not None, name
    with single_metric(
        name=name, unit=UNITS[name], value=1, namespace=telemetry.NAMESPACE, default_dimensions=default_dimensions()
    ) as metric:
        metric.add_dimension(name=extra, value=value)


@_never_raises
def session_created() -> None:
    _count(telemetry.SESSIONS_CREATED)


@_never_raises
def listener_joined() -> None:
    _count(telemetry.LISTENERS_JOINED)


@_never_raises
def listener_left() -> None:
    _count(telemetry.LISTENERS_LEFT)


@_never_raises
def session_ended(reason: str) -> None:
    """``reason``: one of the contract's end reasons (``endedBySpeaker``, ``speakerTimeout``, ``expired``)."""
    _count_by(telemetry.SESSIONS_ENDED, reason)


@_never_raises
def duplicate_audio_chunk() -> None:
    """A ``sendAudio`` chunk dropped because one with its key is stored already."""
    _count(telemetry.DUPLICATE_AUDIO_CHUNKS)


@_never_raises
def audio_chunks_missing(count: int) -> None:
    """Chunks the transcription consumer gave up waiting for (a gap in a connection's sequence)."""
    _metrics.add_metric(name=telemetry.MISSING_AUDIO_CHUNKS, unit=UNITS[telemetry.MISSING_AUDIO_CHUNKS], value=count)


@_never_raises
def transcription_counts(*, partials: int, finals: int, partials_dropped: int, discrepancies: int) -> None:
    """What the partial-result processor did since the last call: segments forwarded (partial and final: their
    ratio is the partial-to-final ratio), partials dropped by the rate limit, finals that differed from their
    last partial by more than the discrepancy threshold. Zeros are not published."""
    for name, value in (
        (telemetry.PARTIALS_FORWARDED, partials),
        (telemetry.FINALS_FORWARDED, finals),
        (telemetry.PARTIALS_DROPPED, partials_dropped),
        (telemetry.TRANSCRIPT_DISCREPANCIES, discrepancies),
    ):
        if value:
            _metrics.add_metric(name=name, unit=UNITS[name], value=value)


def audio_hand_off(milliseconds: float) -> None:
    """From a chunk's arrival (the message function's write) to the consumer's read of it."""
    _latency(telemetry.AUDIO_HAND_OFF_LATENCY, milliseconds)


def chunk_processing(milliseconds: float) -> None:
    """The consumer's time for one chunk: the recognizer, the processor and the delivery of what it forwarded."""
    _latency(telemetry.CHUNK_PROCESSING_LATENCY, milliseconds)


@_never_raises
def translation_failed() -> None:
    """A caption not translated into one of its target languages (logged with the language by the caller)."""
    _count(telemetry.TRANSLATION_FAILURES)


@_never_raises
def synthesis_failed() -> None:
    """A final segment not spoken in one of its languages (logged with the language and why by the caller)."""
    _count(telemetry.SYNTHESIS_FAILURES)


@_never_raises
def transcript_write_failed(segments: int) -> None:
    """``segments`` final segments not recorded in their session's transcript (logged by the caller)."""
    name = telemetry.TRANSCRIPT_WRITE_FAILURES
    if segments:
        _metrics.add_metric(name=name, unit=UNITS[name], value=segments)


@_never_raises
def rejected(error_code: str) -> None:
    """``error_code``: the catalogue name the client received (``ErrorCode.X.name``)."""
    _count_by(telemetry.REJECTIONS, error_code)


def timed(name: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator: each call of the decorated function that returns records its duration, in milliseconds, as
    the latency metric ``name``; a call that raises records nothing."""
    assert name in telemetry.LATENCIES, name

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
    _metrics.add_metric(name=telemetry.ACTIVE_SESSIONS, unit=UNITS[telemetry.ACTIVE_SESSIONS], value=active_sessions)
    _metrics.add_metric(
        name=telemetry.CONNECTED_LISTENERS, unit=UNITS[telemetry.CONNECTED_LISTENERS], value=connected_listeners
    )


@_never_raises
def flush() -> None:
    """Publish the invocation's metrics with only the default dimensions (one EMF line; none when there are
    none). Every handler calls this once, at the end of each invocation."""
    if _metrics.metric_set:
        _metrics.flush_metrics()
