"""Transcripts to take home (decision record 0036): each final segment of a session recorded as it is delivered,
and the session's owner reading it as a document in one language, or deleting it.

Recording (:class:`TranscriptRecorder`, one per transcription consumer): each final segment with text, in the
session's source language and in every language it was just captioned in (the captions' own translations: no
translation of its own), with when it was said, becomes one Transcripts item. The items go out on one writer
thread, in BatchWriteItem requests of what waits when a write starts (so at most one request per segment, and
fewer when segments come faster than a write); nothing is read on the live path, and a caption never waits for a
write. A write that fails past its retries is logged and counted (``TranscriptWriteFailures``); those segments are
missing from the transcript. The items carry the session's owner and expire (TTL) the configured retention
(``TRANSCRIPT_RETENTION_DAYS``, 7 by default) after the session started: a transcript goes as a whole.

Reading and deleting (:func:`read_transcript`, :func:`delete_transcript`, what the HTTP API's
``GET`` / ``DELETE /sessions/{id}/transcript`` call): the session's owner only, during the session or after it,
its item gone included (the owner is on every transcript item). A session id can name a later session once the
first one's item expired: the caller's transcript is the one of the session it owns (the live one, or else the
latest of its own sessions with that id), never another speaker's.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from lambda_src import runtime
from lambda_src.adapters.repositories.transcripts import TranscriptEntry
from lambda_src.contract import errors, function_settings, limits
from lambda_src.model import transcripts
from lambda_src.model.partial_result_processor import Segment
from lambda_src.model.session import Session
from lambda_src.platform import metrics
from lambda_src.platform.log import logger
from lambda_src.platform.serial import SerialWork
from lambda_src.protocol import messages, validation


class TranscriptRecorder(SerialWork):
    """Records one consumer's final segments; ``close`` it at the end (or use it as a context manager): it waits
    for the writes in flight, so nothing is left behind when the invocation returns."""

    def __init__(self) -> None:
        super().__init__("transcript-write")  # writes one after another
        self._pending: list[TranscriptEntry] = []
        self._failed = 0  # segments not written, since the last publication (the writer thread adds to it)
        self._lock = threading.Lock()
        self._delivered_at_ms = -1
        self._number = 0

    def close(self) -> None:
        """Wait for the writes in flight, then publish what failed."""
        super().close()
        self._publish_failures()

    def record(self, session: Session, segment: Segment, texts: Mapping[str, str], now_ms: int) -> None:
        """Queue ``segment`` (a final with text; anything else is not part of a transcript) with its text by
        language (the source language's is the segment's own), delivered at ``now_ms``. Never raises, never
        waits for the store."""
        self._publish_failures()
        if segment.is_partial or not segment.text.strip():
            return
        try:
            entry = self._entry(session, segment, texts, now_ms)
            with self._lock:
                self._pending.append(entry)
            self.later(self._write_pending)
        except Exception:
            logger.exception("transcript segment not recorded", extra={"segment_id": segment.segment_id})
            metrics.transcript_write_failed(1)

    def _entry(self, session: Session, segment: Segment, texts: Mapping[str, str], now_ms: int) -> TranscriptEntry:
        # The segments of one millisecond (the sentences of one result) keep their order by their number.
        self._number = self._number + 1 if now_ms == self._delivered_at_ms else 0
        self._delivered_at_ms = now_ms
        spoken_from, spoken_until = segment.spoken_at_ms or (now_ms, now_ms)
        settings = function_settings.load()
        return TranscriptEntry(
            session_id=session.session_id,
            session_created_at_ms=session.created_at_ms,
            owner_id=session.speaker_user_id,
            source_language=session.source_language,
            segment_id=segment.segment_id,
            delivered_at_ms=now_ms,
            number=self._number,
            start_ms=spoken_from - session.created_at_ms,
            end_ms=spoken_until - session.created_at_ms,
            texts={**texts, session.source_language: segment.text},
            expires_at_s=session.created_at_ms // 1000 + settings.transcript_retention_seconds,
        )

    def _write_pending(self) -> None:
        """On the writer thread: what waits, ``TRANSCRIPT_BATCH_SIZE`` a request, until nothing does."""
        while True:
            with self._lock:
                batch = self._pending[: limits.TRANSCRIPT_BATCH_SIZE]
                del self._pending[: limits.TRANSCRIPT_BATCH_SIZE]
            if not batch:
                return
            try:
                left = runtime.transcripts().put_all(batch)
            except Exception:
                logger.exception("transcript segments not recorded", extra={"segments": len(batch)})
                left = batch
            else:
                if left:
                    logger.warning("transcript segments not recorded: left unprocessed", extra={"segments": len(left)})
            with self._lock:
                self._failed += len(left)

    def _publish_failures(self) -> None:
        """Count the failed writes on the caller's thread (the metrics accumulate there)."""
        with self._lock:
            failed, self._failed = self._failed, 0
        metrics.transcript_write_failed(failed)


def read_transcript(session_id: Any, user_id: str, language: Any, fmt: Any) -> tuple[str, str]:
    """The caller's transcript of ``session_id`` in ``language`` as a ``fmt`` document: (content type, body).
    A language without segments is an empty document. Refused: INVALID_PARAMETERS (the session id, language or
    format, naming the field), FORBIDDEN (another speaker's session), SESSION_NOT_FOUND (no such session, or it
    and its transcript are gone)."""
    session_id = validation.parse_session_id(session_id)
    language, fmt = validation.parse_transcript_request(language, fmt, function_settings.load().languages)
    entries = _owned(session_id, user_id)
    return transcripts.CONTENT_TYPES[fmt], transcripts.render((entry.segment for entry in entries), language, fmt)


def delete_transcript(session_id: Any, user_id: str) -> None:
    """Delete the caller's transcript of ``session_id`` at once (whatever TTL would have done later). A live
    session's later segments are recorded again. Refused as :func:`read_transcript`, and SERVICE_UNAVAILABLE
    when the store kept some (a repeat deletes the rest)."""
    session_id = validation.parse_session_id(session_id)
    entries = _owned(session_id, user_id)
    if entries:
        runtime.transcripts().delete_all(entries)
        logger.info("transcript deleted", extra={"session_id": session_id, "segments": len(entries)})


def _owned(session_id: str, user_id: str) -> list[TranscriptEntry]:
    """The entries of the caller's session with this id, in order (one GetItem for the session, one Query page
    per 1 MB of transcript): the live session's when the caller owns it; else those of the latest session with
    this id the caller owned. Someone else's only: FORBIDDEN; nothing at all: SESSION_NOT_FOUND."""
    now_s = messages.now_ms() // 1000
    session = runtime.sessions().get(session_id, now_s)
    entries = runtime.transcripts().of_session(session_id, now_s)
    if session is not None and session.speaker_user_id == user_id:
        return [e for e in entries if e.session_created_at_ms == session.created_at_ms and e.owner_id == user_id]
    own = [entry for entry in entries if entry.owner_id == user_id]
    if own:
        latest = max(entry.session_created_at_ms for entry in own)
        return [entry for entry in own if entry.session_created_at_ms == latest]
    if session is not None or entries:
        raise errors.another_speakers(session_id)
    raise errors.session_not_found(session_id)
