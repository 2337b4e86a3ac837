"""The deployed translator: Amazon Translate's ``TranslateText``, through a botocore client from the process's
one session (:mod:`lambda_src.platform.aws`), created on first use and shared by the caption threads.

Captions are live: a translation that does not come back within a few seconds is useless, so the client waits
at most 1 s to connect and 3 s for an answer, and retries once (botocore's standard mode: throttling and server
errors, with its jittered backoff). Any failure becomes a :class:`TranslationError` naming the language pair
and the service's error code.
"""

from __future__ import annotations

from typing import Any, Final

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lambda_src.adapters.translation.translator import UNSUPPORTED_LANGUAGE, TranslationError
from lambda_src.contract import limits
from lambda_src.contract.languages import NOT_IN_AMAZON_TRANSLATE
from lambda_src.platform import aws

NAME: Final = "Amazon Translate"
SERVICE: Final = "translate"

_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 2},
    connect_timeout=1,
    read_timeout=3,
    max_pool_connections=limits.TRANSLATION_PARALLELISM,  # one pooled connection per translating thread
)


class AmazonTranslateTranslator:
    """``TranslateText`` for each caption. ``client``: a botocore ``translate`` client to use (tests stub one);
    by default one is created on the first translation."""

    name: Final = NAME

    def __init__(self, client: Any | None = None) -> None:
        self._client = aws.LazyClient(SERVICE, client, config=_CLIENT_CONFIG)

    def client(self) -> Any:
        return self._client.get()

    def translate(self, text: str, source_language: str, target_language: str) -> str:
        pair = f"{source_language} to {target_language}"
        unsupported = sorted({source_language, target_language} & NOT_IN_AMAZON_TRANSLATE)
        if unsupported:
            raise TranslationError(
                f"{NAME} cannot translate {pair}: it has no {', '.join(unsupported)}", code=UNSUPPORTED_LANGUAGE
            )
        try:
            response = self.client().translate_text(
                Text=text, SourceLanguageCode=source_language, TargetLanguageCode=target_language
            )
        except ClientError as error:
            details = error.response.get("Error", {})
            code = str(details.get("Code") or "Unknown")
            raise TranslationError(f"{NAME} refused {pair}: {code}: {details.get('Message', '')}", code=code) from error
        except BotoCoreError as error:  # no answer: connection refused or timed out, credentials, ...
            raise TranslationError(f"{NAME} did not answer for {pair}: {error}", code=type(error).__name__) from error
        translated = response.get("TranslatedText")
        if not isinstance(translated, str):
            raise TranslationError(f"{NAME} answered {pair} without a TranslatedText", code="MalformedResponse")
        return translated
