"""The local run translates captions with Apertium for the language pairs it has installed, and marks them with the
stand-in for the others. The speaker's segments are scripted (the ``scripted_service`` fixture's recognizer says the
sentence each completing chunk carries), so the text translated is known word for word; everything after the
recognizer is the local run's: the audio path, the consumer, the captions, Apertium's server and the posts."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from websockets.sync.client import ClientConnection

from lambda_src.adapters.transcription import scripted_recognizer
from lambda_src.adapters.transcription.scripted_recognizer import SEGMENT_CHUNKS
from lambda_src.adapters.translation import stand_in
from tests.integration.conftest import RunningService, apertium_cli
from tests.integration.test_lifecycle import listener
from tests.integration.test_transcription import drain, speaker

pytestmark = pytest.mark.integration

SENTENCES = ["Welcome to the service.", "Good morning everyone."]
CAPTION_TIMEOUT_SECONDS = 30.0


def say(ws: ClientConnection, sentences: list[str]) -> None:
    """One segment per sentence: ``SEGMENT_CHUNKS`` scripted chunks each, the last of which says it."""
    for index, sentence in enumerate(sentences):
        for marker in range(index * SEGMENT_CHUNKS, (index + 1) * SEGMENT_CHUNKS):
            pcm = scripted_recognizer.chunk(marker, text=sentence)
            message = {"action": "sendAudio", "audioData": base64.b64encode(pcm).decode(), "sequenceNumber": marker}
            ws.send(json.dumps(message))
            time.sleep(0.1)  # the speaker app's pace


def final_captions(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The first ``count`` final captions the listener receives."""
    finals: list[dict[str, Any]] = []
    deadline = time.monotonic() + CAPTION_TIMEOUT_SECONDS
    while len(finals) < count and time.monotonic() < deadline:
        heard = drain(ws, until=min(deadline, time.monotonic() + 1.0))
        finals += [m for m in heard if m["type"] == "caption" and not m["isPartial"]]
    assert len(finals) >= count, f"{len(finals)} final captions of {count} within {CAPTION_TIMEOUT_SECONDS} s"
    return finals[:count]


def test_a_spanish_listener_gets_apertiums_translation_and_a_german_one_the_marked_stand_in(
    scripted_service: RunningService,
) -> None:
    # Given a session in English with a Spanish listener (Apertium has English-Spanish) and a German one (it has no
    # English-German pair)
    ws, session_id = speaker(scripted_service, "translated-speaker", partialResults="false")
    spanish, _ = listener(scripted_service, session_id, "es")
    german, _ = listener(scripted_service, session_id, "de")
    with ws, spanish, german:
        # When the speaker says two sentences
        say(ws, SENTENCES)
        heard = {"es": final_captions(spanish, len(SENTENCES)), "de": final_captions(german, len(SENTENCES))}

    # Then the Spanish captions are Spanish, as Apertium's own command line translates the sentences
    spanish_texts = [caption["text"] for caption in heard["es"]]
    assert spanish_texts == [apertium_cli(sentence, "eng-spa") for sentence in SENTENCES]
    assert "Bienvenido al servicio" in spanish_texts[0] and "Buenos días" in spanish_texts[1], spanish_texts
    # And the German captions carry the stand-in's mark on the English text
    assert [caption["text"] for caption in heard["de"]] == [stand_in.mark(sentence, "de") for sentence in SENTENCES]
    # And every caption names its session and its pair, and each segment is captioned once per language
    for language, captions in heard.items():
        assert {(c["sessionId"], c["sourceLanguage"], c["targetLanguage"]) for c in captions} == {
            (session_id, "en", language)
        }
    assert [c["segmentId"] for c in heard["es"]] == [c["segmentId"] for c in heard["de"]]
    assert len({c["segmentId"] for c in heard["es"]}) == len(SENTENCES)


def test_the_local_run_lists_the_pairs_apertium_translates(scripted_service: RunningService) -> None:
    # Given the running local service, Then its translator's note (what `make local` prints) names the English
    # pairs of the Makefile's packages as Apertium's, and every other pair as the stand-in
    run = scripted_service.run
    assert run.translator is not None
    assert {("en", "es"), ("en", "ca"), ("en", "gl"), ("fr", "es"), ("es", "pt")} <= run.translator.pairs
    assert ("en", "de") not in run.translator.pairs and ("en", "fr") not in run.translator.pairs
    (note,) = [line for line in run.stand_in_notes() if line.startswith("translation:")]
    assert note.startswith("translation: Apertium") and "en→es" in note and "every other pair" in note
