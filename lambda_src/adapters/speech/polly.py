"""The deployed synthesizer: Amazon Polly's ``SynthesizeSpeech``, MP3, through a botocore client from the process's
one session (:mod:`lambda_src.platform.aws`), created on first use and shared by the threads speaking languages in
parallel.

Each language's voice comes from :data:`lambda_src.contract.voices.POLLY_VOICES` (the neural engine where the voice
has one, standard otherwise), with the environment's ``pollyVoices`` over it (the composition root merges them); a
language without one is :class:`SpeechUnavailable`. The duration is read from the
MP3's frame headers (:mod:`.mp3`): it costs no second request (speech marks, or PCM to measure, would each be
another billed synthesis of the same text) and is exact to a frame (26 ms at most, for Polly's 22.05 and 24 kHz).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lambda_src.adapters.speech import mp3
from lambda_src.contract import limits
from lambda_src.contract.voices import POLLY_VOICES, PollyVoice
from lambda_src.model.speech import SpeechUnavailable, SpokenText
from lambda_src.platform import aws

NAME: Final = "Amazon Polly"
SERVICE: Final = "polly"
OUTPUT_FORMAT: Final = "mp3"
CONTENT_TYPE: Final = "audio/mpeg"

# A segment's speech is due right after its captions: wait at most 1 s to connect and 5 s for the audio (a
# sentence takes well under a second), and retry once (throttling and server errors, with botocore's backoff).
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 2},
    connect_timeout=1,
    read_timeout=5,
    max_pool_connections=limits.TRANSLATION_PARALLELISM,  # one pooled connection per language spoken at once
)


class PollySynthesizer:
    """``SynthesizeSpeech`` for each text. ``client``: a botocore ``polly`` client to use (tests stub one); by
    default one is created on the first synthesis. ``voices``: the voice of each language (by default the table)."""

    name: Final = NAME

    def __init__(self, client: Any | None = None, voices: Mapping[str, PollyVoice] = POLLY_VOICES) -> None:
        self._client = aws.LazyClient(SERVICE, client, config=_CLIENT_CONFIG)
        self._voices = dict(voices)

    def client(self) -> Any:
        return self._client.get()

    def speaks(self, language: str) -> bool:
        return language in self._voices

    def synthesize(self, text: str, language: str) -> SpokenText:
        voice = self._voices.get(language)
        if voice is None:
            raise SpeechUnavailable(language)
        request: dict[str, Any] = {
            "Text": text,
            "TextType": "text",
            "VoiceId": voice.voice_id,
            "Engine": "neural" if voice.neural else "standard",
            "OutputFormat": OUTPUT_FORMAT,
        }
        if voice.language_code:
            request["LanguageCode"] = voice.language_code
        what = f"{language} ({voice.voice_id}, {request['Engine']})"
        try:
            response = self.client().synthesize_speech(**request)
            audio = response["AudioStream"].read()
        except ClientError as error:
            details = error.response.get("Error", {})
            code = details.get("Code") or "Unknown"
            raise RuntimeError(f"{NAME} refused to speak {what}: {code}: {details.get('Message', '')}") from error
        except BotoCoreError as error:  # no answer: connection refused or timed out, credentials, ...
            raise RuntimeError(f"{NAME} did not answer for {what}: {error}") from error
        try:
            duration = mp3.duration_seconds(audio)
        except ValueError as error:
            raise RuntimeError(f"{NAME} answered {what} with audio that is not MP3: {error}") from error
        return SpokenText(audio=audio, content_type=CONTENT_TYPE, duration_seconds=duration)
