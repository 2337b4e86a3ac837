"""The translators: Amazon Translate's request and errors (botocore's Stubber, no network), the stand-in's marked
text, and which one the environment selects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.stub import Stubber

from lambda_src.adapters import translation
from lambda_src.adapters.translation import TranslationError
from lambda_src.adapters.translation.amazon_translate import AmazonTranslateTranslator
from lambda_src.adapters.translation.stand_in import StandInTranslator
from lambda_src.contract import languages
from lambda_src.platform import aws
from tests.support.helpers import REGION


@pytest.fixture
def stubbed() -> Iterator[tuple[AmazonTranslateTranslator, Stubber]]:
    client = aws.create_client("translate", region_name=REGION)
    with Stubber(client) as stubber:
        yield AmazonTranslateTranslator(client), stubber
        stubber.assert_no_pending_responses()


def test_amazon_translate_is_asked_for_the_text_and_the_language_pair(stubbed) -> None:
    translator, stubber = stubbed
    stubber.add_response(
        "translate_text",
        {"TranslatedText": "Hola a todos", "SourceLanguageCode": "en", "TargetLanguageCode": "es"},
        expected_params={"Text": "Hello everyone", "SourceLanguageCode": "en", "TargetLanguageCode": "es"},
    )
    assert translator.translate("Hello everyone", "en", "es") == "Hola a todos"


def test_a_service_error_becomes_a_translation_error_naming_the_pair_and_the_code(stubbed) -> None:
    translator, stubber = stubbed
    stubber.add_client_error(
        "translate_text",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=429,
    )
    with pytest.raises(TranslationError) as raised:
        translator.translate("Hello everyone", "en", "de")
    assert raised.value.code == "ThrottlingException"
    assert "en to de" in str(raised.value) and "Rate exceeded" in str(raised.value)


@pytest.mark.parametrize("language", sorted(languages.NOT_IN_AMAZON_TRANSLATE))
def test_a_language_amazon_translate_lacks_fails_without_asking_it(stubbed, language: str) -> None:
    translator, _stubber = stubbed  # (no response queued: a request would fail the stubber differently)
    for source, target in (("en", language), (language, "en")):
        with pytest.raises(TranslationError) as raised:
            translator.translate("Hello", source, target)
        assert raised.value.code == translation.UNSUPPORTED_LANGUAGE
        assert language in str(raised.value)


def test_every_language_amazon_translate_lacks_is_a_supported_one() -> None:
    assert languages.NOT_IN_AMAZON_TRANSLATE < languages.SUPPORTED_LANGUAGES


def test_the_stand_in_marks_the_text_with_the_target_language_and_says_what_it_is() -> None:
    translator = StandInTranslator()
    assert translator.translate("Hello everyone", "en", "es") == "[es] Hello everyone"
    assert translator.translate("Hello everyone", "en", "de") == "[de] Hello everyone"
    assert "stand-in" in translator.name


def test_the_environment_selects_the_stand_in_else_amazon_translate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(translation.ENV_TRANSLATOR, translation.STAND_IN)
    assert isinstance(translation.from_environment(), StandInTranslator)
    monkeypatch.delenv(translation.ENV_TRANSLATOR)
    assert isinstance(translation.from_environment(), AmazonTranslateTranslator)
    monkeypatch.setenv(translation.ENV_TRANSLATOR, "amazon")
    assert isinstance(translation.from_environment(), AmazonTranslateTranslator)
