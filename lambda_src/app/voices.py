"""Which synthesizer and audio store speak segments here (``runtime.synthesizer()`` / ``runtime.audio_store()``), and
whether a language can be spoken: what both the delivery of speech (``lambda_src.app.speech``) and a listener's
join or change (``lambda_src.app.connections``, which tells a listener once that its language has no voice) ask.

A deployment with no synthesizer or no audio store configured speaks nothing: captions only, logged once per
process, and no listener is told anything (its language is not the reason). Which languages have a voice is the
synthesizer's to say: Polly's are the code's table with the environment's ``pollyVoices`` over it (merged once, by
the composition root), so an override that gives a language a voice is honoured at joins as in the delivery.
"""

from __future__ import annotations

import threading

from lambda_src import runtime
from lambda_src.model.speech import AudioStore, Synthesizer
from lambda_src.platform.log import logger

_lock = threading.Lock()
_unconfigured_logged = False


def engine() -> tuple[Synthesizer, AudioStore] | None:
    """The synthesizer and the audio store, or None when either is not configured (logged once per process)."""
    global _unconfigured_logged
    try:
        return runtime.synthesizer(), runtime.audio_store()
    except RuntimeError as error:
        with _lock:
            first, _unconfigured_logged = not _unconfigured_logged, True
        if first:
            logger.warning(f"listeners get captions only: {error}")
        return None


def cannot_speak(language: str) -> bool:
    """Whether the configured synthesizer has no voice for ``language`` (a listener wanting audio in it is told
    so once). False when no synthesizer is configured (nothing is spoken anywhere: not the language's doing) or
    when asking failed (logged: the consumer asks again, and skips the language without a word if it must)."""
    try:
        synthesizer = runtime.synthesizer()  # (the store is the transcriber's: a join needs only the voices)
    except RuntimeError:
        return False
    try:
        return not synthesizer.speaks(language)
    except Exception:
        logger.exception("could not ask the synthesizer about a language", extra={"target_language": language})
        return False
