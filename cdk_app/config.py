"""Typed per-environment configuration, chosen with ``-c env=dev|staging|prod`` (default ``dev``).

Single values can be overridden from context too, e.g. ``-c maxListenersPerSession=800``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs

from lambda_src import limits

ENV_CONTEXT_KEY = "env"
DEFAULT_ENVIRONMENT = "dev"


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything that differs between environments. Field names double as context override keys."""

    name: str
    retain_data: bool
    point_in_time_recovery: bool
    deletion_protection: bool
    log_retention_days: int
    throttle_rate_limit: float
    throttle_burst_limit: int
    session_lifetime_hours: int = limits.DEFAULT_SESSION_LIFETIME_HOURS
    max_listeners_per_session: int = limits.DEFAULT_MAX_LISTENERS_PER_SESSION
    speaker_grace_seconds: int = limits.DEFAULT_SPEAKER_GRACE_SECONDS
    supported_languages: str = ""  # comma-separated ISO 639-1 codes; empty: the code's full list
    user_pool_id: str = ""  # an existing Cognito user pool to trust; empty: the stack creates one
    user_pool_client_id: str = ""

    @property
    def stack_name(self) -> str:
        return f"SessionService-{self.name}"

    @property
    def removal_policy(self) -> RemovalPolicy:
        return RemovalPolicy.RETAIN if self.retain_data else RemovalPolicy.DESTROY

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION_BY_DAYS[self.log_retention_days]


_RETENTION_BY_DAYS = {
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}

ENVIRONMENTS: Mapping[str, EnvironmentConfig] = {
    "dev": EnvironmentConfig(
        name="dev", retain_data=False, point_in_time_recovery=False, deletion_protection=False,
        log_retention_days=7, throttle_rate_limit=50, throttle_burst_limit=100,
    ),
    "staging": EnvironmentConfig(
        name="staging", retain_data=False, point_in_time_recovery=True, deletion_protection=False,
        log_retention_days=30, throttle_rate_limit=200, throttle_burst_limit=400,
    ),
    "prod": EnvironmentConfig(
        name="prod", retain_data=True, point_in_time_recovery=True, deletion_protection=True,
        log_retention_days=90, throttle_rate_limit=1000, throttle_burst_limit=2000,
    ),
}

# camelCase context keys for the overridable fields, e.g. maxListenersPerSession.
_OVERRIDABLE = {
    "".join(part.capitalize() if i else part for i, part in enumerate(f.name.split("_"))): f
    for f in fields(EnvironmentConfig)
    if f.name != "name"
}


def load(context: Mapping[str, Any] | Any) -> EnvironmentConfig:
    """The configuration selected by CDK context (a mapping, or anything with ``try_get_context``)."""
    get = context.try_get_context if hasattr(context, "try_get_context") else context.get
    name = get(ENV_CONTEXT_KEY) or DEFAULT_ENVIRONMENT
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {name!r}; choose one of {', '.join(ENVIRONMENTS)}")
    config = ENVIRONMENTS[name]
    overrides = {}
    for key, field in _OVERRIDABLE.items():
        raw = get(key)
        if raw is None:
            continue
        overrides[field.name] = _coerce(key, raw, _FIELD_TYPES[str(field.type)])
    config = replace(config, **overrides)
    if config.log_retention_days not in _RETENTION_BY_DAYS:
        raise ValueError(f"logRetentionDays must be one of {sorted(_RETENTION_BY_DAYS)}")
    if config.max_listeners_per_session < 1 or config.session_lifetime_hours < 1 or config.speaker_grace_seconds < 1:
        raise ValueError("maxListenersPerSession, sessionLifetimeHours and speakerGraceSeconds must be positive")
    return config


_FIELD_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


def _coerce(key: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("true", "false"):
            return str(raw).lower() == "true"
        raise ValueError(f"context {key} must be true or false, got {raw!r}")
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"context {key} must be a {kind.__name__}, got {raw!r}") from None
