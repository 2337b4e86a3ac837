"""Runtime settings of a function, read once from the environment the stack sets.

:data:`FUNCTION_SETTINGS` declares each per-environment setting once: its name (the CDK configuration's key;
camelCased, the ``-c`` context key), the environment variable that carries it, its kind and its default
(from :mod:`lambda_src.contract.limits`). The loader below, the stack's function environment
(``cdk_app/websocket_api.py``), the CDK configuration (``cdk_app/config.py``) and the tests all read this
table. A setting with ``choices`` accepts only those values, at synth and when a function starts; so does one with
a ``check`` (``pollyVoices``: a voice for a supported language, of Polly's form). This module
imports nothing from outside the standard library, so ``cdk synth`` needs only ``requirements.txt``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from lambda_src.contract import limits, session_id_words, voices
from lambda_src.contract.languages import SUPPORTED_LANGUAGES, parse_language_list


@dataclass(frozen=True)
class FunctionSetting:
    """One per-environment setting of the functions, as the stack configures it and the functions read it."""

    name: str  # the CDK configuration's key (snake_case); its camelCase form is the context key
    env_var: str  # the variable the stack sets and the functions read
    kind: type  # int or str: what the CDK configuration holds
    default: int | str
    attribute: str  # the :class:`Settings` field it becomes
    # raw environment value -> the Settings value; None: the value as ``kind`` reads it
    read: Callable[[str], Any] | None = None
    minimum: int | None = None  # the smallest value the CDK configuration accepts (ints)
    maximum: int | None = None  # the largest value the CDK configuration accepts (ints)
    choices: tuple[str, ...] | None = None  # the only values the CDK configuration accepts (strs)
    # raises ValueError (saying why) for a value the functions would refuse: the CDK configuration refuses it too
    check: Callable[[str], object] | None = None

    @property
    def context_key(self) -> str:
        first, *rest = self.name.split("_")
        return first + "".join(part.capitalize() for part in rest)

    def environment_value(self, value: int | str) -> str | None:
        """The variable's value for a configured value; None leaves the variable unset (the code's default)."""
        text = str(value)
        return text or None

    def parse(self, raw: str | None) -> Any:
        text = str(self.default) if raw is None or raw.strip() == "" else raw
        return self.read(text) if self.read is not None else self.kind(text)


def _hours_to_seconds(raw: str) -> int:
    return int(float(raw) * 3600)


def _days_to_seconds(raw: str) -> int:
    return int(float(raw) * 86400)


def _languages(raw: str) -> frozenset[str]:
    return parse_language_list(raw) if raw.strip() else SUPPORTED_LANGUAGES


def _polly_voices(raw: str) -> dict[str, voices.PollyVoice]:
    try:
        return voices.parse_polly_voices(raw)
    except ValueError as error:
        raise ValueError(f"{ENV_POLLY_VOICES}: {error}") from None


def _vocabulary(raw: str) -> str:
    name = raw.strip()
    if name not in session_id_words.VOCABULARIES:
        names = ", ".join(session_id_words.VOCABULARIES)
        raise ValueError(f"{ENV_SESSION_ID_VOCABULARY} must be one of {names}, got {raw!r}")
    return name


SESSION_LIFETIME_HOURS: Final = FunctionSetting(
    "session_lifetime_hours",
    "SESSION_LIFETIME_HOURS",
    int,
    limits.DEFAULT_SESSION_LIFETIME_HOURS,
    "session_lifetime_seconds",
    read=_hours_to_seconds,
    minimum=1,
)
MAX_SESSION_LIFETIME_HOURS: Final = FunctionSetting(
    "max_session_lifetime_hours",
    "MAX_SESSION_LIFETIME_HOURS",
    int,
    limits.DEFAULT_MAX_SESSION_LIFETIME_HOURS,
    "max_session_lifetime_seconds",
    read=_hours_to_seconds,
    minimum=1,
)
MAX_ACTIVE_SESSIONS_PER_SPEAKER: Final = FunctionSetting(
    "max_active_sessions_per_speaker",
    "MAX_ACTIVE_SESSIONS_PER_SPEAKER",
    int,
    limits.DEFAULT_MAX_ACTIVE_SESSIONS_PER_SPEAKER,
    "max_active_sessions_per_speaker",
    minimum=1,
)
MAX_LISTENERS_PER_SESSION: Final = FunctionSetting(
    "max_listeners_per_session",
    "MAX_LISTENERS_PER_SESSION",
    int,
    limits.DEFAULT_MAX_LISTENERS_PER_SESSION,
    "max_listeners",
    minimum=1,
    # Above 500 a session counts its listeners on seat shards (decision record 0040), at most 100 of 100 seats.
    maximum=limits.MAX_LISTENERS_PER_SESSION_CEILING,
)
SPEAKER_GRACE_SECONDS: Final = FunctionSetting(
    "speaker_grace_seconds",
    "SPEAKER_GRACE_SECONDS",
    int,
    limits.DEFAULT_SPEAKER_GRACE_SECONDS,
    "speaker_grace_seconds",
    minimum=1,
)
SESSIONS_PER_USER_PER_HOUR: Final = FunctionSetting(
    "sessions_per_user_per_hour",
    "SESSIONS_PER_USER_PER_HOUR",
    int,
    limits.DEFAULT_SESSIONS_PER_USER_PER_HOUR,
    "sessions_per_user_per_hour",
    minimum=1,
)
JOINS_PER_SESSION_PER_MINUTE: Final = FunctionSetting(
    "joins_per_session_per_minute",
    "JOINS_PER_SESSION_PER_MINUTE",
    int,
    limits.DEFAULT_JOINS_PER_SESSION_PER_MINUTE,
    "joins_per_session_per_minute",
    minimum=1,
)
CONNECTIONS_PER_SOURCE_PER_MINUTE: Final = FunctionSetting(
    "connections_per_source_per_minute",
    "CONNECTIONS_PER_SOURCE_PER_MINUTE",
    int,
    limits.DEFAULT_CONNECTIONS_PER_SOURCE_PER_MINUTE,
    "connections_per_source_per_minute",
    minimum=1,
)
# Comma-separated ISO 639-1 codes; empty (the default): the code's full list, and the variable is not set.
SUPPORTED_LANGUAGES_SETTING: Final = FunctionSetting(
    "supported_languages",
    "SUPPORTED_LANGUAGES",
    str,
    "",
    "languages",
    read=_languages,
)

# The word lists session ids are drawn from (lambda_src.contract.session_id_words.VOCABULARIES): general, or themed.
SESSION_ID_VOCABULARY: Final = FunctionSetting(
    "session_id_vocabulary",
    "SESSION_ID_VOCABULARY",
    str,
    session_id_words.DEFAULT_VOCABULARY,
    "session_id_vocabulary",
    read=_vocabulary,
    choices=tuple(session_id_words.VOCABULARIES),
)

# How long a session's transcript is kept after the session started (DynamoDB's TTL on the Transcripts table).
TRANSCRIPT_RETENTION_DAYS: Final = FunctionSetting(
    "transcript_retention_days",
    "TRANSCRIPT_RETENTION_DAYS",
    int,
    limits.DEFAULT_TRANSCRIPT_RETENTION_DAYS,
    "transcript_retention_seconds",
    read=_days_to_seconds,
    minimum=1,
)

# The Polly voice of each language named, over the code's table (lambda_src.contract.voices.POLLY_VOICES):
# ``language:VoiceId[:neural|standard[:LanguageCode]]`` separated by commas; empty (the default): the table alone,
# and the variable is not set. Every function is told it: the transcriber speaks with it, and a listener's join or
# language change is told at once when its language has no voice.
POLLY_VOICES_SETTING: Final = FunctionSetting(
    "polly_voices",
    "POLLY_VOICES",
    str,
    "",
    "polly_voices",
    read=_polly_voices,
    check=voices.parse_polly_voices,
)

FUNCTION_SETTINGS: Final = (
    SESSION_LIFETIME_HOURS,
    MAX_LISTENERS_PER_SESSION,
    SPEAKER_GRACE_SECONDS,
    SESSIONS_PER_USER_PER_HOUR,
    JOINS_PER_SESSION_PER_MINUTE,
    CONNECTIONS_PER_SOURCE_PER_MINUTE,
    SUPPORTED_LANGUAGES_SETTING,
    SESSION_ID_VOCABULARY,
    MAX_SESSION_LIFETIME_HOURS,
    MAX_ACTIVE_SESSIONS_PER_SPEAKER,
    TRANSCRIPT_RETENTION_DAYS,
    POLLY_VOICES_SETTING,
)

# Set by the stack from its own resources, not configured per environment.
ENV_SESSIONS_TABLE: Final = "SESSIONS_TABLE"
ENV_CONNECTIONS_TABLE: Final = "CONNECTIONS_TABLE"
ENV_RATE_LIMITS_TABLE: Final = "RATE_LIMITS_TABLE"
ENV_AUDIO_CHUNKS_TABLE: Final = "AUDIO_CHUNKS_TABLE"
ENV_TRANSCRIPTS_TABLE: Final = "TRANSCRIPTS_TABLE"
# The bucket the transcriber keeps listeners' spoken segments in (decision record 0039); only it is given the name.
ENV_AUDIO_BUCKET: Final = "AUDIO_BUCKET"
ENV_CALLBACK_URL: Final = "CALLBACK_URL"
# The speaker tokens' verifier (the stack's user pool, or the local dev issuer): its JWKS, issuer and app client.
ENV_JWKS_URL: Final = "TOKEN_JWKS_URL"
ENV_ISSUER: Final = "TOKEN_ISSUER"
ENV_CLIENT_ID: Final = "TOKEN_CLIENT_ID"
# The function that runs a session's transcription consumer (what the message function invokes).
ENV_TRANSCRIBER_FUNCTION: Final = "TRANSCRIBER_FUNCTION"
# The function that posts a big session's segments, shard group by shard group (what the transcriber invokes;
# decision record 0040).
ENV_FANOUT_FUNCTION: Final = "FANOUT_FUNCTION"
# The audience (listeners) up to which the transcriber posts itself, and the listeners of one fan-out invocation:
# never set by the stack (``limits.LOCAL_FANOUT_SHARDS`` and ``limits.SHARDS_PER_FANOUT`` shards of
# ``limits.SEATS_PER_SHARD``); the tests and the local run's integration test set them low to fan out a small
# audience.
ENV_LOCAL_FANOUT_LISTENERS: Final = "LOCAL_FANOUT_LISTENERS"
ENV_FANOUT_GROUP_LISTENERS: Final = "FANOUT_GROUP_LISTENERS"
# How much faster than API Gateway's the connections' clocks run: the local run's ``GATEWAY_TIME_SCALE``, which
# its gateway applies to the idle timeout and the 2-hour lifetime, and the functions to the refresh notice and the
# warnings (``limits.REFRESH_REQUIRED_AT_MINUTES``...). Never set by the stack: deployed, it is 1.
ENV_CONNECTION_TIME_SCALE: Final = "CONNECTION_TIME_SCALE"
# The variables of the per-environment settings, under the names the code has always used.
ENV_SESSION_LIFETIME_HOURS: Final = SESSION_LIFETIME_HOURS.env_var
ENV_MAX_LISTENERS: Final = MAX_LISTENERS_PER_SESSION.env_var
ENV_SPEAKER_GRACE_SECONDS: Final = SPEAKER_GRACE_SECONDS.env_var
ENV_SESSIONS_PER_USER_PER_HOUR: Final = SESSIONS_PER_USER_PER_HOUR.env_var
ENV_JOINS_PER_SESSION_PER_MINUTE: Final = JOINS_PER_SESSION_PER_MINUTE.env_var
ENV_CONNECTIONS_PER_SOURCE_PER_MINUTE: Final = CONNECTIONS_PER_SOURCE_PER_MINUTE.env_var
ENV_SUPPORTED_LANGUAGES: Final = SUPPORTED_LANGUAGES_SETTING.env_var
ENV_SESSION_ID_VOCABULARY: Final = SESSION_ID_VOCABULARY.env_var
ENV_MAX_SESSION_LIFETIME_HOURS: Final = MAX_SESSION_LIFETIME_HOURS.env_var
ENV_MAX_ACTIVE_SESSIONS_PER_SPEAKER: Final = MAX_ACTIVE_SESSIONS_PER_SPEAKER.env_var
ENV_TRANSCRIPT_RETENTION_DAYS: Final = TRANSCRIPT_RETENTION_DAYS.env_var
ENV_POLLY_VOICES: Final = POLLY_VOICES_SETTING.env_var


def parse_time_scale(raw: str | None) -> float:
    """A time scale (``CONNECTION_TIME_SCALE``, ``GATEWAY_TIME_SCALE``): a positive, finite number; unset or
    empty: 1."""
    text = (raw or "").strip() or "1"
    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"a time scale must be a positive number, got {raw!r}")
    return scale


def defaults() -> dict[str, int | str]:
    """Every per-environment setting at its default, by name (the CDK configuration's starting point)."""
    return {setting.name: setting.default for setting in FUNCTION_SETTINGS}


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
    session_id_vocabulary: str
    max_session_lifetime_seconds: int
    max_active_sessions_per_speaker: int
    transcript_retention_seconds: int
    polly_voices: dict[str, voices.PollyVoice]  # the overrides only, by language (merged over the table by its user)
    audio_chunks_table: str = ""
    transcripts_table: str = ""
    audio_bucket: str = ""
    connection_time_scale: float = 1.0

    @property
    def lifetime_ceiling_seconds(self) -> int:
        """How long after its creation a session may at most be kept alive by its speaker's refreshes (the
        configured ceiling, never below the lifetime itself)."""
        return max(self.max_session_lifetime_seconds, self.session_lifetime_seconds)


@cache
def load() -> Settings:
    """The settings of this process; a missing table name is a deployment bug and fails loudly."""
    env = os.environ
    return Settings(
        sessions_table=env[ENV_SESSIONS_TABLE],
        connections_table=env[ENV_CONNECTIONS_TABLE],
        callback_url=env.get(ENV_CALLBACK_URL) or None,
        rate_limits_table=env.get(ENV_RATE_LIMITS_TABLE, ""),  # only the route functions use it
        audio_chunks_table=env.get(ENV_AUDIO_CHUNKS_TABLE, ""),
        transcripts_table=env.get(ENV_TRANSCRIPTS_TABLE, ""),  # the transcriber and the transcript routes
        audio_bucket=env.get(ENV_AUDIO_BUCKET, ""),  # the transcriber
        connection_time_scale=parse_time_scale(env.get(ENV_CONNECTION_TIME_SCALE)),  # the local run's only
        **{setting.attribute: setting.parse(env.get(setting.env_var)) for setting in FUNCTION_SETTINGS},
    )
