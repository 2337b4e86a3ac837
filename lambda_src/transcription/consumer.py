"""The session's transcription consumer: its audio buffer, in order, through the recognizer and the
partial-result processor, to the speaker's ``transcript`` messages and the listeners' captions
(decision record 0001).

One consumer per session with audio, made sure of by a lease on the session item
(``SessionsRepository.hold_transcriber_lease``): the invocation that takes it runs the loop below; any other finds
it held and returns at once. Each renewal (every ``TRANSCRIBER_RENEW_SECONDS``) is also the consumer's read of the
session: whether it is still live, its speaker connection, broadcast state and partial-result settings (a
settings change applies from the next segment), and it records how far in the buffer the consumer got.

The loop: read the chunks after the last one released (one Query page; at once again while pages come full,
otherwise every ``TRANSCRIBER_POLL_SECONDS``), put them back in sequence order per speaker connection
(:class:`~lambda_src.transcription.sequencer.ChunkSequencer`: a gap waits a moment, then is given up), feed
them to the recognizer (opened with the session's source language on the first chunk) unless the broadcast is
paused, muted or at volume 0, run its results through the processor, and deliver what the processor forwards.
It stops when the session ends or is gone, after ``TRANSCRIBER_IDLE_SECONDS`` without audio, or when its
invocation nears its timeout: then it closes the stream (its last results are delivered as finals) and hands
the lease and its position to a successor invocation.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from lambda_src import fanout, limits, messages, metrics, runtime
from lambda_src.errors import ServiceError
from lambda_src.log import logger
from lambda_src.repositories.audio_chunks import StoredChunk
from lambda_src.repositories.sessions import Session
from lambda_src.transcription.processor import PartialResultProcessor, Segment
from lambda_src.transcription.recognizer import Recognizer
from lambda_src.transcription.sequencer import ChunkSequencer

# Why a consumer stopped (its invocation's result, and the log's).
SESSION_OVER = "sessionOver"
LEASED_ELSEWHERE = "leasedElsewhere"
IDLE = "idle"
HANDED_OVER = "handedOver"

OpenRecognizer = Callable[[Session], Recognizer]
TimeLeft = Callable[[], float]


class Delivery(Protocol):
    """Where forwarded segments go: the speaker's ``transcript``, and the listeners' captions."""

    def __call__(self, session: Session, segment: Segment, now_ms: int) -> None: ...


class Successor(Protocol):
    """Starts the next consumer invocation of a session (asynchronously)."""

    def __call__(self, session_id: str, handed_over_by: str | None) -> object: ...


@dataclass
class _Stream:
    """One recognizer stream and the processor after it; segment ids are unique per stream."""

    recognizer: Recognizer | None
    processor: PartialResultProcessor
    stream_id: str = field(default_factory=lambda: secrets.token_hex(3))


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
    lease_id: str = field(default_factory=lambda: secrets.token_hex(8))
    cursor: str = ""
    session: Session | None = None
    _sequencers: dict[str, ChunkSequencer] = field(default_factory=dict)
    _waiting: dict[tuple[str, int], StoredChunk] = field(default_factory=dict)  # read, not yet released
    _ready: list[tuple[str, int]] = field(default_factory=list)  # released as they arrived
    _stream: _Stream | None = None
    _open_failed_at: float = float("-inf")

    # -- the lease ---------------------------------------------------------------------------------
    def _hold(self, now: float, taking_over: str | None = None) -> bool:
        held, session = runtime.sessions().hold_transcriber_lease(
            self.session_id, self.lease_id, int(now * 1000), self.cursor or None, taking_over=taking_over
        )
        if session is not None:
            self.session = session
        return held

    def run(self, handed_over_by: str | None = None) -> str:
        """Take the lease and consume until one of the reasons to stop; why it stopped."""
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
        reason = self._loop(now)
        self._close_stream(self.clock())
        if reason == HANDED_OVER:
            self._hold(self.clock())  # the position, for the successor
            self.start_successor(self.session_id, self.lease_id)
        elif reason != SESSION_OVER or self.session is not None:
            runtime.sessions().release_transcriber_lease(self.session_id, self.lease_id, self.cursor or None)
        metrics.flush()
        logger.info("transcription consumer stopped", extra={"reason": reason, "cursor": self.cursor})
        return reason

    def _loop(self, started: float) -> str:
        renewed = last_audio = published = started
        while True:
            now = self.clock()
            if now - renewed >= limits.TRANSCRIBER_RENEW_SECONDS:
                renewed = now
                if not self._hold(now):
                    return LEASED_ELSEWHERE if self.session is not None and self.session.is_active else SESSION_OVER
                if self._stream is not None:
                    assert self.session is not None
                    self._stream.processor.update_settings(self.session.config)
            session = self.session
            if session is None or not session.is_active:
                return SESSION_OVER
            if self.time_left() < limits.TRANSCRIBER_HANDOVER_SECONDS:
                return HANDED_OVER
            page = runtime.audio_chunks().after(self.session_id, self.cursor)
            fresh = self._arrived(page, now)
            if self._consume(self._released(now), now):
                last_audio = now
            self._tick(now)
            if now - last_audio >= limits.TRANSCRIBER_IDLE_SECONDS:
                return IDLE
            if now - published >= limits.TRANSCRIBER_METRICS_SECONDS:
                published = now
                metrics.flush()
            if not fresh or len(page) < limits.TRANSCRIBER_PAGE_CHUNKS:
                self.sleep(limits.TRANSCRIBER_POLL_SECONDS)

    # -- the buffer, in order ------------------------------------------------------------------------
    def _arrived(self, page: Iterable[StoredChunk], now: float) -> bool:
        """Hand the chunks not seen yet to their connection's sequencer; whether there were any."""
        fresh = False
        for chunk in page:
            place = (chunk.connection_key, chunk.sequence_number)
            if place in self._waiting:
                continue  # held behind a gap, read again
            sequencer = self._sequencers.setdefault(chunk.connection_key, ChunkSequencer())
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

    def _released(self, now: float) -> list[StoredChunk]:
        """The chunks that can go on now, in buffer order (a gap given up is logged and counted)."""
        out = [self._waiting.pop(place) for place in self._ready]
        self._ready.clear()
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
        """Feed the released chunks (unless the broadcast holds them back); whether any audio was fed."""
        session = self.session
        assert session is not None
        fed = False
        for chunk in chunks:
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
        for _attempt in range(2):
            stream = self._stream or self._open(session, now)
            if stream is None or stream.recognizer is None:
                return
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
        self._deliver(stream, segments, now)
        _publish(stream.processor)

    def _deliver(self, stream: _Stream, segments: list[Segment], now: float) -> None:
        session = self.session
        if not segments or session is None:
            return
        now_ms = int(now * 1000)
        for segment in segments:
            # Unique in the session: a segment id counts within its stream.
            self.deliver(session, replace(segment, segment_id=f"{stream.stream_id}.{segment.segment_id}"), now_ms)
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
