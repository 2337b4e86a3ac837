"""The scripted recognizer: a source of known results at no cost, for the bench and the tests, never for speech.

It measures the service's own part of the path from a speaker's chunk to the listeners' captions: a real
recognizer's time (pocketsphinx's real-time factor, Transcribe's own latency) is reported apart. Each chunk made by
:func:`chunk` carries a marker (an integer, e.g. its sequence number) in its first bytes; the chunk whose marker
``m`` has ``(m + 1) % SEGMENT_CHUNKS == 0`` completes a segment, and the recognizer answers it at once with one
FINAL result whose single word names the marker (:func:`word`), which the partial-result processor forwards
without holding it back. A completing chunk may instead carry the text its FINAL says (``chunk(m, text=...)``:
known sentences, e.g. for a translator to translate). Every other chunk (marked or not, e.g. real speech) gives no
result.

Selected by ``TRANSCRIPTION_RECOGNIZER=scripted`` (``lambda_src.adapters.transcription.recognizers``); never the
default.
"""

from __future__ import annotations

import re
import struct
from typing import Final

from lambda_src.contract.limits import SAMPLE_RATE_HZ
from lambda_src.model.partial_result_processor import Item, RecognitionResult
from lambda_src.model.partial_results import PartialResultConfig
from lambda_src.model.recognizer import BYTES_PER_SAMPLE

SEGMENT_CHUNKS: Final = 5  # a segment every 5th chunk: every half second of the speaker app's 100 ms chunks
_MAGIC: Final = b"SCRIPTED"
_MARKER: Final = struct.Struct("<Q")
_HEADER_BYTES: Final = len(_MAGIC) + _MARKER.size
# After the marker, the length of the UTF-8 text the chunk carries (0, as in a chunk of zeros: none), then the text.
_TEXT_LENGTH: Final = struct.Struct("<H")
_WORD: Final = re.compile(r"\bmarker(\d+)\b")
_TOKEN: Final = re.compile(r"\w[\w'-]*|[^\w\s]")  # a word, or one punctuation mark


def chunk(marker: int, size: int = SAMPLE_RATE_HZ * BYTES_PER_SAMPLE // 10, text: str = "") -> bytes:
    """A chunk of ``size`` bytes (by default 100 ms of the speaker app's PCM) carrying ``marker`` and, if given,
    the ``text`` its FINAL says when it completes a segment."""
    carried = _TEXT_LENGTH.pack(len(text.encode())) + text.encode() if text else b""
    if size < _HEADER_BYTES + len(carried) or size % BYTES_PER_SAMPLE:
        raise ValueError(
            f"a scripted chunk is an even number of bytes, at least {_HEADER_BYTES + len(carried)}, got {size}"
        )
    return _MAGIC + _MARKER.pack(marker) + carried + bytes(size - _HEADER_BYTES - len(carried))


def marker_of(pcm: bytes) -> int | None:
    """The marker a chunk carries (None: not a scripted chunk)."""
    if len(pcm) < _HEADER_BYTES or not pcm.startswith(_MAGIC):
        return None
    (marker,) = _MARKER.unpack_from(pcm, len(_MAGIC))
    return int(marker)


def text_of(pcm: bytes) -> str:
    """The text a scripted chunk carries ("" for none, or for a chunk that is not a scripted one)."""
    if marker_of(pcm) is None or len(pcm) < _HEADER_BYTES + _TEXT_LENGTH.size:
        return ""
    (length,) = _TEXT_LENGTH.unpack_from(pcm, _HEADER_BYTES)
    start = _HEADER_BYTES + _TEXT_LENGTH.size
    return pcm[start : start + length].decode(errors="replace")


def completes_segment(marker: int) -> bool:
    """Whether the chunk carrying ``marker`` completes a segment (its FINAL comes at once)."""
    return (marker + 1) % SEGMENT_CHUNKS == 0


def word(marker: int) -> str:
    """The one word of the FINAL a completing chunk gives."""
    return f"marker{marker}"


def marker_in(text: str) -> int | None:
    """The marker a transcript's or a caption's text names (a translation keeps the word), None if none."""
    found = _WORD.search(text)
    return int(found.group(1)) if found else None


class ScriptedRecognizer:
    """One stream: a FINAL naming the marker (or saying the carried text) of each chunk that completes a segment,
    nothing else."""

    def __init__(self, language: str) -> None:
        self.language = language  # any: the words are markers, not speech
        self._seconds = 0.0  # audio fed so far, for the results' times

    def feed(self, pcm: bytes) -> list[RecognitionResult]:
        start = self._seconds
        self._seconds += len(pcm) / (SAMPLE_RATE_HZ * BYTES_PER_SAMPLE)
        marker = marker_of(pcm)
        if marker is None or not completes_segment(marker):
            return []
        tokens = _TOKEN.findall(text_of(pcm)) or [word(marker)]
        items = tuple(Item(token, start, self._seconds, punctuation=not token[0].isalnum()) for token in tokens)
        return [RecognitionResult(f"scripted-{marker}", start, self._seconds, False, items)]

    def close(self) -> list[RecognitionResult]:
        return []

    def fits(self, config: PartialResultConfig) -> bool:
        return True  # opened with nothing the settings decide
