"""A session's transcript as a document to take home, in one language: WebVTT, SubRip (SRT) or plain text.

A transcript is the session's final segments in the order they were delivered, each with when it was said
(milliseconds from the session's start) and its text in the session's source language and in every language it was
captioned in (decision record 0036). A document in one language holds one cue per segment that has text in that
language; a segment said while nobody listened in that language, or whose translation failed, has none there. A
language with no segment at all is an empty document (a WebVTT header alone), not an error: a language gains its
first segment when its first listener joins, and the caller cannot tell the difference beforehand.

The cue times are kept valid whatever the recording's clock did: a cue never starts before the one ahead of it
(WebVTT requires start times in order), and it lasts at least
:data:`~lambda_src.contract.limits.MIN_TRANSCRIPT_CUE_MS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from lambda_src.contract import limits, wire

CONTENT_TYPES: Final[Mapping[str, str]] = {
    wire.TRANSCRIPT_WEBVTT: "text/vtt; charset=utf-8",
    wire.TRANSCRIPT_SRT: "application/x-subrip; charset=utf-8",
    wire.TRANSCRIPT_TEXT: "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class TranscriptSegment:
    """One final segment: when it was said, in milliseconds from the session's start, and its text by language
    (the source language's own, and each language it was captioned in)."""

    start_ms: int
    end_ms: int
    texts: Mapping[str, str]


@dataclass(frozen=True)
class Cue:
    """One segment's text in the document's language, with its (valid) times."""

    start_ms: int
    end_ms: int
    text: str


def cues(segments: Iterable[TranscriptSegment], language: str) -> list[Cue]:
    """The cues of ``language``, in the segments' order: whitespace (a line break included, which would end a
    cue) folded to single spaces, blank texts left out, start times never going back, each cue at least
    ``MIN_TRANSCRIPT_CUE_MS`` long."""
    out: list[Cue] = []
    previous_start = 0
    for segment in segments:
        text = " ".join(segment.texts.get(language, "").split())
        if not text:
            continue
        start = max(segment.start_ms, previous_start)
        end = max(segment.end_ms, start + limits.MIN_TRANSCRIPT_CUE_MS)
        out.append(Cue(start, end, text))
        previous_start = start
    return out


def render(segments: Iterable[TranscriptSegment], language: str, fmt: str) -> str:
    """The transcript in ``language`` as a ``fmt`` document (one of ``wire.TRANSCRIPT_FORMATS``)."""
    return _RENDERERS[fmt](cues(segments, language))


def webvtt(document: list[Cue]) -> str:
    """WebVTT: the header, then each cue numbered, ``HH:MM:SS.mmm --> HH:MM:SS.mmm``, its text escaped (``&``,
    ``<`` and ``>`` as character references, so no text reads as markup and none holds ``-->``)."""
    parts = ["WEBVTT\n"]
    for number, cue in enumerate(document, start=1):
        parts.append(f"\n{number}\n{_time(cue.start_ms, '.')} --> {_time(cue.end_ms, '.')}\n{_escape(cue.text)}\n")
    return "".join(parts)


def srt(document: list[Cue]) -> str:
    """SubRip: each cue numbered from 1, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, its text, a blank line. SubRip has
    no escapes: an arrow in the text is shortened, so it cannot read as a timing line."""
    return "".join(
        f"{number}\n{_time(cue.start_ms, ',')} --> {_time(cue.end_ms, ',')}\n{cue.text.replace('-->', '->')}\n\n"
        for number, cue in enumerate(document, start=1)
    )


def plain_text(document: list[Cue]) -> str:
    """Plain text: one line per segment, as said."""
    return "".join(f"{cue.text}\n" for cue in document)


_RENDERERS: Final[Mapping[str, Callable[[list[Cue]], str]]] = {
    wire.TRANSCRIPT_WEBVTT: webvtt,
    wire.TRANSCRIPT_SRT: srt,
    wire.TRANSCRIPT_TEXT: plain_text,
}


def _time(ms: int, separator: str) -> str:
    """``HH:MM:SS<separator>mmm`` (hours past 99 take more digits)."""
    ms = max(0, ms)
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
