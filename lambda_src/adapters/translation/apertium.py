"""The local run's translator: Apertium, a rule-based offline engine, through its HTTP server (APY), for the
language pairs the server has; the marked stand-in (:mod:`.stand_in`) for every other pair.

The local run starts the server on loopback (``local_run/apertium.py``) and gives the functions its address in
:data:`ENV_URL`. A caption's translation is one ``GET /translate?langpair=eng|spa&q=...`` (the standard library's
urllib: nothing new in the functions' layer); which pairs are real is read once from ``GET /listPairs`` and kept
(the server's pairs are fixed by the packages installed when it started). Captions are live: the server gets
:data:`TIMEOUT_SECONDS` to answer, and any failure becomes a :class:`TranslationError` naming the pair.

Apertium names languages by ISO 639-3 codes (``eng``, ``spa``); the service by ISO 639-1
(:mod:`lambda_src.contract.languages`): :data:`APERTIUM_CODES` is the one table between them.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Final

from lambda_src.adapters.translation.stand_in import StandInTranslator
from lambda_src.adapters.translation.translator import UNSUPPORTED_LANGUAGE, TranslationError

NAME: Final = "Apertium"
# The server's base URL, e.g. http://127.0.0.1:2737 (the local run sets it).
ENV_URL: Final = "APERTIUM_URL"
# A caption that takes longer than this is no longer live. The first caption of a pair also starts that pair's
# pipeline in the server (well under a second here).
TIMEOUT_SECONDS: Final = 5.0

# TranslationError.code when the server did not answer (refused, timed out) or answered something unreadable.
UNREACHABLE: Final = "Unreachable"
TIMED_OUT: Final = "Timeout"
MALFORMED_RESPONSE: Final = "MalformedResponse"  # the code the Amazon Translate adapter uses for the same thing

# Each supported language (lambda_src.contract.languages.SUPPORTED_LANGUAGES) by the ISO 639-3 code Apertium's
# pairs use. Whether a pair of them is translated is the server's to say (GET /listPairs), not this table's.
APERTIUM_CODES: Final[dict[str, str]] = {
    "af": "afr", "ar": "ara", "ca": "cat", "cs": "ces", "da": "dan", "de": "deu", "el": "ell", "en": "eng",
    "es": "spa", "eu": "eus", "fa": "fas", "fi": "fin", "fr": "fra", "gl": "glg", "he": "heb", "hi": "hin",
    "hr": "hrv", "id": "ind", "it": "ita", "ja": "jpn", "ko": "kor", "lv": "lav", "ms": "msa", "nl": "nld",
    "no": "nor", "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus", "sk": "slk", "so": "som", "sr": "srp",
    "sv": "swe", "th": "tha", "tl": "tgl", "uk": "ukr", "vi": "vie", "zh": "zho", "zu": "zul",
}  # fmt: skip


def language_pairs(listed: Any) -> frozenset[tuple[str, str]]:
    """The (source, target) ISO 639-1 pairs in a ``/listPairs`` answer. A variant (``eng|cat_valencia``) or a
    language outside :data:`APERTIUM_CODES` is no pair of the service's. Raises ValueError for an answer that is
    not a list of pairs."""
    by_code = {code: language for language, code in APERTIUM_CODES.items()}
    data = listed.get("responseData") if isinstance(listed, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"no responseData list in {str(listed)[:200]!r}")
    pairs = set()
    for entry in data:
        if not isinstance(entry, dict):
            raise ValueError(f"a pair that is not an object: {entry!r}")
        source = by_code.get(str(entry.get("sourceLanguage")))
        target = by_code.get(str(entry.get("targetLanguage")))
        if source is not None and target is not None:
            pairs.add((source, target))
    return frozenset(pairs)


class ApertiumTranslator:
    """Apertium for the pairs the server at ``url`` has, the marked stand-in for the others (a language outside
    :data:`APERTIUM_CODES` included). ``timeout``: seconds the server gets for each request."""

    name: Final = NAME

    def __init__(self, url: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.stand_in = StandInTranslator()
        self._pairs: frozenset[tuple[str, str]] | None = None
        self._listing = threading.Lock()

    def pairs(self) -> frozenset[tuple[str, str]]:
        """The pairs the server translates, asked once (the caption threads share the answer). A failed ask raises
        :class:`TranslationError` and is asked again next time."""
        if self._pairs is None:
            with self._listing:
                if self._pairs is None:
                    listed = self._get("/listPairs", {}, "its language pairs")
                    try:
                        self._pairs = language_pairs(listed)
                    except ValueError as error:
                        raise TranslationError(
                            f"{NAME} answered its language pairs with {error}", code=MALFORMED_RESPONSE
                        ) from error
        return self._pairs

    def translate(self, text: str, source_language: str, target_language: str) -> str:
        if (source_language, target_language) not in self.pairs():
            return self.stand_in.translate(text, source_language, target_language)
        pair = f"{APERTIUM_CODES[source_language]}|{APERTIUM_CODES[target_language]}"
        # markUnknown=no: a word the pair's dictionary lacks is kept as it is, not starred (``*marker4``).
        answer = self._get("/translate", {"langpair": pair, "q": text, "markUnknown": "no"}, pair)
        data = answer.get("responseData") if isinstance(answer, dict) else None
        translated = data.get("translatedText") if isinstance(data, dict) else None
        if not isinstance(translated, str):
            raise TranslationError(f"{NAME} answered {pair} without a translatedText", code=MALFORMED_RESPONSE)
        return translated

    def _get(self, path: str, query: dict[str, str], what: str) -> Any:
        """The JSON the server answers ``GET path?query`` with; every failure as a TranslationError about ``what``."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(query)}" if query else f"{self.url}{path}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 - the configured server
                body = response.read()
        except urllib.error.HTTPError as error:
            raise self._refused(error, what) from error
        except TimeoutError as error:
            raise TranslationError(f"{NAME} did not answer {what} within {self.timeout:g} s", code=TIMED_OUT) from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, TimeoutError):
                raise TranslationError(
                    f"{NAME} did not answer {what} within {self.timeout:g} s", code=TIMED_OUT
                ) from error
            raise TranslationError(f"{NAME} at {self.url} did not answer {what}: {reason}", code=UNREACHABLE) from error
        try:
            return json.loads(body)
        except ValueError as error:
            raise TranslationError(f"{NAME} answered {what} with no JSON", code=MALFORMED_RESPONSE) from error

    def _refused(self, error: urllib.error.HTTPError, what: str) -> TranslationError:
        """An HTTP error answer as a TranslationError: a pair the server does not have is UNSUPPORTED_LANGUAGE (as
        in the other engine); any other by its status (``HTTP503``)."""
        try:
            explanation = str(json.loads(error.read()).get("explanation", ""))
        except (ValueError, AttributeError, OSError):
            explanation = ""
        if error.code == 400 and "not installed" in explanation:
            return TranslationError(f"{NAME} has no pair {what}", code=UNSUPPORTED_LANGUAGE)
        return TranslationError(
            f"{NAME} refused {what}: {error.code} {explanation or error.reason}", code=f"HTTP{error.code}"
        )
