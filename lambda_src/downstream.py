"""The typed API of downstream processors (transcription, translation, synthesis, the audio path): a session's
settings (its partial-result configuration and, beside it, the speaker's broadcast state), its listeners by
language, and posting to the listeners of one language.

Reading, from a function the stack granted read access (``SessionServiceStack.grant_downstream_read``)::

    from lambda_src.downstream import read_partial_result_config, read_session_settings
    config = read_partial_result_config("golden-eagle-427")   # None when there is no live session
    settings = read_session_settings("golden-eagle-427")      # both, from one read
    if settings is not None and settings.broadcast.forwards_audio: ...   # not paused, not muted, volume above 0

Posting, from a function granted ``SessionServiceStack.grant_downstream`` (the listener index, ``@connections``
and the write that counts a vanished listener out)::

    from lambda_src.downstream import broadcast, listeners_by_language
    listeners_by_language("golden-eagle-427")                 # {"de": ["L0SM9cOFvHcCIhw="], "es": [...]}
    report = broadcast("golden-eagle-427", "es", {"type": "audioSegment", "sessionId": "golden-eagle-427", ...})
    report.delivered, report.gone                             # what happened to each listener of "es"

A listener that answers 410 Gone past its handshake is counted out exactly as its ``$disconnect`` would (its row
removed and the session's ``listenerCount`` decremented by the one write that removes it, ``ListenersLeft``):
never write to the service's tables directly, or the count is no longer exact.
"""

from __future__ import annotations

# The API's one home is lambda_src.app.downstream (a use case like the others); this module is where downstream
# processors import it from, as the docs promise.
from lambda_src.app.downstream import (
    BroadcastReport,
    PendingBroadcast,
    SessionSettings,
    broadcast,
    listeners_by_language,
    read_partial_result_config,
    read_session_settings,
    start_broadcast,
)

__all__ = [
    "SessionSettings",
    "read_partial_result_config",
    "read_session_settings",
    "listeners_by_language",
    "BroadcastReport",
    "PendingBroadcast",
    "start_broadcast",
    "broadcast",
]
