"""Section 8, transcription: the partial-result processor's own cost per recognizer result beside a no-op
consumer of the same results, and the local recognizer's real-time factor, on speech spoken by espeak-ng.

The results fed to the processor are the local recognizer's own on that speech (partials revised every
100 ms chunk, as Amazon Transcribe revises them), replayed many times so the percentiles are stable.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import Row, percentile, row
from lambda_src.adapters.transcription.local_recognizer import PocketsphinxRecognizer
from lambda_src.model.partial_result_processor import PartialResultProcessor, RecognitionResult
from lambda_src.model.partial_results import PartialResultConfig
from local_run.speech import speak_pcm

SECTION = "transcription"
SPOKEN = (
    "Good morning everyone. Welcome to the service. Today we talk about the shepherd and the temple, "
    "and about the covenant the prophet spoke of."
)
CHUNK_BYTES = 3200  # 100 ms of 16 kHz 16-bit mono PCM
BYTES_PER_SECOND = 32_000
REPLAYS = 200
OVERHEAD_TARGET_US = 50.0


def speech(directory: Path) -> bytes:
    return speak_pcm(SPOKEN, directory)


def recognize(pcm: bytes) -> tuple[list[tuple[float, RecognitionResult]], float]:
    """The recognizer's results with their audio time, and the seconds it took."""
    recognizer = PocketsphinxRecognizer("en")
    started = time.perf_counter()
    results = [
        (offset / BYTES_PER_SECOND, r)
        for offset in range(0, len(pcm), CHUNK_BYTES)
        for r in recognizer.feed(pcm[offset : offset + CHUNK_BYTES])
    ]
    results += [(len(pcm) / BYTES_PER_SECOND, r) for r in recognizer.close()]
    return results, time.perf_counter() - started


def _per_event_us(results: list[tuple[float, RecognitionResult]], consume: bool) -> list[float]:
    samples: list[float] = []
    clock = time.perf_counter
    for replay in range(REPLAYS):
        processor = PartialResultProcessor(PartialResultConfig())
        offset = replay * 1000.0  # each replay later in time, as a long session would be
        for now, result in results:
            started = clock()
            if consume:
                processor.feed(result, now + offset)
            else:
                _noop(result, now + offset)
            samples.append((clock() - started) * 1e6)
    return samples


def _noop(result: RecognitionResult, now: float) -> list[object]:
    return []


def measure() -> list[Row]:
    with tempfile.TemporaryDirectory() as directory:
        pcm = speech(Path(directory))
    results, seconds = recognize(pcm)
    duration = len(pcm) / BYTES_PER_SECOND
    floor = _per_event_us(results, consume=False)
    timed = _per_event_us(results, consume=True)
    p50, p99 = percentile(timed, 50), percentile(timed, 99)
    return [
        row(
            SECTION,
            "processor per recognizer result, p50",
            round(p50, 1),
            "µs",
            floor=round(percentile(floor, 50), 2),
            floor_is="a no-op consumer of the same results",
            note=f"{len(results)} results of {duration:.1f} s of speech, replayed {REPLAYS} times",
        ),
        row(
            SECTION,
            "processor per recognizer result, p99",
            round(p99, 1),
            "µs",
            floor=round(percentile(floor, 99), 2),
            floor_is="a no-op consumer of the same results",
            target=f"≤ {OVERHEAD_TARGET_US:.0f} µs",
            met=p99 <= OVERHEAD_TARGET_US,
        ),
        row(
            SECTION,
            "local recognizer real-time factor (pocketsphinx, 100 ms chunks)",
            round(seconds / duration, 3),
            "× real time",
            target="< 1 (keeps up)",
            met=seconds < duration,
            note="one core; includes a partial hypothesis after every chunk",
        ),
    ]
