"""``sendAudio`` (and ``audioChunk``, the original speaker app's name for it): the speaker's audio, chunk by chunk,
into the session's audio buffer (the AudioChunks table), from which the session's transcription consumer reads it
in order (``docs/decisions/0001-...``): by sequence number, or by arrival for a chunk sent without one
(``docs/decisions/0034-...``).

A few chunks arrive every second, so a chunk costs one write: what the checks need of the session (its speaker
connection, whether it is active, the broadcast state) is read at most once per ``AUDIO_SESSION_CACHE_MS`` per
session and process (``runtime.session_reads()``); a pause, mute or volume 0 thus takes effect within that long.
A refusal is never made on a cached read from before the caller's handshake ended: a refreshed or resumed speaker's
new connection is checked against a fresh read, not one that still names its old connection.
"""

from __future__ import annotations

import secrets
from typing import Any

from lambda_src import runtime
from lambda_src.adapters.repositories.audio_chunks import AudioChunk
from lambda_src.adapters.transcription import starter
from lambda_src.app import speaker
from lambda_src.app.speaker import SpeakerRequest
from lambda_src.contract import errors, limits, wire
from lambda_src.model.caller import Caller
from lambda_src.model.session import Session
from lambda_src.platform import metrics
from lambda_src.platform.log import logger
from lambda_src.protocol import messages, validation
from lambda_src.protocol.validation import SendAudioRequest

# The chunk is validated first, then its session found as for every speaker action (the message's ``sessionId``, or
# the caller's connection's session).
parse = speaker.of_the_speaker(validation.parse_send_audio)


def _checked(session_id: str, caller: Caller) -> Session:
    """The live session whose speaker is the caller's connection, refused otherwise. A refusal is made only on a
    read taken after the caller's handshake surely ended (``HANDSHAKE_WINDOW_SECONDS`` after it connected): a
    refreshed or resumed speaker's connection takes over during its ``$connect``, so a read from before then may
    still name the old connection."""
    session = runtime.session_reads().get(session_id, caller.now_ms)
    if session is None or not session.is_active or session.speaker_connection_id != caller.connection_id:
        handshake_over_ms = caller.connected_at_ms + limits.HANDSHAKE_WINDOW_SECONDS * 1000
        session = runtime.session_reads().get(session_id, caller.now_ms, not_before_ms=handshake_over_ms)
    if session is None:
        raise errors.session_not_found(session_id)
    if not session.is_active:
        raise errors.session_ended(session_id)
    if session.speaker_connection_id != caller.connection_id:
        raise errors.not_the_speaker(session_id)
    return session


def _why_not_forwarded(session: Session) -> str | None:
    state = session.broadcast
    if state.forwards_audio:
        return None
    if state.is_paused:
        return wire.AUDIO_PAUSED
    return wire.AUDIO_MUTED if state.is_muted else wire.AUDIO_VOLUME_ZERO


def send_audio(request: SpeakerRequest[SendAudioRequest], caller: Caller) -> dict[str, Any]:
    """Store the chunk in the session's audio buffer (one conditional PutItem), unless the broadcast is paused,
    muted or at volume 0 (dropped, nothing written) or the chunk is stored already (dropped, counted and logged);
    then start the session's transcription consumer if, as the session was last read, none holds its lease
    (``starter.ensure_consumer``: at most one asynchronous invocation per lease period and process)."""
    session_id, chunk = request.session_id, request.asked
    session = _checked(session_id, caller)
    dropped_because = _why_not_forwarded(session)
    if dropped_because is not None:
        return messages.audio_received(chunk.sequence_number, dropped_because)
    stored = runtime.audio_chunks().put_new(
        AudioChunk(
            session_id=session_id,
            connection_id=caller.connection_id,
            connected_at_ms=caller.connected_at_ms,
            sequence_number=chunk.sequence_number,
            pcm=chunk.pcm,
            received_at_ms=caller.now_ms,
            chunk_id=chunk.chunk_id,
            client_timestamp_ms=chunk.timestamp_ms,
            arrived_at_ms=caller.arrived_at_ms,
            # Without the gateway's request id (never so behind API Gateway), a random one keeps chunks apart.
            request_id=caller.request_id or secrets.token_hex(8),
        )
    )
    # An unnumbered chunk's key holds its own request's id: when it is taken, it was this request's own retry after
    # an unanswered attempt that stored it (a client's resend is another request, stored again).
    if not stored and chunk.sequence_number is not None:
        metrics.duplicate_audio_chunk()
        logger.info(
            "duplicate audio chunk dropped",
            extra={"session_id": session_id, "sequence_number": chunk.sequence_number},
        )
        return messages.audio_received(chunk.sequence_number, wire.AUDIO_DUPLICATE)
    starter.ensure_consumer(session, caller.now_ms)
    return messages.audio_received(chunk.sequence_number)
