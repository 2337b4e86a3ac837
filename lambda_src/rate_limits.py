"""The rate limits, each a counter folded into the transaction of the operation it limits.

- session creation per speaker (user id) per hour;
- joins per session per minute (join/leave churn);
- accepted connections per source address per minute (the address is stored only as a hash).
"""

from __future__ import annotations

import hashlib

from lambda_src import runtime, settings
from lambda_src.repositories.dynamodb import Guarded
from lambda_src.repositories.rate_limits import Limit

_MINUTE = 60
_HOUR = 3600


def _guard(limit: Limit, key: str, now_s: int) -> Guarded:
    repository = runtime.rate_limits()
    return repository.count_item(limit, key, now_s), lambda _old: repository.refusal(limit, now_s)


def session_creations(user_id: str, now_s: int) -> Guarded:
    allowed = settings.load().sessions_per_user_per_hour
    return _guard(Limit("sessionsByUser", allowed, _HOUR, "sessions created by one speaker"), user_id, now_s)


def joins(session_id: str, now_s: int) -> Guarded:
    allowed = settings.load().joins_per_session_per_minute
    return _guard(Limit("joinsBySession", allowed, _MINUTE, "joins of one session"), session_id, now_s)


def connection_attempts(source_ip: str | None, now_s: int) -> list[Guarded]:
    """The per-source limit, when API Gateway reported a source address."""
    if not source_ip:
        return []
    allowed = settings.load().connections_per_source_per_minute
    digest = hashlib.sha256(source_ip.encode("utf-8")).hexdigest()[:32]
    return [_guard(Limit("connectionsBySource", allowed, _MINUTE, "connections from one address"), digest, now_s)]
