"""Typed per-environment configuration, chosen with ``-c env=dev|staging|prod`` (default ``dev``).

Single values can be overridden from context too, e.g. ``-c maxListenersPerSession=800``; so can the alarm
e-mail address (``-c alarmEmail=ops@example.com``), the customer managed keys (``-c customerManagedKeys=true``)
each function's reserved concurrency (``-c reservedConcurrency=connect:300,welcome:30``, or ``none``) and the
browser origins the HTTP API admits (``-c httpCorsOrigins=https://app.example.com,https://speak.example.com``, or
``none``) and those that may fetch the spoken translations (``-c audioCorsOrigins=https://listen.example.com``, or
``none``); and the Polly voice of any language (``-c pollyVoices=es:Lucia,fr:Remi,ro:Carmen:standard``, a function
setting read by :func:`lambda_src.contract.voices.parse_polly_voices`, which refuses a bad entry here, at synth). The
per-route throttles are set here only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs

from lambda_src.contract import function_settings, http_api, routes

ENV_CONTEXT_KEY = "env"
DEFAULT_ENVIRONMENT = "dev"


@dataclass(frozen=True)
class RouteThrottle:
    """API Gateway's token bucket for one route of the stage: steady requests per second, and burst."""

    rate_limit: float
    burst_limit: int


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything that differs between environments. Field names double as context override keys."""

    name: str
    retain_data: bool
    point_in_time_recovery: bool
    deletion_protection: bool
    log_retention_days: int
    throttle_rate_limit: float  # every route of the stage, unless route_throttles names it
    throttle_burst_limit: int
    # Tighter limits for the routes that write the most per request (a new connection, a new session, a
    # join); heartbeat and the other routes keep the stage's limit. Route key -> its limit.
    route_throttles: Mapping[str, RouteThrottle]
    # The HTTP session API's stage: its default token bucket, and tighter ones by route key (``POST /sessions``
    # writes the most; ``lambda_src.contract.http_api`` names the routes).
    http_throttle: RouteThrottle
    http_route_throttles: Mapping[str, RouteThrottle]
    # The browser origins (``scheme://host[:port]``) the HTTP API answers CORS preflights for and names in
    # ``Access-Control-Allow-Origin``; empty: no browser origin may call it (a server or the CLI still can).
    http_cors_origins: tuple[str, ...]
    # The browser origins that may GET the spoken translations from the audio bucket (the listener apps'; CORS
    # rules of the bucket, GET and HEAD); empty: no browser page may fetch them.
    audio_cors_origins: tuple[str, ...]
    # X-Ray: Lambda tracing mode Active (sampled traces of each invocation and its initialization), and botocore
    # patched in the functions that call AWS, so each AWS SDK call is a subsegment with its latency
    # (lambda_src.platform.tracing).
    tracing_enabled: bool
    # True: the tables and the log groups are encrypted with keys of the stack's own (rotated yearly, their
    # use in CloudTrail, revocable); False: with the AWS managed keys (tables) and CloudWatch Logs' own.
    customer_managed_keys: bool
    # Handler module -> the concurrency reserved for its function (also its cap); a module not named draws on
    # the account's unreserved pool. See RESERVED_CONCURRENCY_MODULES and docs/operations.md (Environments).
    reserved_concurrency: Mapping[str, int]
    # The functions' per-environment settings by name (lambda_src.contract.function_settings.FUNCTION_SETTINGS
    # declares them: variable, kind, default, context key), e.g. function_settings["max_listeners_per_session"].
    function_settings: Mapping[str, int | str] = field(default_factory=function_settings.defaults)
    user_pool_id: str = ""  # an existing Cognito user pool to trust; empty: the stack creates one
    user_pool_client_id: str = ""
    alarm_email: str = ""  # subscribed to the alarm topic when set (the address confirms by e-mail)
    # Rejections with errorCode INVALID_CONFIGURATION in 5 minutes that count as a spike (a client sending
    # out-of-range partial-result settings over and over, e.g. after a bad release).
    invalid_configuration_alarm_threshold: int = 25
    # SynthesisFailures in 5 minutes (final segments not spoken in one of their languages, counted once per segment
    # and language) that fire the alarm: more than a passing throttle that the client's retry did not absorb.
    synthesis_failures_alarm_threshold: int = 5
    # API Gateway writes a WebSocket stage's access logs with the region's account-wide CloudWatch role.
    # True: this stack creates that role and sets it (once per account and region; it is retained).
    create_api_gateway_account_role: bool = False

    @property
    def stack_name(self) -> str:
        return f"SessionService-{self.name}"

    @property
    def removal_policy(self) -> RemovalPolicy:
        return RemovalPolicy.RETAIN if self.retain_data else RemovalPolicy.DESTROY

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION_BY_DAYS[self.log_retention_days]


# The functions a reservation may name (by handler module), and the ones that must hold one whenever any
# function does: a flood of connects may then exhaust its own reservation, never the first messages' or the
# sweeper's.
RESERVED_CONCURRENCY_MODULES = (
    "connect",
    "disconnect",
    "message",
    "authorizer",
    "welcome",
    "sweeper",
    "status",
    "transcriber",
    "fanout",
    "http_api",
)
ALWAYS_RESERVED_MODULES = ("welcome", "sweeper")
# Lambda refuses a reservation that leaves fewer than this many executions unreserved in the account; an
# account's concurrency quota is 1000 unless raised (a new account's can be lower still).
LAMBDA_MINIMUM_UNRESERVED = 100
DEFAULT_ACCOUNT_CONCURRENCY = 1000

# dev's browser origins: the speaker and listener apps' development servers (Vite's default and preview ports, the
# next one a second app takes, and 3000) and the local console's port, by loopback name and address.
LOOPBACK_ORIGINS = tuple(
    f"http://{host}:{port}" for host in ("localhost", "127.0.0.1") for port in (3000, 4173, 5173, 5174, 8080)
)

_RETENTION_BY_DAYS = {
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}

ENVIRONMENTS: Mapping[str, EnvironmentConfig] = {
    "dev": EnvironmentConfig(
        name="dev",
        retain_data=False,
        point_in_time_recovery=False,
        deletion_protection=False,
        log_retention_days=7,
        throttle_rate_limit=50,
        throttle_burst_limit=100,
        route_throttles={
            routes.CONNECT: RouteThrottle(20, 40),
            routes.CREATE_SESSION: RouteThrottle(2, 5),
            routes.JOIN_SESSION: RouteThrottle(20, 40),
        },
        http_throttle=RouteThrottle(20, 40),
        http_route_throttles={http_api.CREATE_SESSION.key: RouteThrottle(2, 5)},
        http_cors_origins=LOOPBACK_ORIGINS,
        audio_cors_origins=LOOPBACK_ORIGINS,
        tracing_enabled=False,
        customer_managed_keys=False,
        # A new account's concurrency quota can be as low as 10, where Lambda refuses any reservation.
        reserved_concurrency={},
    ),
    "staging": EnvironmentConfig(
        name="staging",
        retain_data=False,
        point_in_time_recovery=True,
        deletion_protection=False,
        log_retention_days=30,
        throttle_rate_limit=200,
        throttle_burst_limit=400,
        route_throttles={
            routes.CONNECT: RouteThrottle(100, 200),
            routes.CREATE_SESSION: RouteThrottle(5, 10),
            routes.JOIN_SESSION: RouteThrottle(100, 200),
        },
        http_throttle=RouteThrottle(50, 100),
        http_route_throttles={http_api.CREATE_SESSION.key: RouteThrottle(5, 10)},
        http_cors_origins=(),
        audio_cors_origins=(),
        tracing_enabled=True,
        customer_managed_keys=False,
        # 135 of the account's default quota of 1000, for a stage throttled at 200 requests/s.
        reserved_concurrency={
            "connect": 30,
            "disconnect": 20,
            "message": 30,
            "authorizer": 20,
            "welcome": 5,
            "sweeper": 2,
            "status": 3,
            "transcriber": 10,  # one per session being transcribed (and briefly two at a hand-over)
            "fanout": 10,  # a 10,000-listener session: 10 invocations a segment, each ~0.4 s (decision 40)
            "http_api": 5,
        },
    ),
    "prod": EnvironmentConfig(
        name="prod",
        retain_data=True,
        point_in_time_recovery=True,
        deletion_protection=True,
        log_retention_days=90,
        throttle_rate_limit=1000,
        throttle_burst_limit=2000,
        # A venue's whole audience joins within a minute or so: the $connect burst covers a full session.
        route_throttles={
            routes.CONNECT: RouteThrottle(300, 600),
            routes.CREATE_SESSION: RouteThrottle(20, 40),
            routes.JOIN_SESSION: RouteThrottle(300, 600),
        },
        http_throttle=RouteThrottle(200, 400),
        http_route_throttles={http_api.CREATE_SESSION.key: RouteThrottle(20, 40)},
        http_cors_origins=(),
        audio_cors_origins=(),
        tracing_enabled=True,
        customer_managed_keys=True,
        # 852 of the account's default quota of 1000 (148 left unreserved): caps well above what the stage's
        # throttles admit at the functions' usual durations, so only a slow DynamoDB turns them into throttles.
        reserved_concurrency={
            "connect": 200,
            "disconnect": 100,
            "message": 200,
            "authorizer": 100,
            "welcome": 20,
            "sweeper": 2,
            "status": 10,
            "transcriber": 100,  # one per session being transcribed (and briefly two at a hand-over)
            "fanout": 100,  # a 10,000-listener session: 10 invocations a segment, each ~0.4 s (decision 40)
            "http_api": 20,
        },
    ),
}

ROUTE_KEYS = frozenset({routes.CONNECT, routes.DISCONNECT, routes.DEFAULT, *routes.MESSAGE_ROUTES})
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# camelCase context keys for the overridable (single-valued) fields, e.g. logRetentionDays; the functions'
# settings are overridden by their own context keys (function_settings.FunctionSetting.context_key).
_OVERRIDABLE = {
    "".join(part.capitalize() if i else part for i, part in enumerate(f.name.split("_"))): f
    for f in fields(EnvironmentConfig)
    if f.name
    not in (
        "name",
        "route_throttles",
        "reserved_concurrency",
        "function_settings",
        "http_throttle",
        "http_route_throttles",
        "http_cors_origins",
        "audio_cors_origins",
    )
}
RESERVED_CONCURRENCY_KEY = "reservedConcurrency"
HTTP_CORS_ORIGINS_KEY = "httpCorsOrigins"
AUDIO_CORS_ORIGINS_KEY = "audioCorsOrigins"
# An origin as a browser sends it: scheme, host, optional port; no path, no wildcard.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def load(context: Mapping[str, Any] | Any) -> EnvironmentConfig:
    """The configuration selected by CDK context (a mapping, or anything with ``try_get_context``)."""
    get = context.try_get_context if hasattr(context, "try_get_context") else context.get
    name = get(ENV_CONTEXT_KEY) or DEFAULT_ENVIRONMENT
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {name!r}; choose one of {', '.join(ENVIRONMENTS)}")
    config = ENVIRONMENTS[name]
    overrides: dict[str, Any] = {}
    for key, config_field in _OVERRIDABLE.items():
        raw = get(key)
        if raw is None:
            continue
        overrides[config_field.name] = _coerce(key, raw, _FIELD_TYPES[str(config_field.type)])
    reserved = get(RESERVED_CONCURRENCY_KEY)
    if reserved is not None:
        overrides["reserved_concurrency"] = _reserved_concurrency(config.reserved_concurrency, reserved)
    overrides.update(_origin_overrides(get))
    values = dict(config.function_settings)
    for setting in function_settings.FUNCTION_SETTINGS:
        raw = get(setting.context_key)
        if raw is not None:
            text = _listed(setting.context_key, raw) if setting.kind is str else raw
            values[setting.name] = _coerce(setting.context_key, text, setting.kind)
    config = replace(config, **overrides, function_settings=values)
    if config.log_retention_days not in _RETENTION_BY_DAYS:
        raise ValueError(f"logRetentionDays must be one of {sorted(_RETENTION_BY_DAYS)}")
    _check_function_settings(config.function_settings)
    _check_operations(config)
    return config


def _check_function_settings(values: Mapping[str, int | str]) -> None:
    """Each function setting as the functions would accept it when they start: refused at synth otherwise."""
    for setting in function_settings.FUNCTION_SETTINGS:
        value = values[setting.name]
        if setting.minimum is not None and isinstance(value, int) and value < setting.minimum:
            raise ValueError(f"{setting.context_key} must be at least {setting.minimum}, got {value}")
        if setting.maximum is not None and isinstance(value, int) and value > setting.maximum:
            raise ValueError(f"{setting.context_key} must be at most {setting.maximum}, got {value}")
        if setting.choices is not None and value not in setting.choices:
            raise ValueError(f"{setting.context_key} must be one of {', '.join(setting.choices)}, got {value!r}")
        if setting.check is not None:
            try:  # pollyVoices' languages, voice ids and engines
                setting.check(str(value))
            except ValueError as error:
                raise ValueError(f"{setting.context_key}: {error}") from None


def _check_operations(config: EnvironmentConfig) -> None:
    """Throttles, alarm threshold and alarm address: refused at synth rather than at deploy."""
    if config.throttle_rate_limit <= 0 or config.throttle_burst_limit < 1:
        raise ValueError("throttleRateLimit and throttleBurstLimit must be positive")
    for route_key, throttle in config.route_throttles.items():
        if route_key not in ROUTE_KEYS:
            raise ValueError(f"route_throttles names {route_key!r}, not a route; routes: {sorted(ROUTE_KEYS)}")
        if throttle.rate_limit <= 0 or throttle.burst_limit < 1:
            raise ValueError(f"the throttle of {route_key} must be positive, got {throttle}")
    for route_key, throttle in {"the HTTP stage": config.http_throttle, **config.http_route_throttles}.items():
        if route_key != "the HTTP stage" and route_key not in http_api.ROUTE_KEYS:
            raise ValueError(
                f"http_route_throttles names {route_key!r}, not a route; routes: {sorted(http_api.ROUTE_KEYS)}"
            )
        if throttle.rate_limit <= 0 or throttle.burst_limit < 1:
            raise ValueError(f"the throttle of {route_key} must be positive, got {throttle}")
    _check_origins(config)
    if config.invalid_configuration_alarm_threshold < 1:
        raise ValueError("invalidConfigurationAlarmThreshold must be positive")
    if config.synthesis_failures_alarm_threshold < 1:
        raise ValueError("synthesisFailuresAlarmThreshold must be positive")
    if config.alarm_email and not _EMAIL.fullmatch(config.alarm_email):
        raise ValueError(f"alarmEmail must be an e-mail address, got {config.alarm_email!r}")
    _check_reserved_concurrency(config.reserved_concurrency)


def _check_origins(config: EnvironmentConfig) -> None:
    """Every browser origin (the HTTP API's, the audio bucket's) as a browser sends it."""
    for key, field_name in _ORIGIN_FIELDS.items():
        for origin in getattr(config, field_name):
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{key}: {origin!r} is not an origin (scheme://host[:port])")


def _check_reserved_concurrency(reserved: Mapping[str, int]) -> None:
    """Known functions, positive reservations (0 would stop a function), and the welcome and sweeper
    functions reserved whenever anything is."""
    unknown = sorted(set(reserved) - set(RESERVED_CONCURRENCY_MODULES))
    if unknown:
        raise ValueError(f"{RESERVED_CONCURRENCY_KEY} names {unknown}; functions: {list(RESERVED_CONCURRENCY_MODULES)}")
    for module, value in reserved.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{RESERVED_CONCURRENCY_KEY}: {module} must be a positive integer, got {value!r}")
    missing = [module for module in ALWAYS_RESERVED_MODULES if module not in reserved]
    if reserved and missing:
        raise ValueError(
            f"{RESERVED_CONCURRENCY_KEY} reserves for some functions but not for {missing}: a flood on the others "
            "could then starve them of the account's unreserved pool"
        )


def _reserved_concurrency(current: Mapping[str, int], raw: Any) -> dict[str, int]:
    """``current`` changed by a context value: ``"none"`` (reserve nothing), or ``"module:N,module:none"``
    (each named module set or cleared; the others kept), or the same as a JSON object (cdk.json)."""
    if isinstance(raw, str) and raw.strip().lower() == "none":
        return {}
    if isinstance(raw, str):
        entries: dict[str, Any] = {}
        for part in raw.split(","):
            module, separator, value = part.partition(":")
            if not separator or not module.strip():
                raise ValueError(f"{RESERVED_CONCURRENCY_KEY} must be none or module:N,..., got {raw!r}")
            entries[module.strip()] = value.strip()
    elif isinstance(raw, Mapping):
        entries = dict(raw)
    else:
        raise ValueError(f"{RESERVED_CONCURRENCY_KEY} must be none or module:N,..., got {raw!r}")
    result = dict(current)
    for module, value in entries.items():
        if value is None or str(value).lower() == "none":
            result.pop(module, None)
        else:
            result[module] = _coerce(f"{RESERVED_CONCURRENCY_KEY} {module}", value, int)
    return result


# The browser origins' context keys and the fields they set.
_ORIGIN_FIELDS = {HTTP_CORS_ORIGINS_KEY: "http_cors_origins", AUDIO_CORS_ORIGINS_KEY: "audio_cors_origins"}


def _origin_overrides(get: Any) -> dict[str, tuple[str, ...]]:
    """The origin fields a context sets, by field name."""
    return {field_name: _origins(key, get(key)) for key, field_name in _ORIGIN_FIELDS.items() if get(key) is not None}


def _origins(key: str, raw: Any) -> tuple[str, ...]:
    """A context value of origins (``key``'s): ``"none"``, a comma-separated string, or a JSON list (cdk.json)."""
    if isinstance(raw, str):
        if raw.strip().lower() == "none":
            return ()
        return tuple(origin.strip() for origin in raw.split(",") if origin.strip())
    if isinstance(raw, (list, tuple)) and all(isinstance(origin, str) for origin in raw):
        return tuple(raw)
    raise ValueError(f"{key} must be none or origins separated by commas, got {raw!r}")


def _listed(key: str, raw: Any) -> Any:
    """A text setting's context value: as given, or from cdk.json a JSON list joined by commas (``["en", "es"]``) or an
    object as ``key:value`` pairs (``{"es": "Lucia", "fr": "Remi:neural"}``: pollyVoices)."""
    if isinstance(raw, Mapping):
        return ",".join(f"{name}:{value}" for name, value in raw.items())
    if isinstance(raw, (list, tuple)):
        return ",".join(str(item) for item in raw)
    return raw


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
