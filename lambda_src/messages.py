"""Server messages (JSON text frames). Timestamps are epoch milliseconds."""

from __future__ import annotations

import json
import time
from typing import Any

from lambda_src.repositories.sessions import Session


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def session_created(session: Session, connection_id: str, timestamp_ms: int) -> dict[str, Any]:
    """The seed's exact shape: type, sessionId, sourceLanguage, qualityTier, the three configuration
    fields, connectionId, timestamp."""
    return {
        "type": "sessionCreated",
        "sessionId": session.session_id,
        "sourceLanguage": session.source_language,
        "qualityTier": session.quality_tier,
        **session.config.to_message(),
        "connectionId": connection_id,
        "timestamp": timestamp_ms,
    }


def session_joined(
    session_id: str, source_language: str, target_language: str, connection_id: str, timestamp_ms: int
) -> dict[str, Any]:
    return {
        "type": "sessionJoined",
        "sessionId": session_id,
        "sourceLanguage": source_language,
        "targetLanguage": target_language,
        "connectionId": connection_id,
        "timestamp": timestamp_ms,
    }


def heartbeat_ack(timestamp_ms: int) -> dict[str, Any]:
    return {"type": "heartbeatAck", "timestamp": timestamp_ms}


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)
