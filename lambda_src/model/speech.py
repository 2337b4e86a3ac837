"""What the live path needs to let listeners hear the translation (decision record 0039): a synthesizer that speaks
a segment's text in one language, and a store that keeps the audio and hands out a short-lived URL to it.

Amazon Polly and S3 (the cloud), espeak-ng and an S3-API server (the local run) sit behind these interfaces, so the
delivery of ``translatedAudio`` runs the same code wherever it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SpokenText:
    """One text spoken: the audio (``content_type``, e.g. ``audio/mpeg``) and how long it plays, in seconds."""

    audio: bytes
    content_type: str
    duration_seconds: float


class SpeechUnavailable(Exception):
    """The synthesizer cannot speak this language (no voice): captions only for its listeners."""

    def __init__(self, language: str) -> None:
        super().__init__(f"no voice speaks {language!r}")
        self.language = language


class Synthesizer(Protocol):
    """Speaks one text in one language; raises :class:`SpeechUnavailable` for a language it has no voice for, and
    any other exception for a failure of the engine."""

    @property
    def name(self) -> str:
        """What the engine is called where people see it (logs, ``make local``)."""
        ...

    def speaks(self, language: str) -> bool:
        """Whether it has a voice for ``language`` (an ISO 639-1 code), without speaking."""
        ...

    def synthesize(self, text: str, language: str) -> SpokenText:
        """``text`` (in ``language``) spoken."""
        ...


class AudioStore(Protocol):
    """Keeps spoken segments and hands out URLs a browser can GET cross-origin."""

    def put(self, key: str, audio: bytes, content_type: str) -> None:
        """Store ``audio`` under ``key`` (a later put of the same key replaces it)."""
        ...

    def url(self, key: str, expires_in_seconds: int) -> str:
        """A GET URL of ``key`` valid for ``expires_in_seconds``."""
        ...
