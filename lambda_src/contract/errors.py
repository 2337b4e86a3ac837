"""The one error catalogue: code, HTTP status (the handshake status on ``$connect``) and meaning.

The error table of docs/protocol.md is checked against this module by a test, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from lambda_src.contract import routes


class ErrorCode(Enum):
    """An error a client can receive; ``value`` is ``(status, when)``."""

    INVALID_CONFIGURATION = (400, "a partial-result parameter is malformed or out of range")
    INVALID_PARAMETERS = (
        400,
        "language, quality tier, session id format, volume or broadcast state, missing required field",
    )
    INVALID_MESSAGE = (400, "frame not JSON / not an object / too large")
    INVALID_AUDIO_FORMAT = (400, "`sendAudio`'s `audioData` is not strict base64 of 16-bit PCM within the size bounds")
    UNKNOWN_ACTION = (400, "no such action")
    UNAUTHORIZED = (401, "missing, forged, expired or wrong-audience token where a speaker is required")
    FORBIDDEN = (403, "a listener or another user tries a speaker's action")
    SESSION_NOT_FOUND = (404, "no such session, or it expired")
    SESSION_ENDED = (410, "the session was ended")
    ACTIVE_SESSION_LIMIT = (409, "the speaker has its limit of active sessions; with `activeSessions` (ids to resume)")
    RATE_LIMIT_EXCEEDED = (429, "with `retryAfter` seconds")
    SESSION_FULL = (503, "the listener cap is reached (with seat shards: every shard is full)")
    SERVICE_UNAVAILABLE = (503, "DynamoDB throttled or failed after retries; with `retryAfter`")
    INTERNAL_ERROR = (500, "a bug; logged with a correlation id, never a stack trace to the client")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def when(self) -> str:
        return self.value[1]


class ServiceError(Exception):
    """A refusal the client is told about: a catalogue code, a message, the field at fault, and ``details``
    (further fields of the ``error`` message that tell the client what it can do instead)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.details = dict(details or {})

    def to_message(self, timestamp_ms: int, action: str | None = None) -> dict[str, Any]:
        """The ``error`` server message for this refusal; ``action``: the action of the message it answers (a client
        with chunks of audio in flight tells a chunk's refusal from its request's), None when it answers none."""
        body: dict[str, Any] = {
            "type": "error",
            "code": self.code.name,
            "message": self.message,
            "timestamp": timestamp_ms,
        }
        if action is not None:
            body[routes.ACTION] = action
        if self.field is not None:
            body["field"] = self.field
        if self.retry_after is not None:
            body["retryAfter"] = self.retry_after
        return body | self.details


# Refusals about a session, each worded once (``field`` is the request's ``sessionId``).
_SESSION_ID_FIELD = "sessionId"


def session_not_found(session_id: str) -> ServiceError:
    """No such session, or it expired."""
    return ServiceError(ErrorCode.SESSION_NOT_FOUND, f"no session {session_id}", field=_SESSION_ID_FIELD)


def session_ended(session_id: str) -> ServiceError:
    return ServiceError(ErrorCode.SESSION_ENDED, f"session {session_id} has ended", field=_SESSION_ID_FIELD)


def not_the_speaker(session_id: str) -> ServiceError:
    """This connection is not the session's current speaker connection."""
    return ServiceError(
        ErrorCode.FORBIDDEN, f"only the speaker of session {session_id} may do this", field=_SESSION_ID_FIELD
    )


def another_speakers(session_id: str) -> ServiceError:
    """The session is owned by another speaker (user id) than the caller."""
    return ServiceError(
        ErrorCode.FORBIDDEN, f"session {session_id} belongs to another speaker", field=_SESSION_ID_FIELD
    )


ACTIVE_SESSIONS_FIELD = "activeSessions"


def active_session_limit(limit: int, active_session_ids: Iterable[str]) -> ServiceError:
    """The speaker already has ``limit`` active sessions: their ids, so that the client can resume one."""
    ids = sorted(active_session_ids)
    return ServiceError(
        ErrorCode.ACTIVE_SESSION_LIMIT,
        f"at most {limit} active sessions per speaker; resume or end one of {', '.join(ids)}",
        details={ACTIVE_SESSIONS_FIELD: ids},
    )
