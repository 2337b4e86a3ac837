"""The rate limits, each a counter folded into the transaction of the operation it limits.

- session creation per speaker (user id) per hour;
- joins per session per minute (join/leave churn);
- accepted connections per source address per minute (the address is stored only as a keyed hash: HMAC-SHA256
  with the deployment's secret, which lives in the RateLimits table and nowhere else);
- active sessions per speaker: a set of session ids per speaker, added to by the creating transaction under
  the limit and taken from by the write that ends the session.
"""

from __future__ import annotations

import hashlib
import hmac

from lambda_src import runtime
from lambda_src.adapters.repositories.dynamodb import Guarded, TransactItem
from lambda_src.adapters.repositories.rate_limits import Limit
from lambda_src.contract import function_settings
from lambda_src.model.session import shard_key

_MINUTE = 60
_HOUR = 3600
_SOURCE_KEY_HEX_CHARACTERS = 32  # 128 bits of the HMAC: collisions between addresses are out of reach


def _guard(limit: Limit, key: str, now_s: int) -> Guarded:
    repository = runtime.rate_limits()
    return repository.count_item(limit, key, now_s), lambda _old: repository.refusal(limit, now_s)


def session_creations(user_id: str, now_s: int) -> Guarded:
    allowed = function_settings.load().sessions_per_user_per_hour
    return _guard(Limit("sessionsByUser", allowed, _HOUR, "sessions created by one speaker"), user_id, now_s)


def joins(session_id: str, now_s: int, *, allowance: int | None = None, shard: int | None = None) -> Guarded:
    """Joins of one session per minute; for a session with seat shards, one counter per shard (``shard``), each
    with its share of the session's ``allowance`` (decision record 0040: it sits beside the seat it limits, so it
    meets no transaction the seat does not)."""
    allowed = function_settings.load().joins_per_session_per_minute if allowance is None else allowance
    key = session_id if shard is None else shard_key(session_id, shard)
    return _guard(Limit("joinsBySession", allowed, _MINUTE, "joins of one session"), key, now_s)


def connection_attempts(source_ip: str | None, now_s: int) -> list[Guarded]:
    """The per-source limit, when API Gateway reported a source address."""
    if not source_ip:
        return []
    allowed = function_settings.load().connections_per_source_per_minute
    limit = Limit("connectionsBySource", allowed, _MINUTE, "connections from one address")
    return [_guard(limit, source_address_key(source_ip), now_s)]


def source_address_key(source_ip: str) -> str:
    """How a source address is stored: keyed with the deployment's secret, so that the address space cannot
    be hashed through to reverse it (an unkeyed SHA-256 of every IPv4 address takes hours)."""
    secret = runtime.rate_limits().source_address_secret()
    return hmac.new(secret, source_ip.encode("utf-8"), hashlib.sha256).hexdigest()[:_SOURCE_KEY_HEX_CHARACTERS]


class ActiveSessionLimitReached(Exception):
    """The speaker's active sessions are at the limit; ``listed``: the ids its item holds (some may be gone)."""

    def __init__(self, listed: set[str]) -> None:
        super().__init__(f"{len(listed)} active sessions")
        self.listed = listed


def active_session(user_id: str, session_id: str, created_s: int) -> Guarded:
    """The new session joins its speaker's active sessions, under the per-speaker limit; refused with
    :class:`ActiveSessionLimitReached`. The item lives until this session's lifetime ceiling."""
    config = function_settings.load()
    repository = runtime.rate_limits()
    allowed = config.max_active_sessions_per_speaker
    item = repository.add_active_session_item(user_id, session_id, allowed, created_s + config.lifetime_ceiling_seconds)
    return item, lambda old: ActiveSessionLimitReached(repository.active_session_ids(old))


def session_over(user_id: str, session_id: str, now_s: int) -> TransactItem:
    """The ending session leaves its speaker's active sessions (in the same transaction that ends it)."""
    ceiling = function_settings.load().lifetime_ceiling_seconds
    return runtime.rate_limits().remove_active_session_item(user_id, session_id, now_s + ceiling)
