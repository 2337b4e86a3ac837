"""The scripted recognizer (the bench's and the tests' source of known results, not speech recognition): chosen only
when ``TRANSCRIPTION_RECOGNIZER=scripted`` names it, and each chunk completing a segment gives one FINAL naming its
marker, which the partial-result processor forwards at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from lambda_src.adapters.transcription import recognizers, scripted_recognizer, transcribe_recognizer
from lambda_src.adapters.transcription.scripted_recognizer import SEGMENT_CHUNKS, ScriptedRecognizer
from lambda_src.model.partial_result_processor import PartialResultProcessor
from lambda_src.model.partial_results import PartialResultConfig as Config
from lambda_src.model.session import Session


@dataclass(frozen=True)
class FakeSession:
    source_language: str = "en"
    config: Config = Config()


def session() -> Session:
    return cast(Session, FakeSession())


class OpenedTranscribe:
    def __init__(self, language: str, *args: Any, **kwargs: Any) -> None:
        self.language = language


def test_the_scripted_recognizer_is_opened_only_when_the_environment_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transcribe_recognizer, "TranscribeRecognizer", OpenedTranscribe)
    monkeypatch.setenv(recognizers.ENV_RECOGNIZER, recognizers.SCRIPTED)
    assert isinstance(recognizers.open_for(session()), ScriptedRecognizer)
    monkeypatch.delenv(recognizers.ENV_RECOGNIZER)
    assert isinstance(recognizers.open_for(session()), OpenedTranscribe)
    monkeypatch.setenv(recognizers.ENV_RECOGNIZER, "Scripted ")
    assert isinstance(recognizers.open_for(session()), OpenedTranscribe)


def test_each_chunk_completing_a_segment_gives_one_final_naming_its_marker_forwarded_at_once() -> None:
    recognizer = ScriptedRecognizer("fr")
    processor = PartialResultProcessor(Config())
    forwarded: dict[int, list[str]] = {}
    for marker in range(4 * SEGMENT_CHUNKS):
        now = 100.0 + marker * 0.1
        segments = [
            s for result in recognizer.feed(scripted_recognizer.chunk(marker)) for s in processor.feed(result, now)
        ]
        if segments:
            forwarded[marker] = [s.text for s in segments if not s.is_partial]
    completing = [m for m in range(4 * SEGMENT_CHUNKS) if (m + 1) % SEGMENT_CHUNKS == 0]
    assert sorted(forwarded) == completing
    for marker, texts in forwarded.items():
        assert texts == [scripted_recognizer.word(marker)]
        assert scripted_recognizer.marker_in(f"[es] {texts[0]}") == marker
    assert recognizer.close() == []


def test_a_completing_chunk_that_carries_a_sentence_gives_a_final_saying_it() -> None:
    recognizer = ScriptedRecognizer("en")
    processor = PartialResultProcessor(Config())
    sentence = "Welcome to the service."
    carrying = [scripted_recognizer.chunk(marker, text=sentence) for marker in range(SEGMENT_CHUNKS)]
    assert [scripted_recognizer.text_of(pcm) for pcm in carrying] == [sentence] * SEGMENT_CHUNKS
    assert scripted_recognizer.text_of(scripted_recognizer.chunk(3)) == ""
    segments = [s for pcm in carrying for result in recognizer.feed(pcm) for s in processor.feed(result, 100.0)]
    assert [(s.text, s.is_partial) for s in segments] == [(sentence, False)]
    with pytest.raises(ValueError):
        scripted_recognizer.chunk(1, size=20, text=sentence)


def test_chunks_without_a_marker_give_nothing() -> None:
    recognizer = ScriptedRecognizer("en")
    assert recognizer.feed(bytes(3200)) == []
    assert recognizer.feed(b"speech" * 100) == []
    assert scripted_recognizer.marker_of(bytes(3200)) is None
    assert scripted_recognizer.marker_of(scripted_recognizer.chunk(41)) == 41
    with pytest.raises(ValueError):
        scripted_recognizer.chunk(1, size=7)


def test_a_local_run_gives_its_functions_the_recognizer_asked_for_and_the_stand_ins_by_default() -> None:
    from lambda_src.adapters import speech, translation
    from local_run.run import STAND_INS, LocalRun

    default = LocalRun(port=1, http_port=2)
    assert default.function_env == STAND_INS
    assert default.function_env[recognizers.ENV_RECOGNIZER] == recognizers.LOCAL
    assert default.function_env[translation.ENV_TRANSLATOR] == translation.APERTIUM
    assert default.function_env[speech.ENV_SYNTHESIZER] == speech.ESPEAK
    assert default.translator is not None  # Apertium's server starts with the run
    stand_in_only = LocalRun(port=1, http_port=2, function_env={translation.ENV_TRANSLATOR: translation.STAND_IN})
    assert stand_in_only.translator is None
    assert "for every pair" in stand_in_only.stand_in_notes()[1]
    scripted = LocalRun(port=1, http_port=2, function_env={recognizers.ENV_RECOGNIZER: recognizers.SCRIPTED})
    assert scripted.function_env == {**STAND_INS, recognizers.ENV_RECOGNIZER: recognizers.SCRIPTED}
