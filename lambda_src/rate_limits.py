"""The rate limits, each a counter folded into the transaction of the operation it limits.

- session creation per speaker (user id) per hour;
- joins per session per minute (join/leave churn);
- accepted connections per source address per minute (the address is stored only as a keyed hash: HMAC-SHA256
  with the deployment's secret, which lives in the RateLimits table and nowhere else).
"""

from __future__ import annotations

import hashlib
import hmac

from lambda_src import runtime, settings
from lambda_src.repositories.dynamodb import Guarded
from lambda_src.repositories.rate_limits import Limit

_MINUTE = 60
_HOUR = 3600
_SOURCE_KEY_HEX_CHARACTERS = 32  # 128 bits of the HMAC: collisions between addresses are out of reach


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
    limit = Limit("connectionsBySource", allowed, _MINUTE, "connections from one address")
    return [_guard(limit, source_address_key(source_ip), now_s)]


def source_address_key(source_ip: str) -> str:
    """How a source address is stored: keyed with the deployment's secret, so that the address space cannot
    be hashed through to reverse it (an unkeyed SHA-256 of every IPv4 address takes hours)."""
    secret = runtime.rate_limits().source_address_secret()
    return hmac.new(secret, source_ip.encode("utf-8"), hashlib.sha256).hexdigest()[:_SOURCE_KEY_HEX_CHARACTERS]
