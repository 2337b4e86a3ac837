"""Server messages as the service builds them (``lambda_src.protocol.messages``' builders and the error catalogue),
every
optional field both present and absent: what the client library parses and the AsyncAPI document describes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lambda_src.contract import wire
from lambda_src.contract.errors import ErrorCode, ServiceError, active_session_limit
from lambda_src.model.broadcast import BroadcastState
from lambda_src.model.partial_result_processor import Segment
from lambda_src.model.partial_results import PartialResultConfig
from lambda_src.model.session import Session
from lambda_src.protocol import messages

NOW_MS = 1_767_225_600_000
SESSION_ID = "golden-eagle-427"
STATE = BroadcastState(is_paused=True, is_muted=False, volume=Decimal("0.4"))
SESSION = Session(
    session_id=SESSION_ID,
    speaker_connection_id="speaker=",
    speaker_user_id="alice",
    source_language="en",
    quality_tier="standard",
    created_at_ms=NOW_MS - 90_000,
    expires_at_s=NOW_MS // 1000 + 3 * 3600,
    listener_count=2,
    config=PartialResultConfig(True, Decimal("0.85"), Decimal("5.0")),
    broadcast=STATE,
)


def built_by_the_service() -> list[dict[str, Any]]:
    """One message of each builder (and of each optional field's presence and absence)."""
    return [
        messages.session_created(SESSION, "speaker=", NOW_MS),
        messages.session_resumed(SESSION, "speaker2=", NOW_MS),
        messages.session_joined(SESSION_ID, "en", "standard", "es", "listener=", NOW_MS, listener_count=3),
        messages.session_joined(SESSION_ID, "en", "standard", "es", "listener=", NOW_MS),
        messages.connection_refresh_complete(SESSION, "listener", "es", "listener2=", NOW_MS),
        messages.connection_refresh_complete(SESSION, "speaker", None, "speaker2=", NOW_MS),
        messages.heartbeat_ack(NOW_MS),
        messages.connection_refresh_required(20, NOW_MS),
        messages.connection_warning(14, NOW_MS),
        messages.session_event("speakerDisconnected", SESSION_ID, NOW_MS, graceSeconds=120),
        messages.session_event("speakerReconnected", SESSION_ID, NOW_MS),
        messages.session_ended(SESSION_ID, wire.ENDED_BY_SPEAKER, NOW_MS),
        messages.session_event("sessionLeft", SESSION_ID, NOW_MS),
        messages.session_config_updated(SESSION, NOW_MS),
        messages.session_status(SESSION, {"es": 1, "fr": 1}, NOW_MS, wire.STATUS_REQUESTED),
        messages.broadcast_state(SESSION_ID, STATE, NOW_MS),
        *(messages.session_event(kind, SESSION_ID, NOW_MS) for kind in _BROADCAST_NOTICES),
        messages.volume_changed(SESSION_ID, STATE, NOW_MS),
        messages.speaker_state_changed(SESSION_ID, STATE, NOW_MS),
        messages.state_restored(SESSION_ID, STATE, NOW_MS),
        messages.language_changed(SESSION_ID, "ja", NOW_MS),
        messages.session_event("playbackPaused", SESSION_ID, NOW_MS),
        messages.session_event("playbackResumed", SESSION_ID, NOW_MS),
        messages.audio_received(7),
        messages.audio_received(8, wire.AUDIO_DUPLICATE),
        messages.audio_received(None),  # a chunk sent without a number
        messages.transcript(SESSION_ID, Segment("a1.r1-0", "hello every", True, 0.72, 0.0), NOW_MS),
        messages.transcript(SESSION_ID, Segment("a1.r1-0", "hello everyone", False, None, 0.0), NOW_MS),
        messages.caption(SESSION_ID, "a1.r1-0", "en", "es", "hola a todos", False, NOW_MS),
        messages.translated_audio(
            SESSION_ID,
            "a1.r1-0",
            "es",
            f"https://audio.example.com/audio/{SESSION_ID}/es/a1.r1-0.mp3?X-Amz-Expires=300",
            1.25,
            1,
            "hola a todos",
            NOW_MS,
        ),
        messages.output_set(SESSION_ID, wire.OUTPUT_AUDIO, NOW_MS),
        messages.audio_unavailable(SESSION_ID, "ja", NOW_MS),
        ServiceError(
            ErrorCode.INVALID_CONFIGURATION, "minStability must be 0.70-0.95", field="minStability"
        ).to_message(NOW_MS),
        ServiceError(ErrorCode.RATE_LIMIT_EXCEEDED, "too many", retry_after=12).to_message(NOW_MS, "sendAudio"),
        active_session_limit(3, ["a-b-101", "c-d-202", "e-f-303"]).to_message(NOW_MS),
    ]


_BROADCAST_NOTICES = ("broadcastPaused", "broadcastResumed", "broadcastMuted", "broadcastUnmuted")


def every_sample() -> list[dict[str, Any]]:
    """The service's messages, one of each builder's shapes."""
    return built_by_the_service()
