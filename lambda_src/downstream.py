"""The typed reader downstream processors (transcription, translation, the audio path) use to read a session's
settings: its partial-result configuration and, beside it, the speaker's broadcast state.

Usage from a function the stack granted read access (``SessionServiceStack.grant_downstream_read``)::

    from lambda_src.downstream import read_partial_result_config, read_session_settings
    config = read_partial_result_config("golden-eagle-427")   # None when there is no live session
    settings = read_session_settings("golden-eagle-427")      # both, from one read
    if settings is not None and settings.broadcast.forwards_audio: ...   # not paused, not muted, volume above 0
"""

from __future__ import annotations

from dataclasses import dataclass

from lambda_src import messages, runtime
from lambda_src.broadcast import BroadcastState
from lambda_src.partial_results import PartialResultConfig
from lambda_src.repositories.sessions import Session


@dataclass(frozen=True)
class SessionSettings:
    """What a downstream processor reads of a live session: the partial-result configuration and the broadcast
    state (the audio path stops forwarding while it is paused or muted)."""

    partial_results: PartialResultConfig
    broadcast: BroadcastState


def _live_session(session_id: str) -> Session | None:
    session = runtime.sessions().get(session_id, messages.now_ms() // 1000)
    return session if session is not None and session.is_active else None


def read_partial_result_config(session_id: str) -> PartialResultConfig | None:
    """The live session's partial-result configuration (defaults for fields it predates), or None when
    there is no such session, it expired, or it ended."""
    session = _live_session(session_id)
    return session.config if session is not None else None


def read_session_settings(session_id: str) -> SessionSettings | None:
    """The live session's partial-result configuration and broadcast state (one read; defaults for fields the
    item predates), or None when there is no such session, it expired, or it ended."""
    session = _live_session(session_id)
    return SessionSettings(session.config, session.broadcast) if session is not None else None
