"""The Apertium translator (the local run's): what it asks APY over HTTP, the marked stand-in for the pairs the
server lacks, each failure as a TranslationError with its code, and the one table of language codes. The server is
a stub on loopback answering as APY does (its answers were read from apertium-apy 0.11)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lambda_src.adapters import translation
from lambda_src.adapters.translation import apertium
from lambda_src.adapters.translation.apertium import APERTIUM_CODES, ApertiumTranslator, language_pairs
from lambda_src.adapters.translation.translator import UNSUPPORTED_LANGUAGE, TranslationError
from lambda_src.contract import languages
from local_run import apertium as apertium_server

LISTED = {
    "responseData": [
        {"sourceLanguage": "eng", "targetLanguage": "spa"},
        {"sourceLanguage": "eng", "targetLanguage": "cat_valencia"},  # a variant: not a pair of the service's
        {"sourceLanguage": "spa", "targetLanguage": "por_BR"},
        {"sourceLanguage": "fra", "targetLanguage": "spa"},
        {"sourceLanguage": "epo", "targetLanguage": "eng"},  # Esperanto: not a supported language
    ],
    "responseDetails": None,
    "responseStatus": 200,
}


class StubAPY:
    """Answers ``/listPairs`` and ``/translate`` as APY does; ``answers[path]`` overrides one with (status, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.answers: dict[str, tuple[int, bytes]] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parsed.query))
                stub.requests.append((parsed.path, query))
                status, body = stub.answers.get(parsed.path) or stub.answer(parsed.path, query)
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        if path == "/listPairs":
            return 200, json.dumps(LISTED).encode()
        if path == "/translate":
            text = f"<{query['langpair']}> {query['q']}"
            return 200, json.dumps({"responseData": {"translatedText": text}, "responseStatus": 200}).encode()
        return 404, b"{}"

    def asked(self, path: str) -> list[dict[str, str]]:
        return [query for asked, query in self.requests if asked == path]


@pytest.fixture
def apy() -> Iterator[StubAPY]:
    stub = StubAPY()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def test_a_pair_the_server_has_is_asked_of_it_by_apertium_codes_with_unknown_words_left_unmarked(apy: StubAPY) -> None:
    translator = ApertiumTranslator(apy.url)
    assert translator.translate("Welcome to the service & more.", "en", "es") == (
        "<eng|spa> Welcome to the service & more."
    )
    assert apy.asked("/translate") == [
        {"langpair": "eng|spa", "q": "Welcome to the service & more.", "markUnknown": "no"}
    ]
    assert translator.name == "Apertium"


def test_a_pair_the_server_lacks_gets_the_marked_stand_in_without_asking_it(apy: StubAPY) -> None:
    translator = ApertiumTranslator(apy.url)
    assert translator.translate("Welcome to the service.", "en", "de") == "[de] Welcome to the service."
    assert translator.translate("Bonjour.", "fr", "en") == "[en] Bonjour."  # fr→es exists, fr→en does not
    assert translator.translate("Hola.", "es", "pt") == "[pt] Hola."  # only the variant spa→por_BR exists
    assert apy.asked("/translate") == []


def test_the_pairs_are_asked_once_and_kept(apy: StubAPY) -> None:
    translator = ApertiumTranslator(apy.url)
    for language in ("es", "de", "es", "fr"):
        translator.translate("Good morning.", "en", language)
    assert len(apy.asked("/listPairs")) == 1
    assert translator.pairs() == {("en", "es"), ("fr", "es")}


def test_a_failed_listing_is_a_translation_error_and_is_asked_again_at_the_next_caption(apy: StubAPY) -> None:
    translator = ApertiumTranslator(apy.url)
    apy.answers["/listPairs"] = (200, b'{"responseData": "nothing"}')
    with pytest.raises(TranslationError) as failed:
        translator.translate("Good morning.", "en", "es")
    assert failed.value.code == apertium.MALFORMED_RESPONSE
    del apy.answers["/listPairs"]
    assert translator.translate("Good morning.", "en", "es") == "<eng|spa> Good morning."
    assert len(apy.asked("/listPairs")) == 2


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, b'{"status": "error", "code": 400, "explanation": "That pair is not installed"}', UNSUPPORTED_LANGUAGE),
        (503, b'{"status": "error", "code": 503, "explanation": "internal error"}', "HTTP503"),
        (500, b"<html>oops</html>", "HTTP500"),
        (200, b"not json", apertium.MALFORMED_RESPONSE),
        (200, b'{"responseData": {"translatedText": null}}', apertium.MALFORMED_RESPONSE),
        (200, b"[]", apertium.MALFORMED_RESPONSE),
    ],
    ids=["pair-not-installed", "pipeline-stuck", "server-error", "not-json", "no-text", "not-an-object"],
)
def test_each_failed_translation_is_a_translation_error_naming_the_pair_with_its_code(
    apy: StubAPY, status: int, body: bytes, code: str
) -> None:
    apy.answers["/translate"] = (status, body)
    with pytest.raises(TranslationError) as failed:
        ApertiumTranslator(apy.url).translate("Good morning.", "en", "es")
    assert failed.value.code == code
    assert "Apertium" in str(failed.value) and "eng|spa" in str(failed.value)


def test_a_server_that_is_not_there_is_an_unreachable_translation_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connecting is refused
        with pytest.raises(TranslationError) as failed:
            ApertiumTranslator(f"http://127.0.0.1:{port}").translate("Good morning.", "en", "es")
    assert failed.value.code == apertium.UNREACHABLE
    assert f"127.0.0.1:{port}" in str(failed.value)


def test_a_server_that_never_answers_is_a_timed_out_translation_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # the connection is accepted by the kernel; nothing ever answers it
        port = sock.getsockname()[1]
        with pytest.raises(TranslationError) as failed:
            ApertiumTranslator(f"http://127.0.0.1:{port}", timeout=0.2).translate("Good morning.", "en", "es")
    assert failed.value.code == apertium.TIMED_OUT


def test_every_supported_language_has_one_apertium_code_and_no_two_share_one() -> None:
    assert set(APERTIUM_CODES) == languages.SUPPORTED_LANGUAGES
    assert len(set(APERTIUM_CODES.values())) == len(APERTIUM_CODES)
    assert all(len(code) == 3 and code.isalpha() and code.islower() for code in APERTIUM_CODES.values())
    # The codes of the pairs the Makefile installs, as APY lists them
    assert {APERTIUM_CODES[language] for language in ("en", "es", "ca", "gl", "fr", "pt")} == {
        "eng",
        "spa",
        "cat",
        "glg",
        "fra",
        "por",
    }


def test_a_listing_that_is_not_a_list_of_pairs_is_refused() -> None:
    assert language_pairs(LISTED) == {("en", "es"), ("fr", "es")}
    assert language_pairs({"responseData": []}) == frozenset()
    malformed: list[Any] = [{}, [], {"responseData": None}, {"responseData": ["eng-spa"]}]
    for listed in malformed:
        with pytest.raises(ValueError):
            language_pairs(listed)


def test_the_environment_selects_apertium_with_its_url_and_refuses_it_without(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(translation.ENV_TRANSLATOR, translation.APERTIUM)
    monkeypatch.setenv(apertium.ENV_URL, "http://127.0.0.1:2737/")
    chosen = translation.from_environment()
    assert isinstance(chosen, ApertiumTranslator) and chosen.url == "http://127.0.0.1:2737"
    monkeypatch.delenv(apertium.ENV_URL)
    with pytest.raises(RuntimeError, match=apertium.ENV_URL):
        translation.from_environment()


def test_make_local_names_the_pairs_apertium_translates_and_the_stand_in_for_the_others() -> None:
    note = apertium_server.pairs_note(frozenset({("en", "es"), ("en", "ca")}))
    assert note.startswith("translation: Apertium")
    assert "en→ca, en→es;" in note and "every other pair" in note and "[de] Good morning" in note
    assert "none" in apertium_server.pairs_note(frozenset())


def test_the_server_is_run_by_the_python_its_command_names_and_refused_when_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = tmp_path / "apertium-apy"
    command.write_text("#!/usr/bin/python3\nimport re\n")
    assert apertium_server.interpreter(str(command)) == "/usr/bin/python3"
    command.write_text("echo no\n")
    with pytest.raises(RuntimeError, match="#!"):
        apertium_server.interpreter(str(command))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError, match="make local"):
        apertium_server.interpreter()
