"""The languages the downstream pipeline can transcribe and translate (ISO 639-1).

The codes Amazon Transcribe streaming supports, every one of which Amazon Translate also names by the same code,
except the three in :data:`NOT_IN_AMAZON_TRANSLATE`. An environment may narrow or replace the list with the
``SUPPORTED_LANGUAGES`` variable; no network call decides it.
"""

from __future__ import annotations

from typing import Final

SUPPORTED_LANGUAGES: Final[frozenset[str]] = frozenset(
    {
        "af",
        "ar",
        "ca",
        "cs",
        "da",
        "de",
        "el",
        "en",
        "es",
        "eu",
        "fa",
        "fi",
        "fr",
        "gl",
        "he",
        "hi",
        "hr",
        "id",
        "it",
        "ja",
        "ko",
        "lv",
        "ms",
        "nl",
        "no",
        "pl",
        "pt",
        "ro",
        "ru",
        "sk",
        "so",
        "sr",
        "sv",
        "th",
        "tl",
        "uk",
        "vi",
        "zh",
        "zu",
    }
)


# The Amazon Transcribe streaming locale each supported language is transcribed in (the deployed recognizer).
TRANSCRIBE_STREAMING_LOCALES: Final[dict[str, str]] = {
    "af": "af-ZA", "ar": "ar-SA", "ca": "ca-ES", "cs": "cs-CZ", "da": "da-DK", "de": "de-DE", "el": "el-GR",
    "en": "en-US", "es": "es-US", "eu": "eu-ES", "fa": "fa-IR", "fi": "fi-FI", "fr": "fr-FR", "gl": "gl-ES",
    "he": "he-IL", "hi": "hi-IN", "hr": "hr-HR", "id": "id-ID", "it": "it-IT", "ja": "ja-JP", "ko": "ko-KR",
    "lv": "lv-LV", "ms": "ms-MY", "nl": "nl-NL", "no": "no-NO", "pl": "pl-PL", "pt": "pt-BR", "ro": "ro-RO",
    "ru": "ru-RU", "sk": "sk-SK", "so": "so-SO", "sr": "sr-RS", "sv": "sv-SE", "th": "th-TH", "tl": "tl-PH",
    "uk": "uk-UA", "vi": "vi-VN", "zh": "zh-CN", "zu": "zu-ZA",
}  # fmt: skip


# Amazon Translate names every supported language by its ISO 639-1 code, as this module does, so no code needs
# mapping; but it has no Basque, Galician or Zulu (Transcribe streaming has them): captions into or out of these
# are not translated in the cloud (each attempt is a translation failure, and their listeners get no caption).
NOT_IN_AMAZON_TRANSLATE: Final[frozenset[str]] = frozenset({"eu", "gl", "zu"})


def parse_language_list(raw: str) -> frozenset[str]:
    """Read a comma-separated override such as ``"en,es,fr"``."""
    codes = frozenset(code.strip() for code in raw.split(",") if code.strip())
    if not codes:
        raise ValueError("SUPPORTED_LANGUAGES is set but names no language")
    return codes
