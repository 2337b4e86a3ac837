"""Speaking translations to listeners (decision record 0039): the synthesizers behind
:class:`lambda_src.model.speech.Synthesizer`, Amazon Polly (deployed) and espeak-ng (the local run's stand-in),
chosen by :func:`from_environment`; and the audio store behind :class:`lambda_src.model.speech.AudioStore`, the
stack's S3 bucket (:func:`audio_store`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from lambda_src.contract import function_settings
from lambda_src.contract.voices import POLLY_VOICES, PollyVoice
from lambda_src.model.speech import AudioStore, Synthesizer

# The variable that picks the synthesizer: ESPEAK selects espeak-ng (the local run sets it); unset, or anything
# else, Amazon Polly.
ENV_SYNTHESIZER: Final = "SYNTHESIZER"
ESPEAK: Final = "espeak-ng"

__all__ = ["ENV_SYNTHESIZER", "ESPEAK", "audio_store", "from_environment"]


def from_environment(polly_voices: Mapping[str, PollyVoice] = POLLY_VOICES) -> Synthesizer:
    """The synthesizer this process's environment asks for (:data:`ENV_SYNTHESIZER`); Amazon Polly speaks with
    ``polly_voices`` (the composition root passes the table with the environment's overrides)."""
    if os.environ.get(ENV_SYNTHESIZER, "").strip() == ESPEAK:
        from lambda_src.adapters.speech.espeak import EspeakSynthesizer

        return EspeakSynthesizer()
    from lambda_src.adapters.speech.polly import PollySynthesizer

    return PollySynthesizer(voices=polly_voices)


def audio_store(bucket: str) -> AudioStore:
    """The store on ``bucket`` (the function setting ``AUDIO_BUCKET``). A function without the bucket's name is a
    mistake in the stack, refused here rather than found at every spoken segment."""
    if not bucket:
        raise RuntimeError(f"no audio bucket: {function_settings.ENV_AUDIO_BUCKET} is not set for this function")
    from lambda_src.adapters.speech.s3_store import S3AudioStore

    return S3AudioStore(bucket)
