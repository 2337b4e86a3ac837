"""The local run's recognizer (pocketsphinx) on speech spoken by espeak-ng, streamed as the speaker app does:
100 ms chunks of 16 kHz 16-bit mono PCM. Synthetic speech is recognized poorly, so these tests assert the
flow, the shapes and the settings, and the words only loosely."""

from __future__ import annotations

import pytest

from lambda_src.adapters.transcription.local_recognizer import PocketsphinxRecognizer
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.model.partial_result_processor import PartialResultProcessor, RecognitionResult, Segment
from lambda_src.model.partial_results import PartialResultConfig
from local_run.speech import speak_pcm

SPOKEN = "Good morning everyone. Welcome to the service. Today we talk about the shepherd and the temple."
CHUNK_BYTES = 3200  # 100 ms


@pytest.fixture(scope="module")
def pcm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speak_pcm(SPOKEN, tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="module")
def results(pcm: bytes) -> list[tuple[float, RecognitionResult]]:
    """Every result of one pass, with the audio time (seconds) at which it came out."""
    recognizer = PocketsphinxRecognizer("en")
    out = [
        (offset / 32000, r)
        for offset in range(0, len(pcm), CHUNK_BYTES)
        for r in recognizer.feed(pcm[offset : offset + CHUNK_BYTES])
    ]
    return out + [(len(pcm) / 32000, r) for r in recognizer.close()]


def test_a_source_language_without_an_offline_model_is_refused() -> None:
    with pytest.raises(ServiceError) as refused:
        PocketsphinxRecognizer("es")
    assert refused.value.code is ErrorCode.INVALID_PARAMETERS and refused.value.field == "sourceLanguage"
    assert "'es'" in refused.value.message


def test_each_utterance_is_partial_results_then_one_final(results: list[tuple[float, RecognitionResult]]) -> None:
    by_id: dict[str, list[RecognitionResult]] = {}
    for _t, r in results:
        by_id.setdefault(r.result_id, []).append(r)
    assert len(by_id) >= 2, "the pauses between sentences end utterances"
    assert list(by_id) == [f"u{n}" for n in range(1, len(by_id) + 1)]
    for result_id, stream in by_id.items():
        assert [r.is_partial for r in stream][-1] is False, result_id
        assert all(r.is_partial for r in stream[:-1]) and len(stream) > 1, result_id


def test_times_follow_the_audio_and_finals_carry_no_stability(
    results: list[tuple[float, RecognitionResult]], pcm: bytes
) -> None:
    duration = len(pcm) / 32000
    finals = [r for _t, r in results if not r.is_partial]
    starts = [r.start_time for r in finals]
    assert starts == sorted(starts)
    for r in finals:
        assert all(0 <= i.start_time < i.end_time <= duration + 0.05 for i in r.items)
        assert all(i.stability is None for i in r.items)


def test_stability_grows_while_a_word_survives(results: list[tuple[float, RecognitionResult]]) -> None:
    partials = [r for _t, r in results if r.is_partial]
    assert all(0.5 <= i.stability <= 1.0 for r in partials for i in r.items if i.stability is not None)
    grew = any(
        a.result_id == b.result_id
        and a.items[0].content == b.items[0].content
        and (b.items[0].stability or 0) > (a.items[0].stability or 0)
        for a, b in zip(partials, partials[1:], strict=False)
    )
    assert grew


def test_some_spoken_words_are_recognized(results: list[tuple[float, RecognitionResult]]) -> None:
    spoken = {w.strip(".").lower() for w in SPOKEN.split()}
    heard = {i.content.lower() for _t, r in results if not r.is_partial for i in r.items}
    assert spoken & heard


@pytest.mark.parametrize("enabled", [True, False])
def test_the_processor_turns_the_recognizer_into_partials_then_finals_as_the_session_asks(
    results: list[tuple[float, RecognitionResult]], enabled: bool
) -> None:
    processor = PartialResultProcessor(PartialResultConfig(partial_results_enabled=enabled))
    out: list[Segment] = []
    for now, r in results:
        out += processor.feed(r, now)
    out += processor.close(results[-1][0] + 1)
    finals = [s for s in out if not s.is_partial]
    assert finals and all(s.text for s in finals)
    assert any(s.is_partial for s in out) is enabled
    if enabled:  # each shown segment's partials come before its final
        for final in finals:
            mine = [s for s in out if s.segment_id == final.segment_id]
            assert mine[-1] == final
