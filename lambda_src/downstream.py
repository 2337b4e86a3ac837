"""The typed reader downstream processors (transcription, translation) use to read a session's settings.

Usage from a function the stack granted read access (``SessionServiceStack.grant_downstream_read``)::

    from lambda_src.downstream import read_partial_result_config
    config = read_partial_result_config("golden-eagle-427")   # None when there is no live session
"""

from __future__ import annotations

from lambda_src import messages, runtime
from lambda_src.partial_results import PartialResultConfig


def read_partial_result_config(session_id: str) -> PartialResultConfig | None:
    """The live session's partial-result configuration (defaults for fields it predates), or None when
    there is no such session, it expired, or it ended."""
    session = runtime.sessions().get(session_id, messages.now_ms() // 1000)
    return session.config if session is not None and session.is_active else None
