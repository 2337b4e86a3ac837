"""The voices that speak each language to listeners (decision record 0039): Amazon Polly's in the cloud, espeak-ng's
in the local run, by ISO 639-1 code, as in :mod:`lambda_src.contract.languages`.

A supported language missing here has no voice: its listeners get captions only (the synthesizers raise
``SpeechUnavailable``). Polly has no Afrikaans, Basque, Croatian, Galician, Greek, Hebrew, Indonesian, Latvian, Malay,
Persian, Serbian, Slovak, Somali, Tagalog, Thai, Ukrainian, Vietnamese or Zulu voice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class PollyVoice:
    """One Polly voice: its id, whether it has a neural engine (used where it has; standard otherwise), and the
    language code to ask for when the voice is bilingual (Polly speaks a bilingual voice's default language unless
    told), else None."""

    voice_id: str
    neural: bool
    language_code: str | None = None


# One voice per language, in the accent Amazon Transcribe streaming hears it in where Polly has it
# (languages.TRANSCRIBE_STREAMING_LOCALES: en-US, es-US, pt-BR, ...); a neural one where the language has one.
POLLY_VOICES: Final[dict[str, PollyVoice]] = {
    "ar": PollyVoice("Zeina", neural=False),  # Modern Standard Arabic
    "ca": PollyVoice("Arlet", neural=True),
    "cs": PollyVoice("Jitka", neural=True),
    "da": PollyVoice("Sofie", neural=True),
    "de": PollyVoice("Vicki", neural=True),
    "en": PollyVoice("Joanna", neural=True),
    "es": PollyVoice("Lupe", neural=True),  # US Spanish
    "fi": PollyVoice("Suvi", neural=True),
    "fr": PollyVoice("Lea", neural=True),
    "hi": PollyVoice("Kajal", neural=True, language_code="hi-IN"),  # bilingual: Indian English by default
    "it": PollyVoice("Bianca", neural=True),
    "ja": PollyVoice("Takumi", neural=True),
    "ko": PollyVoice("Seoyeon", neural=True),
    "nl": PollyVoice("Laura", neural=True),
    "no": PollyVoice("Ida", neural=True),
    "pl": PollyVoice("Ola", neural=True),
    "pt": PollyVoice("Camila", neural=True),  # Brazilian Portuguese
    "ro": PollyVoice("Carmen", neural=False),
    "ru": PollyVoice("Tatyana", neural=False),
    "sv": PollyVoice("Elin", neural=True),
    "zh": PollyVoice("Zhiyu", neural=True),  # Mandarin
}

# espeak-ng's voice for each supported language (``espeak-ng --voices``): the same accents as above where it has
# them. It has no Somali, Tagalog or Zulu voice.
ESPEAK_VOICES: Final[dict[str, str]] = {
    "af": "af", "ar": "ar", "ca": "ca", "cs": "cs", "da": "da", "de": "de", "el": "el", "en": "en-us",
    "es": "es-419", "eu": "eu", "fa": "fa", "fi": "fi", "fr": "fr-fr", "he": "he", "hi": "hi", "hr": "hr",
    "id": "id", "it": "it", "ja": "ja", "ko": "ko", "lv": "lv", "ms": "ms", "nl": "nl", "no": "nb", "pl": "pl",
    "pt": "pt-br", "ro": "ro", "ru": "ru", "sk": "sk", "sr": "sr", "sv": "sv", "th": "th", "uk": "uk", "vi": "vi",
    "zh": "cmn",
}  # fmt: skip
