"""``cdk_app.config.load``: the environment chosen by context, and single values overridden from it."""

from __future__ import annotations

import dataclasses
from typing import Any

import aws_cdk as cdk
import pytest

from cdk_app import config
from lambda_src.contract import function_settings, limits


def test_default_environment_is_dev() -> None:
    # Given no env in the context (a mapping, and a CDK node without context)
    # When the configuration is loaded
    from_mapping = config.load({})
    from_node = config.load(cdk.App().node)

    # Then both are dev's
    assert from_mapping == config.ENVIRONMENTS["dev"]
    assert from_node == config.ENVIRONMENTS["dev"]
    assert from_mapping.stack_name == "SessionService-dev"


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_each_environment_is_selectable_by_name(name: str) -> None:
    # Given -c env=NAME
    # When the configuration is loaded
    loaded = config.load({"env": name})

    # Then it is that environment's configuration, with the service's default limits
    assert loaded == config.ENVIRONMENTS[name]
    assert loaded.name == name
    assert loaded.stack_name == f"SessionService-{name}"
    assert loaded.function_settings == function_settings.defaults()
    assert loaded.function_settings["session_lifetime_hours"] == limits.DEFAULT_SESSION_LIFETIME_HOURS == 3
    assert loaded.function_settings["max_listeners_per_session"] == limits.DEFAULT_MAX_LISTENERS_PER_SESSION == 500
    assert loaded.function_settings["speaker_grace_seconds"] == limits.DEFAULT_SPEAKER_GRACE_SECONDS == 120


def test_environment_is_read_from_a_cdk_node() -> None:
    # Given an app whose context selects prod
    app = cdk.App(context={"env": "prod"})

    # When the configuration is loaded from its node
    loaded = config.load(app.node)

    # Then it is prod's
    assert loaded.name == "prod"
    assert loaded.retain_data is True


@pytest.mark.parametrize("name", ["production", "Dev", "test", " dev"])
def test_unknown_environment_is_refused(name: str) -> None:
    # Given an environment name that is not defined
    # When / Then loading refuses it, naming it
    with pytest.raises(ValueError, match="unknown environment"):
        config.load({"env": name})


def test_override_is_coerced_to_the_field_type() -> None:
    # Given prod with a listener cap overridden from the command line (context values arrive as strings)
    context = {"env": "prod", "maxListenersPerSession": "800"}

    # When the configuration is loaded
    loaded = config.load(context)

    # Then the cap is the integer 800 and everything else is prod's
    assert loaded.function_settings["max_listeners_per_session"] == 800
    assert isinstance(loaded.function_settings["max_listeners_per_session"], int)
    expected = {**function_settings.defaults(), "max_listeners_per_session": 800}
    assert loaded == dataclasses.replace(config.ENVIRONMENTS["prod"], function_settings=expected)
    # And the shared table of environments is untouched
    assert config.ENVIRONMENTS["prod"].function_settings["max_listeners_per_session"] == 500


def test_the_listener_cap_is_accepted_up_to_ten_thousand() -> None:
    # A session of that cap counts its listeners on 100 seat shards (decision record 0040); one more is refused
    loaded = config.load({"env": "prod", "maxListenersPerSession": "10000"})
    assert loaded.function_settings["max_listeners_per_session"] == 10_000
    with pytest.raises(ValueError, match="maxListenersPerSession must be at most 10000, got 10001"):
        config.load({"env": "prod", "maxListenersPerSession": "10001"})


@pytest.mark.parametrize(
    ("context", "name", "expected"),
    [
        ({"sessionLifetimeHours": "6"}, "session_lifetime_hours", 6),
        ({"speakerGraceSeconds": "45"}, "speaker_grace_seconds", 45),
        ({"sessionsPerUserPerHour": "7"}, "sessions_per_user_per_hour", 7),
        ({"joinsPerSessionPerMinute": "70"}, "joins_per_session_per_minute", 70),
        ({"connectionsPerSourcePerMinute": "700"}, "connections_per_source_per_minute", 700),
        ({"supportedLanguages": "en,es"}, "supported_languages", "en,es"),
        ({"sessionIdVocabulary": "themed"}, "session_id_vocabulary", "themed"),
        ({"pollyVoices": "es:Lucia,fr:Remi:neural"}, "polly_voices", "es:Lucia,fr:Remi:neural"),
        # cdk.json's forms: an object of voices, a list of languages
        ({"pollyVoices": {"es": "Lucia", "ro": "Carmen:standard"}}, "polly_voices", "es:Lucia,ro:Carmen:standard"),
        ({"supportedLanguages": ["en", "es"]}, "supported_languages", "en,es"),
    ],
)
def test_overrides_of_function_settings(context: dict[str, Any], name: str, expected: Any) -> None:
    # Given dev with one of the functions' settings overridden by its context key
    loaded = config.load({"env": "dev", **context})

    # Then that setting has the coerced value, and the others keep their defaults
    assert loaded.function_settings == {**function_settings.defaults(), name: expected}
    assert type(loaded.function_settings[name]) is type(expected)


def test_every_function_setting_is_overridable_by_its_context_key() -> None:
    # Given each setting the table declares, overridden by its camelCase context key
    samples = {"supported_languages": "en", "polly_voices": "es:Lucia"}
    for setting in function_settings.FUNCTION_SETTINGS:
        value = setting.choices[-1] if setting.choices else samples[setting.name] if setting.kind is str else "9"
        # Then the configuration holds it, of the setting's kind
        assert config.load({"env": "dev", setting.context_key: value}).function_settings[setting.name] == (
            setting.kind(value)
        ), setting.name


@pytest.mark.parametrize(
    ("context", "field", "expected"),
    [
        ({"logRetentionDays": "30"}, "log_retention_days", 30),
        ({"throttleBurstLimit": "250"}, "throttle_burst_limit", 250),
        ({"retainData": "true"}, "retain_data", True),
        ({"retainData": "FALSE"}, "retain_data", False),
        ({"pointInTimeRecovery": True}, "point_in_time_recovery", True),
        ({"alarmEmail": "ops@example.com"}, "alarm_email", "ops@example.com"),
        ({"tracingEnabled": "true"}, "tracing_enabled", True),
        ({"createApiGatewayAccountRole": "true"}, "create_api_gateway_account_role", True),
        ({"invalidConfigurationAlarmThreshold": "5"}, "invalid_configuration_alarm_threshold", 5),
        ({"synthesisFailuresAlarmThreshold": "20"}, "synthesis_failures_alarm_threshold", 20),
        ({"customerManagedKeys": "true"}, "customer_managed_keys", True),
        ({"reservedConcurrency": "welcome:3,sweeper:1"}, "reserved_concurrency", {"welcome": 3, "sweeper": 1}),
        ({"reservedConcurrency": {"welcome": 3, "sweeper": "1"}}, "reserved_concurrency", {"welcome": 3, "sweeper": 1}),
    ],
)
def test_overrides_of_other_fields(context: dict[str, Any], field: str, expected: Any) -> None:
    # Given dev with one field overridden
    # When the configuration is loaded
    loaded = config.load({"env": "dev", **context})

    # Then that field has the coerced value, of the field's type
    assert getattr(loaded, field) == expected
    assert type(getattr(loaded, field)) is type(expected)


@pytest.mark.parametrize(
    "context",
    [
        {"maxListenersPerSession": "lots"},
        {"maxListenersPerSession": ""},
        {"maxListenersPerSession": "12.5"},
        {"maxListenersPerSession": "0"},
        {"maxListenersPerSession": "-3"},
        {"maxListenersPerSession": "10001"},
        {"sessionLifetimeHours": "0"},
        {"sessionLifetimeHours": "three"},
        {"speakerGraceSeconds": "0"},
        {"speakerGraceSeconds": "soon"},
        {"sessionsPerUserPerHour": "0"},
        {"joinsPerSessionPerMinute": "-1"},
        {"connectionsPerSourcePerMinute": "many"},
        {"logRetentionDays": "8"},
        {"retainData": "yes"},
        {"deletionProtection": "1"},
        {"alarmEmail": "not-an-address"},
        {"alarmEmail": "two@at@example.com"},
        {"tracingEnabled": "maybe"},
        {"invalidConfigurationAlarmThreshold": "0"},
        {"synthesisFailuresAlarmThreshold": "0"},
        {"synthesisFailuresAlarmThreshold": "few"},
        {"throttleRateLimit": "0"},
        {"throttleBurstLimit": "0"},
        {"customerManagedKeys": "maybe"},
        {"reservedConcurrency": "connect"},
        {"reservedConcurrency": "connect:0"},
        {"reservedConcurrency": "connect:-5"},
        {"reservedConcurrency": "connect:lots"},
        {"reservedConcurrency": "connect:2.5"},
        {"reservedConcurrency": "nosuchfunction:5"},
        {"reservedConcurrency": ":5"},
        {"reservedConcurrency": "welcome:none"},  # prod reserves for others: welcome must keep its own
        {"reservedConcurrency": "sweeper:none"},
        {"reservedConcurrency": 12},
    ],
)
def test_bad_override_is_refused(context: dict[str, Any]) -> None:
    # Given prod with an override that is not a valid value
    # When / Then loading refuses it
    with pytest.raises(ValueError):
        config.load({"env": "prod", **context})


@pytest.mark.parametrize("name", ["klingon", "Themed", ""])
def test_an_unknown_session_id_vocabulary_is_refused_with_the_choices(name: str) -> None:
    # Given a vocabulary the functions do not have / Then loading the configuration says which ones exist
    with pytest.raises(ValueError, match=f"sessionIdVocabulary must be one of general, themed, got '{name}'"):
        config.load({"env": "dev", "sessionIdVocabulary": name})


@pytest.mark.parametrize(
    ("voices", "why"),
    [
        ("es", "pollyVoices: 'es' is not language:VoiceId"),
        ("xx:Lucia", "pollyVoices: 'xx:Lucia' names 'xx', not a language the service supports"),
        ("es:lucia", "not a Polly voice id"),
        ("es:Lucia:generative", "the engine must be one of neural, standard"),
        ("hi:Aditi:standard:hindi", "not a Polly language code"),
        ("es:Lucia,es:Sergio", "'es' is given a voice twice"),
        ({"es": "Lucia:loud"}, "the engine must be one of neural, standard"),
    ],
)
def test_a_bad_polly_voice_is_refused_at_synth_saying_why(voices: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        config.load({"env": "prod", "pollyVoices": voices})


def test_every_environment_speaks_with_the_codes_voices_unless_told() -> None:
    for name in config.ENVIRONMENTS:
        assert config.load({"env": name}).function_settings["polly_voices"] == "", name


def test_the_general_vocabulary_is_every_environments_default() -> None:
    for name in config.ENVIRONMENTS:
        assert config.load({"env": name}).function_settings["session_id_vocabulary"] == "general", name


def test_fractional_throttle_rate_limit_override() -> None:
    # Given a fractional rate limit (API Gateway's ThrottlingRateLimit is a double)
    # When the configuration is loaded
    loaded = config.load({"env": "dev", "throttleRateLimit": "12.5"})

    # Then the rate limit is 12.5 requests per second
    assert loaded.throttle_rate_limit == 12.5


def test_tracing_is_off_in_dev_and_on_in_staging_and_prod() -> None:
    # Given each environment's configuration
    # Then X-Ray tracing is on where its cost buys something (staging, prod), and off in dev
    assert {name: config.load({"env": name}).tracing_enabled for name in config.ENVIRONMENTS} == {
        "dev": False,
        "staging": True,
        "prod": True,
    }


def test_route_throttles_name_routes_and_are_tighter_than_the_stage() -> None:
    # Given each environment's per-route limits
    for name, environment in config.ENVIRONMENTS.items():
        # Then they name routes of the API, and each is tighter than the stage's limit
        assert set(environment.route_throttles) <= config.ROUTE_KEYS, name
        assert set(environment.route_throttles) == {"$connect", "createSession", "joinSession"}, name
        for route_key, throttle in environment.route_throttles.items():
            assert 0 < throttle.rate_limit < environment.throttle_rate_limit, (name, route_key)
            assert 0 < throttle.burst_limit < environment.throttle_burst_limit, (name, route_key)


@pytest.mark.parametrize(
    "route_throttles",
    [
        {"$conect": config.RouteThrottle(10, 20)},
        {"heartbeat": config.RouteThrottle(0, 20)},
        {"heartbeat": config.RouteThrottle(10, 0)},
    ],
)
def test_bad_route_throttles_are_refused(monkeypatch: pytest.MonkeyPatch, route_throttles: dict) -> None:
    # Given an environment whose per-route limits name no route, or are not positive
    broken = dataclasses.replace(config.ENVIRONMENTS["dev"], route_throttles=route_throttles)
    monkeypatch.setitem(config.ENVIRONMENTS, "dev", broken)

    # When / Then loading it refuses them
    with pytest.raises(ValueError, match="route_throttles|throttle of"):
        config.load({"env": "dev"})


@pytest.mark.parametrize(
    "changes",
    [
        {"http_route_throttles": {"POST /session": config.RouteThrottle(1, 2)}},
        {"http_route_throttles": {"GET /health": config.RouteThrottle(0, 2)}},
        {"http_throttle": config.RouteThrottle(10, 0)},
    ],
)
def test_bad_http_throttles_are_refused(monkeypatch: pytest.MonkeyPatch, changes: dict) -> None:
    # Given an environment whose HTTP stage or route limits name no route of the HTTP API, or are not positive
    broken = dataclasses.replace(config.ENVIRONMENTS["dev"], **changes)
    monkeypatch.setitem(config.ENVIRONMENTS, "dev", broken)

    # When / Then loading it refuses them
    with pytest.raises(ValueError, match="http_route_throttles|throttle of"):
        config.load({"env": "dev"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("none", ()),
        ("https://a.example.com, https://b.example.com:8443", ("https://a.example.com", "https://b.example.com:8443")),
        (["http://localhost:5173"], ("http://localhost:5173",)),
    ],
)
def test_http_cors_origins_are_overridable(raw: Any, expected: tuple[str, ...]) -> None:
    # Given origins from context (a string, or a list from cdk.json)
    # Then they replace the environment's
    assert config.load({"env": "dev", "httpCorsOrigins": raw}).http_cors_origins == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("none", ()),
        ("https://listen.example.com", ("https://listen.example.com",)),
        (["http://localhost:5173", "https://l.example.com"], ("http://localhost:5173", "https://l.example.com")),
    ],
)
def test_audio_cors_origins_are_overridable_apart_from_the_http_apis(raw: Any, expected: tuple[str, ...]) -> None:
    # Given the audio bucket's origins from context
    loaded = config.load({"env": "prod", "audioCorsOrigins": raw})

    # Then they replace the environment's, and the HTTP API's stay as they were
    assert loaded.audio_cors_origins == expected
    assert loaded.http_cors_origins == config.ENVIRONMENTS["prod"].http_cors_origins


@pytest.mark.parametrize("raw", ["https://listen.example.com/path", "*", "listen.example.com"])
def test_an_audio_origin_that_is_not_an_origin_is_refused_at_synth(raw: str) -> None:
    with pytest.raises(ValueError, match=r"audioCorsOrigins: .* is not an origin"):
        config.load({"env": "dev", "audioCorsOrigins": raw})


def test_dev_admits_loopback_origins_and_the_others_none_by_default() -> None:
    # Given each environment's browser origins
    origins = {name: config.load({"env": name}).http_cors_origins for name in config.ENVIRONMENTS}

    # Then dev's are loopback ones only, and staging and prod name none until configured
    assert origins["dev"] and all(
        origin.startswith(("http://localhost:", "http://127.0.0.1:")) for origin in origins["dev"]
    )
    assert origins["staging"] == origins["prod"] == ()


def test_customer_managed_keys_in_prod_only_by_default() -> None:
    # Given each environment's configuration
    # Then prod's tables and log groups use the stack's own keys; dev and staging AWS managed keys
    assert {name: config.load({"env": name}).customer_managed_keys for name in config.ENVIRONMENTS} == {
        "dev": False,
        "staging": False,
        "prod": True,
    }


def test_reserved_concurrency_defaults_fit_a_default_account() -> None:
    # Given each environment's reservations
    for name, environment in config.ENVIRONMENTS.items():
        reserved = environment.reserved_concurrency
        # Then dev reserves nothing (a new account's quota may be 10, where Lambda refuses any reservation);
        # staging and prod reserve for every function, and leave Lambda's minimum unreserved in an account of
        # the default quota
        if name == "dev":
            assert reserved == {}
            continue
        assert set(reserved) == set(config.RESERVED_CONCURRENCY_MODULES), name
        assert config.DEFAULT_ACCOUNT_CONCURRENCY - sum(reserved.values()) >= config.LAMBDA_MINIMUM_UNRESERVED, name


def test_reserved_concurrency_override_changes_only_the_named_functions() -> None:
    # Given prod with connect raised and staging cleared
    prod = config.load({"env": "prod", "reservedConcurrency": "connect:400"})
    staging = config.load({"env": "staging", "reservedConcurrency": "NONE"})

    # Then prod's other reservations stay; staging reserves nothing; the shared defaults are untouched
    assert prod.reserved_concurrency == {**config.ENVIRONMENTS["prod"].reserved_concurrency, "connect": 400}
    assert staging.reserved_concurrency == {}
    assert config.ENVIRONMENTS["prod"].reserved_concurrency["connect"] == 200


def test_reserved_concurrency_can_clear_one_function_where_the_rest_allows_it() -> None:
    # Given staging with the authorizer's reservation removed
    loaded = config.load({"env": "staging", "reservedConcurrency": "authorizer:none"})

    # Then the authorizer draws on the unreserved pool and the others keep theirs
    assert "authorizer" not in loaded.reserved_concurrency
    assert loaded.reserved_concurrency["welcome"] == config.ENVIRONMENTS["staging"].reserved_concurrency["welcome"]
