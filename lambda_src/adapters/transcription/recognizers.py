"""Which recognizer a consumer opens: Amazon Transcribe streaming where the service is deployed; the local
run's stand-in (pocketsphinx, US English) where ``TRANSCRIPTION_RECOGNIZER`` says so (the local run sets it
for its functions, like the endpoints it swaps in); the scripted recognizer (``scripted``: known results at no
cost, :mod:`.scripted_recognizer`) for the bench and the tests only, never by default."""

from __future__ import annotations

import os
from typing import Final

from lambda_src.model.recognizer import Recognizer
from lambda_src.model.session import Session
from lambda_src.platform import aws

ENV_RECOGNIZER: Final = "TRANSCRIPTION_RECOGNIZER"
LOCAL: Final = "pocketsphinx"
SCRIPTED: Final = "scripted"  # the bench's and the tests' source of known results; not speech recognition


def open_for(session: Session) -> Recognizer:
    """A new stream for the session's source language and settings (refused with a catalogue error for a
    language the recognizer cannot transcribe)."""
    chosen = os.environ.get(ENV_RECOGNIZER)
    if chosen == LOCAL:
        from lambda_src.adapters.transcription.local_recognizer import PocketsphinxRecognizer

        return PocketsphinxRecognizer(session.source_language)
    if chosen == SCRIPTED:
        from lambda_src.adapters.transcription.scripted_recognizer import ScriptedRecognizer

        return ScriptedRecognizer(session.source_language)
    from lambda_src.adapters.transcription.transcribe_recognizer import TranscribeRecognizer

    return TranscribeRecognizer(
        session.source_language,
        float(session.config.min_stability_threshold),
        region=os.environ.get("AWS_REGION", ""),
        credentials=aws.credentials(),
    )
