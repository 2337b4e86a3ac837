"""The stand-in translator: not a translation.

The local run translates with Apertium (:mod:`.apertium`) where the installed pairs allow; for every other pair it
does not translate: it marks the text with the target language, ``"[es] " + text``, so nobody can take a
stand-in caption for a translated one.
"""

from __future__ import annotations

from typing import Final

NAME: Final = "stand-in translator (marks the text, does not translate)"


def mark(text: str, target_language: str) -> str:
    """What the stand-in makes of ``text`` for ``target_language``."""
    return f"[{target_language}] {text}"


class StandInTranslator:
    """Marks each text with its target language; never fails, never calls anything."""

    name: Final = NAME

    def translate(self, text: str, source_language: str, target_language: str) -> str:
        return mark(text, target_language)
