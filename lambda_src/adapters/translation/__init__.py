"""Translating captions: the :class:`Translator` interface and its engines, Amazon Translate (deployed), Apertium
with the stand-in for the pairs it lacks (the local run), and the stand-in alone, chosen by
:func:`from_environment`."""

from __future__ import annotations

import os
from typing import Final

from lambda_src.adapters.translation.translator import UNSUPPORTED_LANGUAGE, TranslationError, Translator

# The variable that picks the engine: APERTIUM selects Apertium (the local run sets it, with the server's address
# in apertium.ENV_URL), STAND_IN the stand-in alone; unset, or anything else, Amazon Translate.
ENV_TRANSLATOR: Final = "TRANSLATOR"
APERTIUM: Final = "apertium"
STAND_IN: Final = "stand-in"

__all__ = [
    "APERTIUM",
    "ENV_TRANSLATOR",
    "STAND_IN",
    "UNSUPPORTED_LANGUAGE",
    "TranslationError",
    "Translator",
    "from_environment",
]


def from_environment() -> Translator:
    """The engine this process's environment asks for (:data:`ENV_TRANSLATOR`). Apertium without its server's
    address is a mistake in the environment, refused here rather than found at every caption."""
    chosen = os.environ.get(ENV_TRANSLATOR, "").strip()
    if chosen == APERTIUM:
        from lambda_src.adapters.translation.apertium import ENV_URL, ApertiumTranslator

        url = os.environ.get(ENV_URL, "").strip()
        if not url:
            raise RuntimeError(f"{ENV_TRANSLATOR}={APERTIUM} needs the Apertium server's URL in {ENV_URL}")
        return ApertiumTranslator(url)
    if chosen == STAND_IN:
        from lambda_src.adapters.translation.stand_in import StandInTranslator

        return StandInTranslator()
    from lambda_src.adapters.translation.amazon_translate import AmazonTranslateTranslator

    return AmazonTranslateTranslator()
