"""The pure parts of ``make bench``'s spoken-translation rows (``bench.speech_path``): the sentences the scripted
speaker says, first receipts, the service's own part, sequence numbers, stores counted from the audio store's keys;
and the consumer's syntheses as ``bench.synthesis_log`` records them (each segment's span and calls)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import live_path, speech_path, synthesis_log
from bench.live_path import Phase, Received
from bench.synthesis_log import Synthesis
from lambda_src.adapters.transcription import scripted_recognizer
from lambda_src.adapters.transcription.scripted_recognizer import ScriptedRecognizer
from lambda_src.app.speech import audio_key
from lambda_src.contract import wire
from lambda_src.model.partial_result_processor import PartialResultProcessor
from lambda_src.model.partial_results import PartialResultConfig


def completing_markers(count: int, every: int = speech_path.SPEECH_SEGMENT_CHUNKS) -> Iterator[int]:
    return (marker for marker in range(count * every) if (marker + 1) % every == 0)


def test_each_sentence_is_one_final_segment_that_names_its_marker() -> None:
    recognizer, processor = ScriptedRecognizer("en"), PartialResultProcessor(PartialResultConfig())
    for marker in completing_markers(len(speech_path.SENTENCES)):
        text = speech_path.sentence(marker)
        pcm = scripted_recognizer.chunk(marker, text=text)  # fits in a 100 ms chunk
        segments = [s for result in recognizer.feed(pcm) for s in processor.feed(result, 100.0)]
        assert [(s.text, s.is_partial) for s in segments] == [(text, False)]  # one segment: not split
        assert scripted_recognizer.marker_in(f"[es] {segments[0].text}") == marker
        assert text.endswith(scripted_recognizer.word(marker))  # what the phase's settle check looks for
        assert 10 <= len(text.split()) <= 16
    for every in (speech_path.SPEECH_SEGMENT_CHUNKS, speech_path.COUNT_SEGMENT_CHUNKS):  # every sentence is said
        markers = completing_markers(len(speech_path.SENTENCES), every)
        assert {speech_path.sentence(m).rsplit(" ", 1)[0] for m in markers} == set(speech_path.SENTENCES)


def test_the_first_receipt_of_each_segment_and_only_of_received_ones() -> None:
    sent = {9: 10.0, 19: 11.0, 29: 12.0}
    arrivals = [{9: [10.050, 10.5], 19: [11.300]}, {9: [10.020], 19: [11.100]}, {}]
    assert speech_path.receipt_ms(sent, arrivals) == pytest.approx({9: 20.0, 19: 100.0})
    assert speech_path.receipt_ms(sent, arrivals, last=True) == pytest.approx({9: 50.0, 19: 300.0})


def test_the_services_own_part_is_each_receipt_minus_that_segments_synthesis() -> None:
    receipts = {9: 200.0, 19: 180.0, 29: 400.0}
    synthesis = {9: 120.0, 19: 100.0}  # 29 not timed: left out
    assert speech_path.own_part_ms(receipts, synthesis) == [80.0, 80.0]
    captions = {9: 30.0}  # 19's caption not received: left out
    assert speech_path.own_part_ms(receipts, synthesis, before=captions) == [50.0]


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [([], True), ([4], True), ([1, 2, 3], True), ([1, 3], False), ([1, 2, 2, 3], False), ([2, 1], False)],
)
def test_sequence_numbers_must_run_one_after_the_other(numbers: list[int], expected: bool) -> None:
    assert speech_path.consecutive(numbers) is expected


def test_synthesis_calls_are_counted_per_segment_and_language_from_the_stores_keys() -> None:
    keys = [
        audio_key("s-1", "es", "scripted-9-0"),
        audio_key("s-1", "fr", "scripted-9-0"),
        audio_key("s-1", "es", "scripted-19-0"),
        audio_key("s-1", "fr", "scripted-19-0"),
        audio_key("s-1", "fr", "scripted-19-0"),  # a second version: stored twice
        audio_key("s-2", "es", "scripted-9-0"),  # another session
        "audio/s-1/es/notes.txt",  # not an audio key
    ]
    counts = speech_path.stored(keys, "s-1")
    assert counts == Counter(
        {("scripted-9-0", "es"): 1, ("scripted-9-0", "fr"): 1, ("scripted-19-0", "es"): 1, ("scripted-19-0", "fr"): 2}
    )
    assert speech_path.per_segment(counts) == 2.5
    assert speech_path.per_segment(Counter()) == 0.0


def audio_frame(marker: int, language: str, number: int) -> str:
    text = f"[{language}] {speech_path.sentence(marker)}"
    return json.dumps(
        {"type": live_path.AUDIO, "targetLanguage": language, "url": "http://s3/x", "duration": 1.5,
         "sequenceNumber": number, "transcript": text, "segmentId": f"scripted-{marker}-0"}
    )  # fmt: skip


def test_received_audio_is_read_by_marker_and_a_listeners_expected_messages_follow_its_output() -> None:
    received = Received()
    received.frames = [
        (1.0, json.dumps({"type": "caption", "text": f"[es] {speech_path.sentence(9)}"})),
        (1.2, audio_frame(9, "es", 1)),
        (2.2, audio_frame(19, "es", 2)),
    ]
    assert received.by_marker(live_path.AUDIO) == {9: [1.2], 19: [2.2]}
    assert received.by_marker(live_path.CAPTION) == {9: [1.0]}
    assert received.has(live_path.AUDIO, 19) and not received.has(live_path.CAPTION, 19)
    assert not received.has(live_path.AUDIO, 1)  # marker1 is not marker19's prefix match
    heard = speech_path.heard(received)
    assert [(h.marker, h.language, h.sequence_number, h.segment_id) for h in heard] == [
        (9, "es", 1, "scripted-9-0"),
        (19, "es", 2, "scripted-19-0"),
    ]
    assert live_path.expected_kinds(wire.OUTPUT_CAPTIONS) == (live_path.CAPTION,)
    assert live_path.expected_kinds(wire.OUTPUT_AUDIO) == (live_path.AUDIO,)
    assert live_path.expected_kinds(wire.OUTPUT_BOTH) == (live_path.CAPTION, live_path.AUDIO)


def test_listeners_wanting_audio_by_language_leave_captions_only_ones_out() -> None:
    outputs = [wire.OUTPUT_BOTH, wire.OUTPUT_AUDIO, wire.OUTPUT_CAPTIONS, wire.OUTPUT_BOTH]
    result = Phase("s-1", 4, {}, Received(), [Received() for _ in outputs], 0, 0, outputs, ["es", "fr", "es", "es"])
    assert speech_path.wanting_audio(result) == {"es": 2, "fr": 1}


def test_each_synthesis_is_recorded_once_it_returned_or_raised_with_its_text_and_times(tmp_path: Path) -> None:
    log = tmp_path / "syntheses.jsonl"

    class Synthesizer:
        def synthesize(self, text: str, language: str) -> str:
            if language == "xx":
                raise RuntimeError("no voice")
            return f"audio of {text}"

    synthesize = synthesis_log.timed(Synthesizer.synthesize, log)
    assert synthesis_log.lines(log) == 0 and synthesis_log.read(log) == []
    assert synthesize(Synthesizer(), "[es] hola marker9", "es") == "audio of [es] hola marker9"
    with pytest.raises(RuntimeError):
        synthesize(Synthesizer(), "[xx] marker9", "xx")
    records = synthesis_log.read(log)
    assert [(r.text, r.language, r.ok) for r in records] == [
        ("[es] hola marker9", "es", True),
        ("[xx] marker9", "xx", False),
    ]
    assert all(r.end >= r.start for r in records)
    assert synthesis_log.lines(log) == 2 and synthesis_log.read(log, since=1) == records[1:]


def test_a_segments_synthesis_spans_its_languages_and_its_calls_are_counted_by_the_text() -> None:
    records = [
        Synthesis("[es] a marker9", "es", 10.000, 10.080, True),
        Synthesis("[fr] a marker9", "fr", 10.002, 10.100, True),  # in parallel: the span is 100 ms, not 178
        Synthesis("[es] b marker19", "es", 11.000, 11.050, True),
        Synthesis("[fr] b marker19", "fr", 11.000, 11.500, False),  # failed: not part of the synthesis timed
        Synthesis("[es] c marker29", "es", 12.000, 12.060, True),  # not a counted segment
    ]
    assert speech_path.synthesis_spans(records, [9, 19]) == pytest.approx({9: 100.0, 19: 50.0})
    assert speech_path.calls_per_segment(records) == Counter({9: 2, 19: 2, 29: 1})
