"""Starting a session's transcription consumer: an asynchronous invocation of the transcriber function
(``TRANSCRIBER_FUNCTION``, set by the stack), by the message function when a chunk arrives for a session whose
consumer lease has lapsed, and by a consumer handing over to its successor.

The message function asks at most once per ``TRANSCRIBER_LEASE_SECONDS`` per session and process: its view of
the lease is its cached session read (at most ``AUDIO_SESSION_CACHE_MS`` old), so a consumer that has just
started is not yet visible to it; a second invocation started meanwhile finds the lease held and returns.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any, Final

from botocore.config import Config

from lambda_src.contract import limits
from lambda_src.contract.function_settings import ENV_TRANSCRIBER_FUNCTION
from lambda_src.model.session import Session
from lambda_src.platform import aws
from lambda_src.platform.log import logger

# The event the transcriber function takes.
SESSION_ID: Final = "sessionId"
HANDED_OVER_BY: Final = "handedOverBy"

# An asynchronous invocation is queued by Lambda in milliseconds; it is not waited out when Lambda is slow (the
# next chunk asks again once the memo below lapses).
_CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=1, read_timeout=2)
_asked_at_ms: dict[str, int] = {}  # session id -> when this process last started its consumer
_MEMO_SIZE = 1024


@cache
def client() -> Any:
    return aws.create_client("lambda", config=_CLIENT_CONFIG)


def start(session_id: str, handed_over_by: str | None = None, *, function: str | None = None) -> bool:
    """Invoke the transcriber function (``function``, by default ``TRANSCRIBER_FUNCTION``) for ``session_id``
    asynchronously; whether Lambda took the event (a failure is logged, never raised: the audio waits in the
    buffer and the next chunk asks again)."""
    function = function or os.environ.get(ENV_TRANSCRIBER_FUNCTION)
    if not function:
        logger.warning("no transcriber function configured", extra={"session_id": session_id})
        return False
    event = {SESSION_ID: session_id, **({HANDED_OVER_BY: handed_over_by} if handed_over_by else {})}
    try:
        client().invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode())
    except Exception:
        logger.exception("transcription consumer not started", extra={"session_id": session_id})
        return False
    return True


def ensure_consumer(session: Session, now_ms: int) -> bool:
    """Start the session's consumer unless its lease is live (as ``session`` was read) or this process started
    one within the last ``TRANSCRIBER_LEASE_SECONDS``; whether it asked for one now."""
    lease = session.transcriber
    if lease is not None and lease.live_at(now_ms):
        return False
    asked = _asked_at_ms.get(session.session_id)
    if asked is not None and 0 <= now_ms - asked < limits.TRANSCRIBER_LEASE_SECONDS * 1000:
        return False
    _asked_at_ms.pop(session.session_id, None)
    if len(_asked_at_ms) >= _MEMO_SIZE:
        _asked_at_ms.pop(next(iter(_asked_at_ms)))
    _asked_at_ms[session.session_id] = now_ms
    return start(session.session_id)


def forget() -> None:
    """Forget which consumers this process started (tests)."""
    _asked_at_ms.clear()
