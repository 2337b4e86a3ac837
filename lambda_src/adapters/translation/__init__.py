"""Translating captions: the :class:`Translator` interface and its two engines, Amazon Translate (deployed) and
the stand-in (the local run), chosen by :func:`from_environment`."""

from __future__ import annotations

import os
from typing import Final

from lambda_src.adapters.translation.translator import UNSUPPORTED_LANGUAGE, TranslationError, Translator

# The variable that picks the engine: STAND_IN selects the stand-in (the local run sets it); unset, or anything
# else, Amazon Translate.
ENV_TRANSLATOR: Final = "TRANSLATOR"
STAND_IN: Final = "stand-in"

__all__ = ["ENV_TRANSLATOR", "STAND_IN", "UNSUPPORTED_LANGUAGE", "TranslationError", "Translator", "from_environment"]


def from_environment() -> Translator:
    """The engine this process's environment asks for (:data:`ENV_TRANSLATOR`)."""
    if os.environ.get(ENV_TRANSLATOR, "").strip() == STAND_IN:
        from lambda_src.adapters.translation.stand_in import StandInTranslator

        return StandInTranslator()
    from lambda_src.adapters.translation.amazon_translate import AmazonTranslateTranslator

    return AmazonTranslateTranslator()
