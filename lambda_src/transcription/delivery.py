"""Where the consumer's forwarded segments go: the speaker's ``transcript`` (and, for listeners, captions)."""

from __future__ import annotations

from lambda_src import fanout, messages
from lambda_src.repositories.sessions import Session
from lambda_src.transcription.processor import Segment


def deliver(session: Session, segment_id: str, segment: Segment, now_ms: int) -> None:
    """``transcript`` to the session's speaker while it is connected (a dropped speaker misses what is said in
    its absence: nothing is queued)."""
    if session.speaker_connected:
        message = messages.transcript(session.session_id, segment_id, segment, now_ms)
        fanout.post_quietly(session.speaker_connection_id, message)
