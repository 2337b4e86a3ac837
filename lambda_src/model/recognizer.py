"""What the transcription consumer needs of a speech recognizer: audio in, Transcribe-shaped results out.

Amazon Transcribe streaming (the cloud), pocketsphinx (the local run, :mod:`.local_recognizer`) and scripted
sources (tests) all sit behind this interface, so the partial-result processor and everything after it run
the same code wherever they run.
"""

from __future__ import annotations

from typing import Protocol

from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.model.partial_result_processor import RecognitionResult
from lambda_src.model.partial_results import PartialResultConfig

BYTES_PER_SAMPLE = 2


class Recognizer(Protocol):
    """One stream of one session's audio."""

    def feed(self, pcm: bytes) -> list[RecognitionResult]:
        """Take the next audio; the results the recognizer produced since the last call."""
        ...

    def close(self) -> list[RecognitionResult]:
        """The audio ended: the last results (finals for whatever was still open)."""
        ...

    def fits(self, config: PartialResultConfig) -> bool:
        """Whether this stream still serves the session's partial-result ``config``: False when it was opened
        for settings it cannot change mid-stream (the consumer then replaces it at the next segment boundary)."""
        ...


def unsupported_language(language: str, recognizer: str, supported: tuple[str, ...]) -> ServiceError:
    """The refusal for a source language a recognizer cannot transcribe."""
    return ServiceError(
        ErrorCode.INVALID_PARAMETERS,
        f"sourceLanguage must be one of {', '.join(supported)} for the {recognizer} recognizer, got {language!r}",
        field="sourceLanguage",
    )
