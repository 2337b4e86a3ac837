"""The voices that speak each language to listeners (decision record 0039): Amazon Polly's in the cloud, espeak-ng's
in the local run, by ISO 639-1 code, as in :mod:`lambda_src.contract.languages`.

A supported language missing here has no voice: its listeners get captions only (the synthesizers raise
``SpeechUnavailable``). Polly has no Afrikaans, Basque, Croatian, Galician, Greek, Hebrew, Indonesian, Latvian, Malay,
Persian, Serbian, Slovak, Somali, Tagalog, Thai, Ukrainian, Vietnamese or Zulu voice.

:data:`POLLY_VOICES` is the default; an environment overrides the voice of any language with the function setting
``pollyVoices`` (``POLLY_VOICES`` in the functions' environment, :mod:`lambda_src.contract.function_settings`):
``language:VoiceId[:engine[:LanguageCode]]`` entries separated by commas, e.g. ``es:Lucia,fr:Remi,ro:Carmen:standard``
(:func:`parse_polly_voices`, the one reader, at synth and when a function starts), merged over the defaults
(:func:`merged_polly_voices`). An override's engine is neural unless it says ``standard``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from lambda_src.contract.languages import SUPPORTED_LANGUAGES


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


# The engines an override may name; without one, an override's voice is spoken by the neural engine (every voice
# Polly has added for years has one, several have nothing else). Generative and long-form are not offered: dearer per
# character, and long-form is made for long texts, not a sentence at a time.
NEURAL: Final = "neural"
STANDARD: Final = "standard"
POLLY_ENGINES: Final = (NEURAL, STANDARD)
# Polly's voice ids are one capitalized ASCII word (Lupe, Lucia, Remi, Hiujin); its language codes are the language
# and a region (es-US, hi-IN), or a name of its own (arb, en-GB-WLS).
_VOICE_ID = re.compile(r"[A-Z][a-z]{1,31}")
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(-[A-Z]{2}(-[A-Z]{3})?)?")
_FORM = "language:VoiceId[:neural|standard[:LanguageCode]]"


def parse_polly_voices(raw: str) -> dict[str, PollyVoice]:
    """The voice overrides ``raw`` names (empty: none), by language; a ``ValueError`` says which entry is wrong and
    why: a language the service does not support (:data:`SUPPORTED_LANGUAGES`), one named twice, a voice id not of
    Polly's form, an engine other than neural or standard, a language code not of Polly's form."""
    voices: dict[str, PollyVoice] = {}
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        fields = [field.strip() for field in entry.split(":")]
        if not 2 <= len(fields) <= 4:
            raise ValueError(f"{entry!r} is not {_FORM}")
        language, voice_id, *rest = fields
        if language not in SUPPORTED_LANGUAGES:
            raise ValueError(f"{entry!r} names {language!r}, not a language the service supports")
        if language in voices:
            raise ValueError(f"{language!r} is given a voice twice")
        if not _VOICE_ID.fullmatch(voice_id):
            raise ValueError(f"{entry!r}: {voice_id!r} is not a Polly voice id (one capitalized word)")
        engine = rest[0] if rest else NEURAL
        if engine not in POLLY_ENGINES:
            raise ValueError(f"{entry!r}: the engine must be one of {', '.join(POLLY_ENGINES)}")
        language_code = rest[1] if len(rest) > 1 else None
        if language_code is not None and not _LANGUAGE_CODE.fullmatch(language_code):
            raise ValueError(f"{entry!r}: {language_code!r} is not a Polly language code (es-US, arb)")
        voices[language] = PollyVoice(voice_id, neural=engine == NEURAL, language_code=language_code)
    return voices


def merged_polly_voices(overrides: Mapping[str, PollyVoice]) -> dict[str, PollyVoice]:
    """:data:`POLLY_VOICES` with ``overrides`` in place of (or beside) the defaults. An override naming the default's
    own voice without a language code keeps the default's (a bilingual voice goes on speaking the right language)."""
    voices = dict(POLLY_VOICES)
    for language, voice in overrides.items():
        default = POLLY_VOICES.get(language)
        if voice.language_code is None and default is not None and default.voice_id == voice.voice_id:
            voice = replace(voice, language_code=default.language_code)
        voices[language] = voice
    return voices
