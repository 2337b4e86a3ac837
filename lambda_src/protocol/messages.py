"""Server messages (JSON text frames). Every time value in them is epoch milliseconds (stored TTL attributes
stay in seconds: ``ms_of_seconds`` converts)."""

from __future__ import annotations

import json
import time
from typing import Any

from lambda_src.contract.wire import LISTENER_COUNT
from lambda_src.model.broadcast import BroadcastState
from lambda_src.model.partial_result_processor import Segment
from lambda_src.model.session import Session


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ms_of_seconds(epoch_seconds: int) -> int:
    """An epoch-seconds value (a stored TTL) as the epoch milliseconds every server message carries."""
    return epoch_seconds * 1000


def session_created(
    session: Session, connection_id: str, timestamp_ms: int, message_type: str = "sessionCreated"
) -> dict[str, Any]:
    """The seed's shape: type, sessionId, sourceLanguage, qualityTier, the three configuration fields,
    expiresAt, connectionId, timestamp (``sessionResumed`` has the same fields)."""
    return {
        "type": message_type,
        "sessionId": session.session_id,
        "sourceLanguage": session.source_language,
        "qualityTier": session.quality_tier,
        **session.config.to_message(),
        "expiresAt": ms_of_seconds(session.expires_at_s),
        "connectionId": connection_id,
        "timestamp": timestamp_ms,
    }


def session_joined(
    session_id: str,
    source_language: str,
    quality_tier: str,
    target_language: str,
    connection_id: str,
    timestamp_ms: int,
    listener_count: int | None = None,
) -> dict[str, Any]:
    """``listenerCount`` is the count with this listener counted in, which the join's transaction cannot
    return: left out (None) of a first message stored on the row, the welcome function fills it in."""
    message: dict[str, Any] = {
        "type": "sessionJoined",
        "sessionId": session_id,
        "sourceLanguage": source_language,
        "targetLanguage": target_language,
        "qualityTier": quality_tier,
        "connectionId": connection_id,
        "timestamp": timestamp_ms,
    }
    if listener_count is not None:
        message[LISTENER_COUNT] = listener_count
    return message


def session_resumed(session: Session, connection_id: str, timestamp_ms: int) -> dict[str, Any]:
    return session_created(session, connection_id, timestamp_ms, "sessionResumed")


def connection_refresh_complete(
    session: Session, role: str, target_language: str | None, connection_id: str, timestamp_ms: int
) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "connectionRefreshComplete", "sessionId": session.session_id, "role": role}
    if target_language is not None:
        message["targetLanguage"] = target_language
    message |= {"sourceLanguage": session.source_language, "connectionId": connection_id, "timestamp": timestamp_ms}
    return message


def heartbeat_ack(timestamp_ms: int) -> dict[str, Any]:
    return {"type": "heartbeatAck", "timestamp": timestamp_ms}


def connection_refresh_required(minutes_left: int, timestamp_ms: int) -> dict[str, Any]:
    """Sent once: open a new connection with ``refreshConnection`` before API Gateway closes this one."""
    return {"type": "connectionRefreshRequired", "minutesLeft": minutes_left, "timestamp": timestamp_ms}


def connection_warning(minutes_left: int, timestamp_ms: int) -> dict[str, Any]:
    return {"type": "connectionWarning", "minutesLeft": minutes_left, "timestamp": timestamp_ms}


def session_event(message_type: str, session_id: str, timestamp_ms: int, **fields: Any) -> dict[str, Any]:
    """What listeners are told about their session: ``speakerDisconnected``, ``speakerReconnected``,
    ``sessionEnded`` (with ``reason``), and a listener's own ``sessionLeft``."""
    return {"type": message_type, "sessionId": session_id, **fields, "timestamp": timestamp_ms}


def session_ended(session_id: str, reason: str, timestamp_ms: int) -> dict[str, Any]:
    return session_event("sessionEnded", session_id, timestamp_ms, reason=reason)


def session_config_updated(session: Session, timestamp_ms: int) -> dict[str, Any]:
    return {
        "type": "sessionConfigUpdated",
        "sessionId": session.session_id,
        **session.config.to_message(),
        "timestamp": timestamp_ms,
    }


def language_distribution(listeners_by_language: dict[str, int]) -> list[dict[str, Any]]:
    """``listenersByLanguage`` as the speaker app reads it: ``[{languageCode, count}]``, the largest audience first
    (then by language code)."""
    ordered = sorted(listeners_by_language.items(), key=lambda entry: (-entry[1], entry[0]))
    return [{"languageCode": language, "count": count} for language, count in ordered]


def session_status(
    session: Session, listeners_by_language: dict[str, int], timestamp_ms: int, update_reason: str
) -> dict[str, Any]:
    """The speaker's view of its session; ``update_reason`` says why it is sent (``STATUS_UPDATE_REASONS``)."""
    return {
        "type": "sessionStatus",
        "sessionId": session.session_id,
        "isActive": session.is_active,
        "speakerConnected": session.speaker_connected,
        "sourceLanguage": session.source_language,
        "qualityTier": session.quality_tier,
        LISTENER_COUNT: session.listener_count,
        "listenersByLanguage": listeners_by_language,
        "languageDistribution": language_distribution(listeners_by_language),
        **session.config.to_message(),
        "broadcastState": session.broadcast.to_message(),
        "createdAt": session.created_at_ms,
        "ageSeconds": max(0, (timestamp_ms - session.created_at_ms) // 1000),
        "expiresAt": ms_of_seconds(session.expires_at_s),
        "updateReason": update_reason,
        "timestamp": timestamp_ms,
    }


# -- broadcast state and listener controls -------------------------------------------------------------------
def broadcast_state(
    session_id: str, state: BroadcastState, timestamp_ms: int, message_type: str = "broadcastState"
) -> dict[str, Any]:
    """The complete broadcast state: the speaker's reply to each broadcast action (``broadcastState``), what
    listeners are told by ``speakerStateChanged``, and a refreshed or resumed speaker's ``stateRestored``."""
    return session_event(message_type, session_id, timestamp_ms, **state.to_message())


def speaker_state_changed(session_id: str, state: BroadcastState, timestamp_ms: int) -> dict[str, Any]:
    return broadcast_state(session_id, state, timestamp_ms, "speakerStateChanged")


def state_restored(session_id: str, state: BroadcastState, timestamp_ms: int) -> dict[str, Any]:
    return broadcast_state(session_id, state, timestamp_ms, "stateRestored")


def volume_changed(session_id: str, state: BroadcastState, timestamp_ms: int) -> dict[str, Any]:
    return session_event("volumeChanged", session_id, timestamp_ms, volumeLevel=float(state.volume))


def language_changed(session_id: str, target_language: str, timestamp_ms: int) -> dict[str, Any]:
    return session_event("languageChanged", session_id, timestamp_ms, targetLanguage=target_language)


def audio_received(sequence_number: int | None, dropped_because: str | None = None) -> dict[str, Any]:
    """The speaker's reply to each ``sendAudio`` and ``audioChunk``, kept small (a few arrive every second): the
    chunk's sequence number (none for a chunk sent without one: the service numbers nothing, decision record 0035)
    and whether it was stored; when not, why (no time stamp: the client knows when it sent it)."""
    message: dict[str, Any] = {"type": "audioReceived"}
    if sequence_number is not None:
        message["sequenceNumber"] = sequence_number
    if dropped_because is None:
        return message | {"accepted": True}
    return message | {"accepted": False, "reason": dropped_because}


def transcript(session_id: str, segment: Segment, timestamp_ms: int) -> dict[str, Any]:
    """A forwarded segment, to the speaker: a later one with the same ``segmentId`` supersedes a partial."""
    message: dict[str, Any] = {
        "type": "transcript",
        "sessionId": session_id,
        "segmentId": segment.segment_id,
        "text": segment.text,
        "isPartial": segment.is_partial,
    }
    if segment.stability is not None:
        message["stability"] = round(segment.stability, 3)
    message["timestamp"] = timestamp_ms
    return message


# -- captions ------------------------------------------------------------------------------------------------
def caption(
    session_id: str,
    segment_id: str,
    source_language: str,
    target_language: str,
    text: str,
    is_partial: bool,
    timestamp_ms: int,
) -> dict[str, Any]:
    """One segment of the speaker's speech for the listeners of ``target_language``: ``text`` is the source text
    when the two languages are the same, else its translation. A later caption with the same ``segmentId``
    replaces an earlier partial one; a final one (``isPartial`` false) is kept (empty text: the segment was
    withdrawn)."""
    return {
        "type": "caption",
        "sessionId": session_id,
        "segmentId": segment_id,
        "sourceLanguage": source_language,
        "targetLanguage": target_language,
        "text": text,
        "isPartial": is_partial,
        "timestamp": timestamp_ms,
    }


# -- speech ----------------------------------------------------------------------------------------------------
def translated_audio(
    session_id: str,
    segment_id: str,
    target_language: str,
    url: str,
    duration_seconds: float,
    sequence_number: int,
    transcript_text: str,
    timestamp_ms: int,
) -> dict[str, Any]:
    """A final segment spoken in ``target_language``, for its listeners who want audio (the original listener
    app's only content): ``url`` a short-lived GET URL of the audio, played in ``sequenceNumber`` order
    (consecutive from 1 per session and language); ``transcript`` the text spoken, the caption's own."""
    return {
        "type": "translatedAudio",
        "sessionId": session_id,
        "targetLanguage": target_language,
        "url": url,
        "timestamp": timestamp_ms,
        "duration": round(duration_seconds, 3),
        "sequenceNumber": sequence_number,
        "transcript": transcript_text,
        "segmentId": segment_id,
    }


def output_set(session_id: str, output: str, timestamp_ms: int) -> dict[str, Any]:
    """The reply to ``setOutput``: what the listener receives from the next segment on."""
    return session_event("outputSet", session_id, timestamp_ms, output=output)


def audio_unavailable(session_id: str, target_language: str, timestamp_ms: int) -> dict[str, Any]:
    """Told once to a listener that wants audio in a language no voice speaks: it gets captions only."""
    return session_event("audioUnavailable", session_id, timestamp_ms, targetLanguage=target_language)


def encode(message: dict[str, Any]) -> str:
    """Compact JSON text. A message quoting an unpaired surrogate a client sent (which cannot be UTF-8)
    is escaped instead, so every frame stays valid UTF-8 text."""
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(message, separators=(",", ":"))
    return text


# Every server message type (``error`` comes from errors.ServiceError); docs/protocol.md documents each of them.
SERVER_MESSAGE_TYPES = (
    "sessionCreated",
    "sessionResumed",
    "sessionJoined",
    "connectionRefreshComplete",
    "heartbeatAck",
    "connectionRefreshRequired",
    "connectionWarning",
    "speakerDisconnected",
    "speakerReconnected",
    "sessionEnded",
    "sessionLeft",
    "sessionConfigUpdated",
    "sessionStatus",
    "broadcastState",
    "broadcastPaused",
    "broadcastResumed",
    "broadcastMuted",
    "broadcastUnmuted",
    "volumeChanged",
    "speakerStateChanged",
    "stateRestored",
    "languageChanged",
    "playbackPaused",
    "playbackResumed",
    "audioReceived",
    "transcript",
    "caption",
    "translatedAudio",
    "outputSet",
    "audioUnavailable",
    "error",
)
