"""Runtime settings of a function, read once from the environment the stack sets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Final

from lambda_src import limits
from lambda_src.languages import SUPPORTED_LANGUAGES, parse_language_list

# Environment variable names: the stack sets them, the functions read them.
ENV_SESSIONS_TABLE: Final = "SESSIONS_TABLE"
ENV_CONNECTIONS_TABLE: Final = "CONNECTIONS_TABLE"
ENV_SESSION_LIFETIME_HOURS: Final = "SESSION_LIFETIME_HOURS"
ENV_MAX_LISTENERS: Final = "MAX_LISTENERS_PER_SESSION"
ENV_SUPPORTED_LANGUAGES: Final = "SUPPORTED_LANGUAGES"
ENV_CALLBACK_URL: Final = "CALLBACK_URL"
ENV_SPEAKER_GRACE_SECONDS: Final = "SPEAKER_GRACE_SECONDS"
ENV_RATE_LIMITS_TABLE: Final = "RATE_LIMITS_TABLE"
ENV_SESSIONS_PER_USER_PER_HOUR: Final = "SESSIONS_PER_USER_PER_HOUR"
ENV_JOINS_PER_SESSION_PER_MINUTE: Final = "JOINS_PER_SESSION_PER_MINUTE"
ENV_CONNECTIONS_PER_SOURCE_PER_MINUTE: Final = "CONNECTIONS_PER_SOURCE_PER_MINUTE"


@dataclass(frozen=True)
class Settings:
    sessions_table: str
    connections_table: str
    session_lifetime_seconds: int
    max_listeners: int
    languages: frozenset[str]
    callback_url: str | None
    speaker_grace_seconds: int
    rate_limits_table: str
    sessions_per_user_per_hour: int
    joins_per_session_per_minute: int
    connections_per_source_per_minute: int


@cache
def load() -> Settings:
    """The settings of this process; a missing table name is a deployment bug and fails loudly."""
    env = os.environ
    languages_override = env.get(ENV_SUPPORTED_LANGUAGES, "").strip()
    return Settings(
        sessions_table=env[ENV_SESSIONS_TABLE],
        connections_table=env[ENV_CONNECTIONS_TABLE],
        session_lifetime_seconds=int(
            float(env.get(ENV_SESSION_LIFETIME_HOURS, limits.DEFAULT_SESSION_LIFETIME_HOURS)) * 3600
        ),
        max_listeners=int(env.get(ENV_MAX_LISTENERS, limits.DEFAULT_MAX_LISTENERS_PER_SESSION)),
        languages=parse_language_list(languages_override) if languages_override else SUPPORTED_LANGUAGES,
        callback_url=env.get(ENV_CALLBACK_URL) or None,
        speaker_grace_seconds=int(env.get(ENV_SPEAKER_GRACE_SECONDS, limits.DEFAULT_SPEAKER_GRACE_SECONDS)),
        rate_limits_table=env.get(ENV_RATE_LIMITS_TABLE, ""),  # only the route functions use it
        sessions_per_user_per_hour=int(
            env.get(ENV_SESSIONS_PER_USER_PER_HOUR, limits.DEFAULT_SESSIONS_PER_USER_PER_HOUR)
        ),
        joins_per_session_per_minute=int(
            env.get(ENV_JOINS_PER_SESSION_PER_MINUTE, limits.DEFAULT_JOINS_PER_SESSION_PER_MINUTE)
        ),
        connections_per_source_per_minute=int(
            env.get(ENV_CONNECTIONS_PER_SOURCE_PER_MINUTE, limits.DEFAULT_CONNECTIONS_PER_SOURCE_PER_MINUTE)
        ),
    )
