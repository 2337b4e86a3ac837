"""``cdk_app.config.load``: the environment chosen by context, and single values overridden from it."""

from __future__ import annotations

import dataclasses
from typing import Any

import aws_cdk as cdk
import pytest

from cdk_app import config
from lambda_src import limits


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
    assert loaded.session_lifetime_hours == limits.DEFAULT_SESSION_LIFETIME_HOURS == 3
    assert loaded.max_listeners_per_session == limits.DEFAULT_MAX_LISTENERS_PER_SESSION == 500
    assert loaded.speaker_grace_seconds == limits.DEFAULT_SPEAKER_GRACE_SECONDS == 120


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
    assert loaded.max_listeners_per_session == 800
    assert isinstance(loaded.max_listeners_per_session, int)
    assert loaded == dataclasses.replace(config.ENVIRONMENTS["prod"], max_listeners_per_session=800)
    # And the shared table of environments is untouched
    assert config.ENVIRONMENTS["prod"].max_listeners_per_session == 500


@pytest.mark.parametrize(
    ("context", "field", "expected"),
    [
        ({"sessionLifetimeHours": "6"}, "session_lifetime_hours", 6),
        ({"speakerGraceSeconds": "45"}, "speaker_grace_seconds", 45),
        ({"logRetentionDays": "30"}, "log_retention_days", 30),
        ({"throttleBurstLimit": "250"}, "throttle_burst_limit", 250),
        ({"retainData": "true"}, "retain_data", True),
        ({"retainData": "FALSE"}, "retain_data", False),
        ({"pointInTimeRecovery": True}, "point_in_time_recovery", True),
        ({"supportedLanguages": "en,es"}, "supported_languages", "en,es"),
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
        {"sessionLifetimeHours": "0"},
        {"sessionLifetimeHours": "three"},
        {"speakerGraceSeconds": "0"},
        {"speakerGraceSeconds": "soon"},
        {"logRetentionDays": "8"},
        {"retainData": "yes"},
        {"deletionProtection": "1"},
    ],
)
def test_bad_override_is_refused(context: dict[str, Any]) -> None:
    # Given prod with an override that is not a valid value
    # When / Then loading refuses it
    with pytest.raises(ValueError):
        config.load({"env": "prod", **context})


def test_fractional_throttle_rate_limit_override() -> None:
    # Given a fractional rate limit (API Gateway's ThrottlingRateLimit is a double)
    # When the configuration is loaded
    loaded = config.load({"env": "dev", "throttleRateLimit": "12.5"})

    # Then the rate limit is 12.5 requests per second
    assert loaded.throttle_rate_limit == 12.5
