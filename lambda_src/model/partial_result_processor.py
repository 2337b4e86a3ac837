"""Partial-result processing: which of a recognizer's results go on to translation, and when.

A streaming recognizer (Amazon Transcribe, or the local run's stand-in) revises its hypothesis many times a
second. The session's own settings decide what of that goes on:

- with ``partialResultsEnabled``, a partial goes on as soon as its stability (the least stable of its words)
  reaches ``minStabilityThreshold``, and its leading words that each reach it go on before the rest; what is
  less stable is held at most ``maxBufferTimeout`` seconds, then goes on anyway; a recognizer that reports
  no stability is trusted by its partial flag alone, held :data:`NO_STABILITY_TIMEOUT_SECONDS`;
- without it, finals only;
- a final replaces the partials of its segment (same ``segment_id``); a segment whose final never comes is
  flushed as final after :data:`ORPHAN_FLUSH_SECONDS`; when its final does come after all, the words it adds to
  what the flush said go on as a segment of their own (``<segment id>+``), so no word is lost and none goes on
  twice; a result whose segments were all flushed is remembered (the last :data:`UNFINISHED_RESULTS_KEPT`), so
  its final, however late, never goes on a second time;
- segments are sentences: a result splits at sentence punctuation and at pauses of
  :data:`PAUSE_BOUNDARY_SECONDS` or more; a final (or the flush) closes a segment;
- the same text never goes on twice: a partial that does not change its segment's text is skipped, and a
  final repeating, word for word (normalized), another one forwarded in the last :data:`DEDUP_WINDOW_SECONDS`
  is skipped unless its own segment already showed a partial (which the final must settle);
- at most one partial per :data:`PARTIAL_WINDOW_SECONDS` (5 a second) per session: the rest wait for the next
  window, the most stable (then the most recent) first, and one superseded while waiting is dropped (counted);
  finals are never held back;
- a partial older than one already processed for the same result id (results arriving out of order) is
  ignored, as is anything after its result's final, and outputs of one call are ordered by their time in the audio;
- a settings change applies from the next segment on.

The processor is pure: no clock, no I/O, no AWS. The caller feeds results and the wall-clock time
(:meth:`PartialResultProcessor.feed`), calls :meth:`~PartialResultProcessor.tick` every few tens of
milliseconds for the timers, and :meth:`~PartialResultProcessor.close` at the end of the stream.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from rapidfuzz.distance import Levenshtein

from lambda_src.model.partial_results import PartialResultConfig

PAUSE_BOUNDARY_SECONDS = 2.0
NO_STABILITY_TIMEOUT_SECONDS = 3.0
ORPHAN_FLUSH_SECONDS = 15.0
DEDUP_WINDOW_SECONDS = 5.0
# A result idle this long with every segment final is forgotten (a later result with its id would start over)...
FORGET_AFTER_SECONDS = 2 * ORPHAN_FLUSH_SECONDS
# ... unless the recognizer never said its final (its segments were flushed): the last this many such results stay
# known, so their final, when it comes after all, adds only words not yet said.
UNFINISHED_RESULTS_KEPT = 256
PARTIAL_WINDOW_SECONDS = 0.2
# A final differing from the last partial shown for its segment by more than this (normalized edit distance)
# is reported: a sign that partials are being shown too early for this recognizer and language.
DISCREPANCY_THRESHOLD = 0.20
SENTENCE_END = frozenset(".?!。？！")
_EPSILON = 1e-9  # times are floats: 0.6 - 0.4 < 0.2
_NOT_WORD = re.compile(r"[^\w\s]")  # punctuation (and symbols), in any script


@dataclass(frozen=True)
class Item:
    """One word or punctuation mark of a result; times in seconds of audio; stability 0..1 when known."""

    content: str
    start_time: float
    end_time: float
    punctuation: bool = False
    stability: float | None = None


@dataclass(frozen=True)
class RecognitionResult:
    """A recognizer result, shaped as Amazon Transcribe streaming gives them (its best alternative's items)."""

    result_id: str
    start_time: float
    end_time: float
    is_partial: bool
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Segment:
    """What goes on: a later segment with the same ``segment_id`` supersedes an earlier partial one; a final
    with empty text withdraws a partial the recognizer took back."""

    segment_id: str
    text: str
    is_partial: bool
    stability: float | None
    start_time: float
    # Audio seconds of the stream, like ``start_time``: where its last word ends (its result's start until a word
    # is known).
    end_time: float | None = None
    # When it was said, epoch milliseconds (from, until): placed by the consumer from its chunks' arrival (the
    # processor knows only the stream's audio time). A transcript's cue times.
    spoken_at_ms: tuple[int, int] | None = None


@dataclass
class Counters:
    """What the processor did, for metrics (read and reset by the caller)."""

    partials_forwarded: int = 0
    finals_forwarded: int = 0
    partials_dropped: int = 0  # superseded while the partial rate limit held them back
    duplicates_skipped: int = 0
    stale_ignored: int = 0
    orphans_flushed: int = 0
    discrepancies: int = 0


@dataclass(frozen=True)
class _Policy:
    """A segment's settings, fixed when the segment opens."""

    partials: bool
    threshold: float
    timeout: float


@dataclass
class _Segment:
    segment_id: str
    policy: _Policy
    start_time: float
    end_time: float
    opened_at: float
    updated_at: float
    text: str = ""
    stability: float | None = None
    held_since: float | None = None  # when the text not yet forwarded started waiting
    shown: str | None = None  # the last partial text forwarded (normalized), None before any
    shown_text: str = ""
    final: bool = False
    final_text: str = ""  # what its final said (the flush's text for an orphan)


@dataclass
class _Result:
    fed_at: float
    end_time: float = -1.0
    final: bool = False
    segments: list[str] = field(default_factory=list)


Discrepancy = Callable[[str, str, str, float], None]


class PartialResultProcessor:
    """One session's processing state."""

    def __init__(self, config: PartialResultConfig, on_discrepancy: Discrepancy | None = None) -> None:
        self._policy = _policy(config)
        self._segments: dict[str, _Segment] = {}
        self._open: dict[str, _Segment] = {}  # the segments without a final yet (what the timers look at)
        self._results: dict[str, _Result] = {}
        self._forgotten_at = 0.0
        self._pending: dict[str, Segment] = {}  # partials waiting for the rate limit's next window
        self._last_partial_at: float | None = None
        self._recent_finals: list[tuple[float, str]] = []  # (forwarded at, normalized text)
        self._on_discrepancy = on_discrepancy
        # Results forgotten before the recognizer said their final (their segments flushed as orphans), by id.
        self._unfinished: dict[str, tuple[_Result, list[_Segment]]] = {}
        self.counters = Counters()

    def update_config(self, config: PartialResultConfig) -> None:
        """A new configuration, applied from the next segment on (open segments keep theirs)."""
        self._policy = _policy(config)

    @property
    def between_segments(self) -> bool:
        """Whether no segment is open (every one so far is final): where the stream can be replaced without
        cutting a segment in two."""
        return not self._open

    # -- input -----------------------------------------------------------------------------------------
    def feed(self, result: RecognitionResult, now: float) -> list[Segment]:
        """Take one recognizer result received at ``now`` (seconds); what goes on now."""
        if result.result_id not in self._results and result.result_id in self._unfinished:
            known, segments = self._unfinished.pop(result.result_id)
            self._results[result.result_id] = known
            self._segments.update((segment.segment_id, segment) for segment in segments)
        state = self._results.setdefault(result.result_id, _Result(fed_at=now))
        if state.final or (result.is_partial and result.end_time < state.end_time):
            self.counters.stale_ignored += 1
            return self.tick(now)
        state.end_time, state.fed_at = result.end_time, now
        sentences = _sentences(result.items)
        out: list[Segment] = []
        if result.is_partial:
            for index, items in enumerate(sentences):
                self._partial(self._segment(result, index, state, now, items), items, now)
        else:
            state.final = True
            for index, items in enumerate(sentences):
                segment = self._segment(result, index, state, now, items)
                if segment.final:  # flushed as an orphan before its final came
                    out.extend(self._late_words(segment, items, state, now))
                    continue
                if items:
                    segment.end_time = items[-1].end_time
                out.extend(self._final(segment, _text(items), now))
            for segment_id in state.segments[len(sentences) :]:  # sentences the final took back
                out.extend(self._final(self._segments[segment_id], "", now))
        return _ordered(out + self.tick(now))

    def tick(self, now: float) -> list[Segment]:
        """What the timers release at ``now``: held partials past their timeout, the rate limit's next
        window, and orphaned segments."""
        out: list[Segment] = []
        for segment in list(self._open.values()):
            if now - segment.updated_at >= ORPHAN_FLUSH_SECONDS:
                self.counters.orphans_flushed += 1
                out.extend(self._final(segment, segment.text, now))
            elif (
                segment.policy.partials
                and segment.held_since is not None
                and now - segment.held_since >= _timeout(segment) - _EPSILON
            ):
                self._offer(segment, segment.text, segment.stability)
        out.extend(self._release(now))
        if now - self._forgotten_at >= 1.0:
            self._forget(now)
        return _ordered(out)

    def _forget(self, now: float) -> None:
        """Drop what no longer matters: results idle for FORGET_AFTER_SECONDS whose segments are all final
        (memory stays bounded however long the session runs), and finals past the dedup window."""
        self._forgotten_at = now
        for result_id, state in list(self._results.items()):
            if now - state.fed_at >= FORGET_AFTER_SECONDS and not any(s in self._open for s in state.segments):
                segments = [self._segments.pop(segment_id) for segment_id in state.segments]
                del self._results[result_id]
                if not state.final:
                    self._unfinished[result_id] = (state, segments)
                    while len(self._unfinished) > UNFINISHED_RESULTS_KEPT:
                        del self._unfinished[next(iter(self._unfinished))]
        self._recent_finals = [(at, seen) for at, seen in self._recent_finals if now - at < DEDUP_WINDOW_SECONDS]

    def close(self, now: float) -> list[Segment]:
        """The stream ended: every open segment goes on as final."""
        out = [s for segment in list(self._open.values()) for s in self._final(segment, segment.text, now)]
        return _ordered(out)

    # -- segments --------------------------------------------------------------------------------------
    def _segment(
        self, result: RecognitionResult, index: int, state: _Result, now: float, items: list[Item] | None = None
    ) -> _Segment:
        """The segment of ``result``'s sentence ``index`` (opened at its first word: a later sentence of the
        result starts where its own words do, not where the result does)."""
        segment_id = f"{result.result_id}-{index}"
        segment = self._segments.get(segment_id)
        if segment is None:
            start = items[0].start_time if items else result.start_time
            segment = _Segment(segment_id, self._policy, start, start, opened_at=now, updated_at=now)
            self._segments[segment_id] = self._open[segment_id] = segment
            state.segments.append(segment_id)
        return segment

    def _partial(self, segment: _Segment, items: list[Item], now: float) -> None:
        text = _text(items)
        if segment.final or text == segment.text:
            return
        normalized = _normalized(text)
        if not normalized:
            return
        segment.text, segment.updated_at = text, now
        segment.end_time = items[-1].end_time
        segment.stability = _stability(items)
        if not segment.policy.partials:
            return
        if normalized == segment.shown:
            segment.held_since = None  # already showing these words: nothing waiting supersedes them
            self._pending.pop(segment.segment_id, None)
            return
        if segment.held_since is None:
            segment.held_since = now  # from now on, words of this segment wait to be shown
        if segment.stability is not None and segment.stability >= segment.policy.threshold:
            self._offer(segment, text, segment.stability)
        elif now - segment.held_since >= _timeout(segment) - _EPSILON:
            self._offer(segment, text, segment.stability)  # its words have waited their time already
        else:
            # The leading words that already reach the threshold go on; the rest waits (at most the timeout).
            prefix = _stable_prefix(items, segment.policy.threshold)
            if prefix and _normalized(_text(prefix)) != segment.shown:
                self._offer(segment, _text(prefix), _stability(prefix))
            elif self._pending.pop(segment.segment_id, None) is not None:
                self.counters.partials_dropped += 1  # what waited is no longer what the recognizer says

    def _offer(self, segment: _Segment, text: str, stability: float | None) -> None:
        """Queue ``text`` of the segment for the rate limit's next window (replacing what waited)."""
        waiting = self._pending.get(segment.segment_id)
        if waiting is not None:
            if waiting.text == text:
                return
            self.counters.partials_dropped += 1
        self._pending[segment.segment_id] = Segment(
            segment.segment_id, text, True, stability, segment.start_time, segment.end_time
        )

    def _release(self, now: float) -> list[Segment]:
        if not self._pending:
            return []
        if self._last_partial_at is not None and now - self._last_partial_at < PARTIAL_WINDOW_SECONDS - _EPSILON:
            return []
        # The most stable waiting partial, the most recent of equals (dicts keep insertion order).
        best = max(reversed(self._pending.values()), key=lambda s: -1.0 if s.stability is None else s.stability)
        del self._pending[best.segment_id]
        segment = self._segments[best.segment_id]
        segment.shown, segment.shown_text = _normalized(best.text), best.text
        if best.text == segment.text:
            segment.held_since = None  # all of it is shown now
        self._last_partial_at = now
        self.counters.partials_forwarded += 1
        return [best]

    def _late_words(self, flushed: _Segment, items: list[Item], state: _Result, now: float) -> list[Segment]:
        """A final for a segment flushed as an orphan: the words it says after those the flush said go on as a
        segment of their own (the flushed one is not reopened); nothing when it adds none."""
        said = _normalized(flushed.final_text).split()
        words = [index for index, item in enumerate(items) if not item.punctuation]
        kept = 0
        while kept < min(len(said), len(words)) and _normalized(items[words[kept]].content) == said[kept]:
            kept += 1
        if kept == len(words) or kept < len(said):
            self.counters.stale_ignored += 1  # nothing new, or the recognizer revised words already said
            return []
        rest = items[words[kept] :]
        segment_id = f"{flushed.segment_id}+"
        if segment_id in self._segments:
            self.counters.stale_ignored += 1
            return []
        start = rest[0].start_time
        late = _Segment(segment_id, flushed.policy, start, rest[-1].end_time, opened_at=now, updated_at=now)
        self._segments[segment_id] = self._open[segment_id] = late
        state.segments.append(segment_id)
        return self._final(late, _text(rest), now)

    def _final(self, segment: _Segment, text: str, now: float) -> list[Segment]:
        if segment.final:  # flushed as an orphan already: a late final does not reopen it
            self.counters.stale_ignored += 1
            return []
        segment.final = True
        segment.final_text = text
        del self._open[segment.segment_id]
        if self._pending.pop(segment.segment_id, None) is not None:
            self.counters.partials_dropped += 1
        normalized = _normalized(text)
        if segment.shown is None:
            if not normalized or any(
                seen == normalized and now - at < DEDUP_WINDOW_SECONDS for at, seen in self._recent_finals
            ):
                if normalized:
                    self.counters.duplicates_skipped += 1
                return []
        elif normalized:
            distance = Levenshtein.normalized_distance(segment.shown, normalized)
            if distance > DISCREPANCY_THRESHOLD:
                self.counters.discrepancies += 1
                if self._on_discrepancy is not None:
                    self._on_discrepancy(segment.segment_id, segment.shown_text, text, distance)
        self._recent_finals.append((now, normalized))
        self.counters.finals_forwarded += 1
        return [Segment(segment.segment_id, text, False, None, segment.start_time, segment.end_time)]


def _policy(config: PartialResultConfig) -> _Policy:
    return _Policy(
        partials=config.partial_results_enabled,
        threshold=float(config.min_stability_threshold),
        timeout=float(config.max_buffer_timeout),
    )


def _stability(items: list[Item]) -> float | None:
    """The least stable word's stability; None when the recognizer gave none (punctuation does not count)."""
    known = [item.stability for item in items if item.stability is not None and not item.punctuation]
    return min(known) if known else None


def _stable_prefix(items: list[Item], threshold: float) -> list[Item]:
    """The leading words (with their punctuation) that each reach ``threshold``."""
    prefix: list[Item] = []
    for item in items:
        if not item.punctuation and (item.stability is None or item.stability < threshold):
            break
        prefix.append(item)
    return prefix if any(not item.punctuation for item in prefix) else []


def _timeout(segment: _Segment) -> float:
    """How long the segment's text may wait: the session's buffer timeout, or the fixed one when the
    recognizer reports no stability for it."""
    return segment.policy.timeout if segment.stability is not None else NO_STABILITY_TIMEOUT_SECONDS


def _sentences(items: tuple[Item, ...]) -> list[list[Item]]:
    """Split at sentence punctuation and at pauses of PAUSE_BOUNDARY_SECONDS or more."""
    sentences: list[list[Item]] = []
    current: list[Item] = []
    last_word_end: float | None = None
    for item in items:
        if not item.punctuation:
            if current and last_word_end is not None and item.start_time - last_word_end >= PAUSE_BOUNDARY_SECONDS:
                sentences.append(current)
                current = []
            last_word_end = item.end_time
        current.append(item)
        if item.punctuation and item.content in SENTENCE_END:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return [sentence for sentence in sentences if any(not item.punctuation for item in sentence)]


def _text(items: list[Item]) -> str:
    text = ""
    for item in items:
        text += item.content if item.punctuation or not text else " " + item.content
    return text


def _normalized(text: str) -> str:
    """Lower case, no punctuation, single spaces: what "the same text" means."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def _ordered(segments: list[Segment]) -> list[Segment]:
    return sorted(segments, key=lambda s: s.start_time)
