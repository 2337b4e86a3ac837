"""The session's transcription consumer: its audio buffer, in order, through the recognizer and the
partial-result processor, to the speaker's ``transcript`` messages and the listeners' captions
(decision record 0001).

One consumer per session with audio, made sure of by a lease on the session item
(``SessionsRepository.hold_transcriber_lease``): the invocation that takes it runs the loop below; any other finds
it held and returns at once. Each renewal (every ``TRANSCRIBER_RENEW_SECONDS``) is also the consumer's read of the
session: whether it is still live, its speaker connection, broadcast state and partial-result settings (a
settings change applies from the next segment, in a new recognizer stream when the stream cannot take it), and it
records how far in the buffer the consumer got. A renewal succeeds only while the lease is still the consumer's
own, and the consumer delivers only while its last take or renewal holds (``TRANSCRIBER_LEASE_SECONDS`` from when
it asked): it checks before each chunk and each delivery, renewing when a renewal is due, so a slow call (the
recognizer, a translation) never leaves it delivering beside a successor that took the lapsed lease. A consumer
whose lease is no longer its own stops at once: it delivers nothing more and lets go of nothing.

The loop: read the chunks after the last one released (one Query page; at once again while pages come full,
otherwise every ``TRANSCRIBER_POLL_SECONDS``), put them back in sequence order per speaker connection
(:class:`~lambda_src.model.chunk_sequencer.ChunkSequencer`: a gap waits a moment, then is given up; a
connection's sequence is awaited from 0, or from after the recorded position; a chunk sent without a number is
placed by its arrival and goes on as read, in key order), feed them to the recognizer
(opened with the session's source language on the first chunk) unless the broadcast is paused, muted or at
volume 0, run its results through the processor, and deliver what the processor forwards. A store that does not
answer (throttled past its retries) is asked again after the wait it advises. The consumer stops when the session
ends or is gone, after ``TRANSCRIBER_IDLE_SECONDS`` without audio, or when its invocation nears its timeout: then
it closes the stream (its last results are delivered as finals) and hands the lease and its position to a
successor invocation. However it stops, an unforeseen error included, its stream is closed.
"""

from __future__ import annotations

import bisect
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

from lambda_src import runtime
from lambda_src.adapters.repositories.audio_chunks import StoredChunk
from lambda_src.app import fanout
from lambda_src.contract import limits
from lambda_src.contract.errors import ServiceError
from lambda_src.model.chunk_sequencer import ChunkSequencer
from lambda_src.model.partial_result_processor import PartialResultProcessor, Segment
from lambda_src.model.recognizer import Recognizer
from lambda_src.model.session import Session
from lambda_src.platform import metrics
from lambda_src.platform.log import logger
from lambda_src.protocol import messages

# Why a consumer stopped (its invocation's result, and the log's).
SESSION_OVER = "sessionOver"
LEASED_ELSEWHERE = "leasedElsewhere"
LEASE_LAPSED = "leaseLapsed"  # its lease ran out before the store answered a renewal
IDLE = "idle"
HANDED_OVER = "handedOver"
FAILED = "failed"  # an unforeseen error: raised on once the stream is closed and the lease let go
# A consumer stopped for one of these delivers nothing more: another one may be delivering the same audio.
_NOT_ITS_LEASE = frozenset({LEASED_ELSEWHERE, LEASE_LAPSED})

OpenRecognizer = Callable[[Session], Recognizer]
TimeLeft = Callable[[], float]


class Delivery(Protocol):
    """Where forwarded segments go: the speaker's ``transcript``, and the listeners' captions."""

    def __call__(self, session: Session, segment: Segment, now_ms: int) -> None: ...


class Successor(Protocol):
    """Starts the next consumer invocation of a session (asynchronously)."""

    def __call__(self, session_id: str, handed_over_by: str | None) -> object: ...


class _Stop(Exception):
    """Stop now: learnt in the middle of a page (the lease is no longer the consumer's own, the session is over)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_BYTES_PER_SECOND: Final = limits.SAMPLE_RATE_HZ * limits.AUDIO_SAMPLE_BYTES


@dataclass
class _Stream:
    """One recognizer stream and the processor after it; segment ids are unique per stream. Its timeline places
    the stream's audio time on the wall clock: where each chunk fed starts in the stream's audio (seconds) and when
    that chunk arrived (epoch ms), so a segment is placed by the chunks it was heard in, however long the
    broadcast was paused between them (a stream lives at most one invocation: a few thousand chunks)."""

    recognizer: Recognizer | None
    processor: PartialResultProcessor
    stream_id: str = field(default_factory=lambda: secrets.token_hex(3))
    _audio_starts: list[float] = field(default_factory=list)
    _arrivals_ms: list[int] = field(default_factory=list)
    _audio_seconds: float = 0.0

    def heard(self, chunk: StoredChunk) -> None:
        """``chunk`` is fed to the stream now: its audio follows what was fed before."""
        self._audio_starts.append(self._audio_seconds)
        self._arrivals_ms.append(chunk.received_at_ms)
        self._audio_seconds += len(chunk.pcm) / _BYTES_PER_SECOND

    def spoken_at_ms(self, segment: Segment) -> tuple[int, int] | None:
        """When ``segment`` was said (epoch ms, from and until), by the arrival of the chunks its audio time falls
        in; None before any chunk."""
        if not self._audio_starts:
            return None
        start = self._wall_ms(segment.start_time)
        end = self._wall_ms(segment.end_time if segment.end_time is not None else segment.start_time)
        return start, max(start, end)

    def _wall_ms(self, audio_seconds: float) -> int:
        index = max(0, bisect.bisect_right(self._audio_starts, audio_seconds) - 1)
        return self._arrivals_ms[index] + round((audio_seconds - self._audio_starts[index]) * 1000)


@dataclass
class Consumer:
    """One invocation's consumer of one session."""

    session_id: str
    open_recognizer: OpenRecognizer
    deliver: Delivery
    start_successor: Successor
    time_left: TimeLeft
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    # Waits for what the deliveries still have in flight (speech, transcript records): called before the lease is
    # handed over or let go, so what this consumer said is whole and numbered before a successor says more.
    settle: Callable[[], None] = lambda: None
    lease_id: str = field(default_factory=lambda: secrets.token_hex(8))
    cursor: str = ""
    session: Session | None = None
    _sequencers: dict[str, ChunkSequencer] = field(default_factory=dict)
    _waiting: dict[tuple[str, int], StoredChunk] = field(default_factory=dict)  # read, not yet released
    _ready: list[tuple[str, int]] = field(default_factory=list)  # released as they arrived
    _by_arrival: list[StoredChunk] = field(default_factory=list)  # unnumbered: released as read, in key order
    _stream: _Stream | None = None
    _open_failed_at: float = float("-inf")
    _lease_until: float = float("-inf")  # until when its last take or renewal holds the lease (its own clock)
    _renewal_asked_at: float = float("-inf")
    _stopping: str | None = None  # why it must stop, once a renewal was refused

    # -- the lease ---------------------------------------------------------------------------------
    def _hold(self, now: float, taking_over: str | None = None) -> bool:
        """Take the lease (lapsed or absent, or handed over by ``taking_over``); whether it did."""
        held, session = runtime.sessions().hold_transcriber_lease(
            self.session_id, self.lease_id, int(now * 1000), self.cursor or None, taking_over=taking_over
        )
        if session is not None:
            self.session = session
        if held:
            self._lease_until, self._renewal_asked_at = now + limits.TRANSCRIBER_LEASE_SECONDS, now
        return held

    def _renew(self, now: float) -> None:
        """Renew the lease while it is still this consumer's own, recording the position and reading the session;
        refused, note why the consumer must stop. A store that does not answer leaves the lease to run out unless
        a later renewal gets through (the holder's lease id is still there when nobody took the lease)."""
        self._renewal_asked_at = now
        try:
            held, session = runtime.sessions().hold_transcriber_lease(
                self.session_id, self.lease_id, int(now * 1000), self.cursor or None, renewing=True
            )
        except ServiceError as refused:
            logger.warning("transcriber lease not renewed: the store did not answer", extra={"error": str(refused)})
            return
        self.session = session
        if held:
            self._lease_until = now + limits.TRANSCRIBER_LEASE_SECONDS
            if self._stream is not None and session is not None:
                self._stream.processor.update_config(session.config)
            return
        # Refused: the lease is another consumer's (or was let go), or the session is over or gone; then nobody
        # else can take it, and the stream's last results may still be delivered.
        lease = session.transcriber if session is not None else None
        own = lease is not None and lease.lease_id == self.lease_id
        over = session is None or not session.is_active
        self._stopping = SESSION_OVER if over or own else LEASED_ELSEWHERE

    def _lease(self) -> str | None:
        """None while the lease is this consumer's own (renewed when due, or when it has run out); else why the
        consumer must stop. Asked before each chunk and each delivery, not only once per poll."""
        now = self.clock()
        due = now - self._renewal_asked_at >= limits.TRANSCRIBER_RENEW_SECONDS or now >= self._lease_until
        if self._stopping is None and due:
            self._renew(now)
        if self._stopping is not None:
            return self._stopping
        return None if now < self._lease_until else LEASE_LAPSED

    # -- the run -------------------------------------------------------------------------------------
    def run(self, handed_over_by: str | None = None) -> str:
        """Take the lease and consume until one of the reasons to stop; why it stopped. However it stops, its
        stream is closed (an unforeseen error is raised on once it is)."""
        now = self.clock()
        if not self._hold(now, taking_over=handed_over_by):
            live = self.session is not None and self.session.is_active
            return LEASED_ELSEWHERE if live else SESSION_OVER
        assert self.session is not None
        if self.session.transcriber is not None and not self.cursor:
            self.cursor = self.session.transcriber.cursor
        logger.info(
            "transcription consumer started", extra={"cursor": self.cursor, "handed_over": bool(handed_over_by)}
        )
        try:
            reason = self._loop(now)
        except _Stop as stop:
            reason = stop.reason
        except Exception:
            logger.exception("transcription consumer failed")
            self._finish(FAILED)
            raise
        return self._finish(reason)

    def _finish(self, reason: str) -> str:
        """Close the stream (its last results delivered as finals, while the lease is still this consumer's own),
        then hand over or let the lease go, recording the position; why it stopped."""
        if reason in _NOT_ITS_LEASE:
            self._stopping = reason  # the stream's last results are not delivered
        try:
            self._close_stream(self.clock())
        except _Stop as stop:  # found while delivering them
            reason = stop.reason
        try:
            self.settle()
        except Exception:
            logger.exception("deliveries in flight not settled before the lease goes")
        if reason == HANDED_OVER:
            self._renew(self.clock())  # the position, for the successor
            if self._stopping is None:
                self.start_successor(self.session_id, self.lease_id)
        elif reason not in _NOT_ITS_LEASE and self.session is not None:
            try:
                runtime.sessions().release_transcriber_lease(self.session_id, self.lease_id, self.cursor or None)
            except ServiceError:
                logger.warning("transcriber lease not released: the store did not answer; it lapses by itself")
        metrics.flush()
        logger.info("transcription consumer stopped", extra={"reason": reason, "cursor": self.cursor})
        return reason

    def _loop(self, started: float) -> str:
        last_audio = published = started
        while True:
            now = self.clock()
            stop = self._lease()
            if stop is not None:
                return stop
            session = self.session
            if session is None or not session.is_active:
                return SESSION_OVER
            if self.time_left() < limits.TRANSCRIBER_HANDOVER_SECONDS:
                return HANDED_OVER
            page, retry_after = self._read()
            fresh = self._arrived(page, now)
            if self._consume(self._released(now), now):
                last_audio = now
            self._tick(now)
            if now - last_audio >= limits.TRANSCRIBER_IDLE_SECONDS:
                return IDLE
            if now - published >= limits.TRANSCRIBER_METRICS_SECONDS:
                published = now
                metrics.flush()
            if retry_after is not None:
                self.sleep(retry_after)
            elif not fresh or len(page) < limits.TRANSCRIBER_PAGE_CHUNKS:
                self.sleep(limits.TRANSCRIBER_POLL_SECONDS)

    # -- the buffer, in order ------------------------------------------------------------------------
    def _read(self) -> tuple[list[StoredChunk], float | None]:
        """One page of the buffer after the position (and None); or, when the store did not answer (throttled past
        its retries), no chunks and how long to wait before asking again: the audio waits in the buffer."""
        try:
            return runtime.audio_chunks().after(self.session_id, self.cursor), None
        except ServiceError as refused:
            logger.warning("audio buffer not read: the store did not answer", extra={"error": str(refused)})
            return [], float(refused.retry_after or limits.TRANSCRIBER_POLL_SECONDS)

    def _arrived(self, page: Iterable[StoredChunk], now: float) -> bool:
        """Hand the chunks not seen yet to their connection's sequencer; whether there were any."""
        fresh = False
        for chunk in page:
            if chunk.sequence_number is None:
                # Placed by its arrival (decision record 0035): its key is its place, so it goes on as read, with
                # no gap to wait for and nothing to put back in order.
                self._by_arrival.append(chunk)
                fresh = True
                metrics.audio_hand_off(max(0.0, now * 1000 - chunk.received_at_ms))
                continue
            place = (chunk.connection_key, chunk.sequence_number)
            if place in self._waiting:
                continue  # held behind a gap, read again
            sequencer = self._sequencers.get(chunk.connection_key)
            if sequencer is None:
                sequencer = ChunkSequencer(expected=self._expected_start(chunk.connection_key))
                self._sequencers[chunk.connection_key] = sequencer
            before = sequencer.counters.late + sequencer.counters.duplicates
            self._waiting[place] = chunk
            self._ready += [(chunk.connection_key, sequence) for sequence, _ in sequencer.push(place[1], b"", now)]
            if sequencer.counters.late + sequencer.counters.duplicates > before:
                self._waiting.pop(place)
                logger.info("late audio chunk dropped", extra={"sequence_number": chunk.sequence_number})
                self.cursor = max(self.cursor, chunk.key)
                continue
            fresh = True
            metrics.audio_hand_off(max(0.0, now * 1000 - chunk.received_at_ms))
        return fresh

    def _expected_start(self, connection_key: str) -> int:
        """Where a connection's sequence goes on when the consumer first reads it: after the position when that is
        in this connection (a successor's, or a restarted consumer's); otherwise the connection started after the
        position (e.g. at a speaker's refresh or resume while this consumer runs), so the buffer holds it from its
        start, 0, even when its chunk 1 was stored before its chunk 0."""
        position, _, sequence = self.cursor.rpartition("#")
        return int(sequence) + 1 if position == connection_key and sequence.isdigit() else 0

    def _released(self, now: float) -> list[StoredChunk]:
        """The chunks that can go on now, in buffer order (a gap given up is logged and counted)."""
        out = [self._waiting.pop(place) for place in self._ready] + self._by_arrival
        self._ready.clear()
        self._by_arrival = []
        for connection_key, sequencer in self._sequencers.items():
            missing = sequencer.counters.missing
            for sequence, _pcm in sequencer.tick(now):
                out.append(self._waiting.pop((connection_key, sequence)))
            if sequencer.counters.missing > missing:
                metrics.audio_chunks_missing(sequencer.counters.missing - missing)
                logger.info("audio chunks given up", extra={"missing": sequencer.counters.missing - missing})
        out.sort(key=lambda chunk: chunk.key)
        return out

    # -- recognition ---------------------------------------------------------------------------------
    def _consume(self, chunks: list[StoredChunk], now: float) -> bool:
        """Feed the released chunks (unless the broadcast holds them back); whether any audio was fed. Before
        each, the lease must still be this consumer's own (a page can take longer than the lease)."""
        fed = False
        for chunk in chunks:
            stop = self._lease()
            if stop is not None:
                raise _Stop(stop)
            session = self.session
            assert session is not None
            self.cursor = max(self.cursor, chunk.key)
            if not session.broadcast.forwards_audio:
                continue
            fed = True
            started = time.perf_counter()
            self._feed(session, chunk, now)
            metrics.chunk_processing((time.perf_counter() - started) * 1000)
        return fed

    def _feed(self, session: Session, chunk: StoredChunk, now: float) -> None:
        """One chunk to the stream (opened if need be). A stream that fails (Transcribe closes one that had no
        audio for 15 s, a network error) is closed, its open segments delivered as final, and the chunk goes to a
        new one; a second failure drops the chunk (logged)."""
        self._replace_if_unfit(session, now)
        for _attempt in range(2):
            stream = self._stream or self._open(session, now)
            if stream is None or stream.recognizer is None:
                return
            stream.heard(chunk)
            try:
                results = stream.recognizer.feed(chunk.pcm)
            except Exception:
                logger.exception("recognizer stream failed; the audio goes on in a new one")
                self._close_stream(now)
                continue
            for result in results:
                self._deliver(stream, stream.processor.feed(result, now), now)
            return
        logger.warning(
            "audio chunk dropped: no recognizer stream took it", extra={"sequence_number": chunk.sequence_number}
        )

    def _replace_if_unfit(self, session: Session, now: float) -> None:
        """Close a stream opened for settings it cannot take mid-stream (Transcribe's stabilization level) once no
        segment is open, so that the chunk opens one for the session's settings: a change applies from the next
        segment, as it does in the processor."""
        stream = self._stream
        if stream is None or stream.recognizer is None or not stream.processor.between_segments:
            return
        if not stream.recognizer.fits(session.config):
            logger.info("recognizer stream replaced at a segment boundary for the session's new settings")
            self._close_stream(now)

    def _open(self, session: Session, now: float) -> _Stream | None:
        """A new stream, or None when the recognizer could not be reached (tried again at most once a second)."""
        if now - self._open_failed_at < limits.TRANSCRIBER_RENEW_SECONDS:
            return None
        recognizer: Recognizer | None
        try:
            recognizer = self.open_recognizer(session)
        except ServiceError as refused:
            # Told once; the audio is read and dropped until the consumer stops.
            recognizer = None
            if session.speaker_connected:
                fanout.post_quietly(session.speaker_connection_id, refused.to_message(messages.now_ms()))
            logger.info("recognizer refused the session", extra={"error": str(refused)})
        except Exception:
            self._open_failed_at = now
            logger.exception("recognizer stream not opened; tried again with later audio")
            return None
        self._stream = _Stream(recognizer, PartialResultProcessor(session.config, on_discrepancy=_discrepancy))
        return self._stream

    def _tick(self, now: float) -> None:
        if self._stream is not None:
            self._deliver(self._stream, self._stream.processor.tick(now), now)

    def _close_stream(self, now: float) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        segments: list[Segment] = []
        if stream.recognizer is not None:
            try:
                for result in stream.recognizer.close():
                    segments += stream.processor.feed(result, now)
            except Exception:
                logger.exception("recognizer stream did not close cleanly")
        segments += stream.processor.close(now)
        try:
            self._deliver(stream, segments, now)
        finally:
            _publish(stream.processor)

    def _deliver(self, stream: _Stream, segments: list[Segment], now: float) -> None:
        """Each segment, while the lease is still this consumer's own (checked before each: a delivery, with its
        translations, can be slow)."""
        if not segments:
            return
        now_ms = int(now * 1000)
        for segment in segments:
            stop = self._lease()
            if stop in _NOT_ITS_LEASE:
                raise _Stop(stop)
            session = self.session
            if session is None:
                return
            # Unique in the session: a segment id counts within its stream.
            segment_id = f"{stream.stream_id}.{segment.segment_id}"
            placed = replace(segment, segment_id=segment_id, spoken_at_ms=stream.spoken_at_ms(segment))
            self.deliver(session, placed, now_ms)
        _publish(stream.processor)


def _discrepancy(segment_id: str, partial: str, final: str, distance: float) -> None:
    logger.info(
        "final differs from its last partial",
        extra={"segment_id": segment_id, "partial": partial, "final": final, "distance": round(distance, 3)},
    )


def _publish(processor: PartialResultProcessor) -> None:
    """The processor's counters since the last call, as metrics (then reset)."""
    counters = processor.counters
    metrics.transcription_counts(
        partials=counters.partials_forwarded,
        finals=counters.finals_forwarded,
        partials_dropped=counters.partials_dropped,
        discrepancies=counters.discrepancies,
    )
    processor.counters = type(counters)()
