"""The languages the downstream pipeline can transcribe and translate (ISO 639-1).

The codes that Amazon Transcribe streaming and Amazon Translate both support. An environment may narrow
or replace the list with the ``SUPPORTED_LANGUAGES`` variable; no network call decides it.
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


def parse_language_list(raw: str) -> frozenset[str]:
    """Read a comma-separated override such as ``"en,es,fr"``."""
    codes = frozenset(code.strip() for code in raw.split(",") if code.strip())
    if not codes:
        raise ValueError("SUPPORTED_LANGUAGES is set but names no language")
    return codes
