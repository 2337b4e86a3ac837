"""What captions need of a translation engine: one text from a source language into a target language."""

from __future__ import annotations

from typing import Protocol


class Translator(Protocol):
    """Translates one caption's text; raises :class:`TranslationError` when it cannot."""

    @property
    def name(self) -> str:
        """What the engine is called where people see it (logs, the documentation)."""
        ...

    def translate(self, text: str, source_language: str, target_language: str) -> str:
        """``text`` (in ``source_language``) in ``target_language``; both ISO 639-1 codes
        (:mod:`lambda_src.contract.languages`)."""
        ...


class TranslationError(Exception):
    """The engine could not translate: ``code`` says why (the service's error code, or
    :data:`UNSUPPORTED_LANGUAGE`), the message says what it was asked."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# TranslationError.code when the engine has no such language (nothing was asked of the service).
UNSUPPORTED_LANGUAGE = "UnsupportedLanguage"
