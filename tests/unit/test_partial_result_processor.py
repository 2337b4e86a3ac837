"""The partial-result processor, fed scripted Transcribe-shaped result streams (a test source, nothing else).

Times: ``now`` is the wall clock the caller passes (seconds); item times are seconds of audio.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_src.model.partial_result_processor import (
    DEDUP_WINDOW_SECONDS,
    FORGET_AFTER_SECONDS,
    NO_STABILITY_TIMEOUT_SECONDS,
    ORPHAN_FLUSH_SECONDS,
    PARTIAL_WINDOW_SECONDS,
    Item,
    PartialResultProcessor,
    RecognitionResult,
    Segment,
)
from lambda_src.model.partial_results import PartialResultConfig as Config


def words(*spec: Any, start: float = 0.0) -> tuple[Item, ...]:
    """Items from ``"word"`` / ``("word", stability)`` / ``"."``; each word 0.3 s, back to back."""
    items = []
    t = start
    for entry in spec:
        content, stability = (entry, None) if isinstance(entry, str) else entry
        if content in {".", "?", "!", ","}:
            items.append(Item(content, t, t, punctuation=True, stability=stability))
        else:
            items.append(Item(content, t, t + 0.3, stability=stability))
            t += 0.3
    return tuple(items)


def result(result_id: str, items: tuple[Item, ...], partial: bool = True) -> RecognitionResult:
    start = items[0].start_time if items else 0.0
    end = max((i.end_time for i in items), default=0.0)
    return RecognitionResult(result_id, start, end, partial, items)


def stable(*names: str, s: float = 0.95) -> tuple[Any, ...]:
    return tuple((name, s) for name in names)


def test_a_partial_that_reaches_the_threshold_goes_on_at_once_and_its_final_replaces_it() -> None:
    processor = PartialResultProcessor(Config())
    out = processor.feed(result("r1", words(*stable("hello", "world"))), now=0.0)
    assert out == [Segment("r1-0", "hello world", True, 0.95, 0.0, end_time=0.6)]
    final = processor.feed(result("r1", words("hello", "world", "."), partial=False), now=0.5)
    assert final == [Segment("r1-0", "hello world.", False, None, 0.0, end_time=0.6)]


def test_a_less_stable_partial_waits_the_buffer_timeout_and_not_a_moment_less() -> None:
    processor = PartialResultProcessor(Config(max_buffer_timeout=Decimal("2.0")))
    assert processor.feed(result("r1", words(("hello", 0.5), ("there", 0.9))), now=10.0) == []
    assert processor.tick(11.99) == []
    assert processor.tick(12.0) == [Segment("r1-0", "hello there", True, 0.5, 0.0, end_time=0.6)]


def test_the_threshold_is_the_sessions_own() -> None:
    strict = PartialResultProcessor(Config(min_stability_threshold=Decimal("0.95")))
    lenient = PartialResultProcessor(Config(min_stability_threshold=Decimal("0.70")))
    partial = result("r1", words(("maybe", 0.8)))
    assert strict.feed(partial, now=0.0) == []
    assert [s.text for s in lenient.feed(partial, now=0.0)] == ["maybe"]


def test_with_partial_results_disabled_only_finals_go_on() -> None:
    processor = PartialResultProcessor(Config(partial_results_enabled=False))
    assert processor.feed(result("r1", words(*stable("one", "two"))), now=0.0) == []
    assert processor.tick(ORPHAN_FLUSH_SECONDS - 1) == []
    out = processor.feed(result("r1", words("one", "two"), partial=False), now=1.0)
    assert out == [Segment("r1-0", "one two", False, None, 0.0, end_time=0.6)]
    assert processor.counters.partials_forwarded == 0


def test_without_stability_a_partial_goes_on_by_its_flag_after_the_fixed_timeout() -> None:
    processor = PartialResultProcessor(Config(max_buffer_timeout=Decimal("10.0")))
    assert processor.feed(result("r1", words("no", "scores")), now=0.0) == []
    assert processor.tick(NO_STABILITY_TIMEOUT_SECONDS - 0.01) == []
    assert [s.text for s in processor.tick(NO_STABILITY_TIMEOUT_SECONDS)] == ["no scores"]


def test_at_most_five_partials_a_second_the_latest_kept_and_finals_never_held_back() -> None:
    processor = PartialResultProcessor(Config())
    spoken = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    forwarded: list[tuple[float, Segment]] = []
    for step in range(len(spoken)):  # a growing partial every 50 ms
        now = step * 0.05
        forwarded += [(now, s) for s in processor.feed(result("r1", words(*stable(*spoken[: step + 1]))), now)]
    forwarded += [(0.6, s) for s in processor.tick(0.6)]
    times = [t for t, _s in forwarded]
    assert all(b - a >= PARTIAL_WINDOW_SECONDS - 1e-9 for a, b in zip(times, times[1:], strict=False))
    assert forwarded[-1][1].text == "a b c d e f g h i j"  # the most recent survived
    assert processor.counters.partials_dropped > 0
    final = processor.feed(result("r1", words(*spoken), partial=False), now=0.61)  # 10 ms after a partial
    assert [s.is_partial for s in final] == [False]


def test_the_waiting_partial_with_the_highest_stability_goes_first() -> None:
    processor = PartialResultProcessor(Config(min_stability_threshold=Decimal("0.70")))
    processor.feed(result("r1", words(*stable("first", s=0.9))), now=0.0)  # takes this window
    processor.feed(result("r2", words(*stable("shaky", s=0.75), start=5.0)), now=0.05)
    processor.feed(result("r3", words(*stable("solid", s=0.99), start=9.0)), now=0.06)
    assert [s.text for s in processor.tick(0.2)] == ["solid"]
    assert [s.text for s in processor.tick(0.4)] == ["shaky"]


def test_sentences_split_at_punctuation_and_at_a_pause_of_two_seconds() -> None:
    processor = PartialResultProcessor(Config())
    items = words(*stable("good", "morning"), (".", 0.95), *stable("welcome")) + words(*stable("everyone"), start=10.0)
    out = processor.feed(result("r1", items, partial=False), now=0.0)
    assert [(s.segment_id, s.text) for s in out] == [
        ("r1-0", "good morning."),
        ("r1-1", "welcome"),
        ("r1-2", "everyone"),
    ]


def test_a_final_withdraws_a_sentence_the_recognizer_took_back() -> None:
    processor = PartialResultProcessor(Config())
    processor.feed(result("r1", words(*stable("ice", "cream"), (".", 0.95), *stable("scream"))), now=0.0)
    processor.tick(1.0)
    out = processor.feed(result("r1", words("I", "scream"), partial=False), now=2.0)
    assert [(s.segment_id, s.text, s.is_partial) for s in out] == [("r1-0", "I scream", False), ("r1-1", "", False)]


def test_a_final_far_from_its_partial_is_reported() -> None:
    reports: list[tuple[str, str, str, float]] = []
    processor = PartialResultProcessor(Config(), on_discrepancy=lambda *report: reports.append(report))
    processor.feed(result("r1", words(*stable("wreck", "a", "nice", "beach"))), now=0.0)
    processor.feed(result("r1", words("recognize", "speech"), partial=False), now=1.0)
    assert reports and reports[0][:3] == ("r1-0", "wreck a nice beach", "recognize speech")
    assert reports[0][3] > 0.2
    assert processor.counters.discrepancies == 1
    processor.feed(result("r2", words(*stable("close", "enough"), start=5.0)), now=2.0)
    processor.feed(result("r2", words("close", "enough", ".", start=5.0), partial=False), now=3.0)
    assert processor.counters.discrepancies == 1  # punctuation and case do not count


def test_the_same_final_twice_within_the_window_goes_on_once() -> None:
    processor = PartialResultProcessor(Config(partial_results_enabled=False))
    assert len(processor.feed(result("r1", words("thank", "you", "."), partial=False), now=0.0)) == 1
    assert processor.feed(result("r2", words("Thank", "you", start=1.0), partial=False), now=1.0) == []
    assert processor.counters.duplicates_skipped == 1
    later = processor.feed(result("r3", words("thank", "you", start=9.0), partial=False), now=DEDUP_WINDOW_SECONDS + 1)
    assert [s.text for s in later] == ["thank you"]


def test_a_partial_that_changes_nothing_is_not_sent_again() -> None:
    processor = PartialResultProcessor(Config())
    assert len(processor.feed(result("r1", words(*stable("same", "words"))), now=0.0)) == 1
    assert processor.feed(result("r1", words(*stable("same", "words", s=0.99))), now=1.0) == []
    assert processor.feed(result("r1", words(*stable("Same", "words"), (",", 0.99))), now=2.0) == []


def test_an_orphaned_partial_is_flushed_as_final_after_fifteen_seconds() -> None:
    processor = PartialResultProcessor(Config())
    processor.feed(result("r1", words(*stable("left", "hanging"))), now=0.0)
    assert processor.tick(ORPHAN_FLUSH_SECONDS - 0.1) == []
    assert processor.tick(ORPHAN_FLUSH_SECONDS) == [Segment("r1-0", "left hanging", False, None, 0.0, end_time=0.6)]
    assert processor.counters.orphans_flushed == 1
    # Its final, coming after all, does not reopen it: only the word it adds goes on, as a segment of its own
    late = processor.feed(result("r1", words("left", "hanging", "now"), partial=False), now=16.0)
    assert [(s.segment_id, s.text, s.is_partial) for s in late] == [("r1-0+", "now", False)]


def test_results_arriving_out_of_order_never_move_a_segment_backwards() -> None:
    processor = PartialResultProcessor(Config())
    newer = result("r1", words(*stable("one", "two", "three")))
    older = result("r1", words(*stable("one", "two")))
    assert [s.text for s in processor.feed(newer, now=0.0)] == ["one two three"]
    assert processor.feed(older, now=0.5) == []
    processor.feed(result("r1", words("one", "two", "three"), partial=False), now=1.0)
    assert processor.feed(result("r1", words(*stable("one", "two", "three", "four"))), now=1.5) == []
    assert processor.counters.stale_ignored == 2


def test_outputs_of_one_call_follow_the_audio_not_the_arrival() -> None:
    processor = PartialResultProcessor(Config(partial_results_enabled=False))
    processor.feed(result("late", words("second", start=5.0)), now=0.0)
    processor.feed(result("early", words("first", start=1.0)), now=0.0)
    assert [s.text for s in processor.close(now=1.0)] == ["first", "second"]


def test_empty_partials_are_ignored() -> None:
    processor = PartialResultProcessor(Config())
    assert processor.feed(result("r1", ()), now=0.0) == []
    assert processor.feed(result("r1", words((",", 0.99))), now=0.1) == []
    assert processor.close(now=1.0) == []


def test_a_settings_change_applies_from_the_next_segment() -> None:
    processor = PartialResultProcessor(Config())
    processor.feed(result("r1", words(("open", 0.8))), now=0.0)
    processor.update_config(Config(min_stability_threshold=Decimal("0.70")))
    assert processor.feed(result("r1", words(("open", 0.8), ("still", 0.8))), now=0.5) == []  # r1 keeps 0.85
    assert [s.text for s in processor.feed(result("r2", words(("next", 0.8), start=4.0)), now=0.6)] == ["next"]


def test_the_stable_leading_words_go_on_before_the_rest_which_waits_the_timeout() -> None:
    processor = PartialResultProcessor(Config(max_buffer_timeout=Decimal("2.0")))
    out = processor.feed(result("r1", words(("sure", 0.99), ("unsure", 0.6), ("sure", 0.99))), now=0.0)
    assert [(s.text, s.stability) for s in out] == [("sure", 0.99)]
    assert processor.tick(1.9) == []
    assert [(s.text, s.stability) for s in processor.tick(2.0)] == [("sure unsure sure", 0.6)]


def test_words_without_a_score_do_not_lower_the_stability_of_the_rest() -> None:
    processor = PartialResultProcessor(Config())
    mixed = processor.feed(result("r2", words(("sure", 0.99), "unscored", start=3.0)), now=0.0)
    assert [(s.text, s.stability) for s in mixed] == [("sure unscored", 0.99)]


# -- properties ----------------------------------------------------------------------------------------

_VOCABULARY = ["alpha", "beta", "gamma", "delta", "echo", "fox", "golf", "hotel"]


@st.composite
def streams(draw: st.DrawFn) -> tuple[Config, list[tuple[float, RecognitionResult | None]]]:
    """A session's settings and a timeline of (now, result or None for a tick)."""
    config = Config(
        partial_results_enabled=draw(st.booleans()),
        min_stability_threshold=Decimal(draw(st.sampled_from(["0.70", "0.85", "0.95"]))),
        max_buffer_timeout=Decimal(draw(st.sampled_from(["2.0", "5.0", "10.0"]))),
    )
    timeline: list[tuple[float, RecognitionResult | None]] = []
    now = 0.0
    audio = 0.0
    for n in range(draw(st.integers(1, 4))):
        spoken = draw(st.lists(st.sampled_from(_VOCABULARY + ["."]), min_size=1, max_size=8))
        scores = st.one_of(st.none(), st.floats(0.0, 1.0))
        for length in range(1, len(spoken) + 1):
            if draw(st.booleans()):
                items = words(*[(w, draw(scores)) for w in spoken[:length]], start=audio)
                timeline.append((now, result(f"r{n}", items)))
            now += draw(st.sampled_from([0.01, 0.05, 0.2, 1.0, 3.0]))
            timeline.append((now, None))
        if draw(st.integers(0, 4)):  # most results end with a final
            timeline.append((now, result(f"r{n}", words(*spoken, start=audio), partial=False)))
        audio += 0.3 * len(spoken) + draw(st.sampled_from([0.1, 2.5]))
        now += draw(st.sampled_from([0.05, 1.0, 16.0]))
    return config, timeline


@settings(max_examples=300, deadline=None)
@given(streams())
def test_properties_of_any_stream(stream: tuple[Config, list[tuple[float, RecognitionResult | None]]]) -> None:
    config, timeline = stream
    processor = PartialResultProcessor(config)
    out: list[tuple[float, Segment]] = []
    first_fed: dict[str, float] = {}
    for now, fed in timeline:
        if fed is not None:
            for index in range(len(fed.items) + 1):
                first_fed.setdefault(f"{fed.result_id}-{index}", now)
        out += [(now, s) for s in (processor.feed(fed, now) if fed else processor.tick(now))]
    end = timeline[-1][0] + 1.0
    out += [(end, s) for s in processor.close(end)]

    by_segment: dict[str, list[tuple[float, Segment]]] = {}
    for now, segment in out:
        by_segment.setdefault(segment.segment_id, []).append((now, segment))
    partial_times = [now for now, s in out if s.is_partial]
    # Finals only when partial results are off; otherwise at most 5 partials a second.
    assert config.partial_results_enabled or not partial_times
    assert all(b - a >= PARTIAL_WINDOW_SECONDS - 1e-9 for a, b in zip(partial_times, partial_times[1:], strict=False))
    for segment_id, sent in by_segment.items():
        kinds = [s.is_partial for _t, s in sent]
        # Every segment shown ends with exactly one final, and nothing follows it.
        assert kinds.count(False) == 1 and kinds[-1] is False, (segment_id, sent)
        # No text twice in a row for a segment.
        texts = [(s.text, s.is_partial) for _t, s in sent]
        assert all(a != b for a, b in zip(texts, texts[1:], strict=False)), (segment_id, texts)
        # Nothing below the threshold before its timeout: such a partial's segment had been waiting at least
        # the buffer timeout (3 s without stability) since its first text.
        for now, s in sent:
            if s.is_partial and (s.stability is None or s.stability < float(config.min_stability_threshold)):
                wait = NO_STABILITY_TIMEOUT_SECONDS if s.stability is None else float(config.max_buffer_timeout)
                assert now - first_fed[segment_id] >= wait - 1e-9, (segment_id, sent)
    # Every final result's words went on (as its own segments' finals, or as a recent duplicate's).
    finals_text = " ".join(s.text for _t, s in out if not s.is_partial).lower()
    for _now, fed in timeline:
        if fed is not None and not fed.is_partial:
            for item in fed.items:
                if not item.punctuation:
                    assert item.content in finals_text


def test_memory_stays_bounded_however_long_the_session_runs() -> None:
    processor = PartialResultProcessor(Config())
    for n in range(2000):  # an utterance every 2 s for over an hour
        now = n * 2.0
        processor.feed(result(f"r{n}", words(*stable("word", str(n)), start=now)), now)
        processor.feed(result(f"r{n}", words("word", str(n), start=now), partial=False), now + 1.0)
        processor.tick(now + 1.5)
    held = len(processor._results) + len(processor._segments)  # noqa: SLF001 - the state under test
    assert held <= 2 * (FORGET_AFTER_SECONDS / 2.0 + 2), held
    assert processor.counters.finals_forwarded == 2000


def test_a_final_that_comes_after_its_segment_was_flushed_adds_only_the_words_the_flush_did_not_say() -> None:
    # Given finals only, and a result whose partial said two words, then nothing for ORPHAN_FLUSH_SECONDS
    processor = PartialResultProcessor(Config(partial_results_enabled=False))
    processor.feed(result("r1", words("alpha", "alpha")), now=0.0)
    flushed = processor.tick(ORPHAN_FLUSH_SECONDS)
    # When the recognizer's final comes after all, with more words
    late = processor.feed(result("r1", words("alpha", "alpha", "alpha", "beta"), partial=False), now=15.5)
    # Then the flush said the first two, and the final goes on with only the two it adds, as a segment of its own
    assert [(s.segment_id, s.text, s.is_partial) for s in flushed] == [("r1-0", "alpha alpha", False)]
    assert [(s.segment_id, s.text, s.is_partial) for s in late] == [("r1-0+", "alpha beta", False)]
    assert late[0].start_time == 0.6  # where its first word starts in the audio
    # And a repeat of that final adds nothing
    assert processor.feed(result("r1", words("alpha", "alpha", "alpha", "beta"), partial=False), now=16.0) == []


def test_a_late_final_that_revises_words_already_flushed_or_adds_none_goes_nowhere() -> None:
    processor = PartialResultProcessor(Config(partial_results_enabled=False))
    processor.feed(result("r1", words("good", "morning")), now=0.0)
    processor.feed(result("r2", words("see", "you", start=5.0)), now=5.0)
    processor.tick(ORPHAN_FLUSH_SECONDS + 5.0)
    assert processor.feed(result("r1", words("good", "mourning", "all"), partial=False), now=21.0) == []
    assert processor.feed(result("r2", words("see", "you", ".", start=5.0), partial=False), now=21.0) == []


def test_a_final_said_when_its_flushed_result_was_already_forgotten_does_not_go_on_again() -> None:
    # Given a result flushed as an orphan, then forgotten (idle FORGET_AFTER_SECONDS with every segment final)
    processor = PartialResultProcessor(Config(partial_results_enabled=False))
    processor.feed(result("r1", words("hello", "there")), now=0.0)
    flushed = processor.tick(ORPHAN_FLUSH_SECONDS)
    processor.tick(ORPHAN_FLUSH_SECONDS + FORGET_AFTER_SECONDS + 1.0)
    # When the recognizer says its final at the end of the stream (as a stream closed after a long silence does)
    later = processor.feed(result("r1", words("hello", "there"), partial=False), now=ORPHAN_FLUSH_SECONDS + 60.0)
    # Then it does not go on a second time under the same segment id
    assert [s.text for s in flushed] == ["hello there"]
    assert later == []
