"""``lambda_src.contract.function_settings``: each per-environment setting declared once, read by the functions from
its variable."""

from __future__ import annotations

import pytest

from lambda_src import runtime
from lambda_src.contract import function_settings
from lambda_src.contract.languages import SUPPORTED_LANGUAGES
from lambda_src.contract.voices import PollyVoice

# A value for each setting other than its default, and what the functions read it as.
CHANGED = {
    "session_lifetime_hours": ("2", 7200),
    "max_listeners_per_session": ("42", 42),
    "speaker_grace_seconds": ("9", 9),
    "sessions_per_user_per_hour": ("3", 3),
    "joins_per_session_per_minute": ("30", 30),
    "connections_per_source_per_minute": ("300", 300),
    "supported_languages": ("en, es", frozenset({"en", "es"})),
    "session_id_vocabulary": ("themed", "themed"),
    "max_session_lifetime_hours": ("12", 12 * 3600),
    "max_active_sessions_per_speaker": ("5", 5),
    "transcript_retention_days": ("30", 30 * 86400),
    "polly_voices": (
        "es:Lucia,ro:Carmen:standard",
        {"es": PollyVoice("Lucia", True), "ro": PollyVoice("Carmen", False)},
    ),
}


def test_every_declared_setting_has_a_case() -> None:
    assert sorted(CHANGED) == sorted(setting.name for setting in function_settings.FUNCTION_SETTINGS)


@pytest.mark.parametrize("setting", function_settings.FUNCTION_SETTINGS, ids=lambda setting: setting.name)
def test_each_setting_is_read_from_its_variable(setting: function_settings.FunctionSetting, monkeypatch) -> None:
    raw, expected = CHANGED[setting.name]
    monkeypatch.setenv(setting.env_var, raw)
    runtime.reset()
    assert getattr(function_settings.load(), setting.attribute) == expected


@pytest.mark.parametrize("setting", function_settings.FUNCTION_SETTINGS, ids=lambda setting: setting.name)
def test_an_unset_or_empty_variable_is_the_declared_default(
    setting: function_settings.FunctionSetting, monkeypatch
) -> None:
    runtime.reset()
    unset = getattr(function_settings.load(), setting.attribute)
    monkeypatch.setenv(setting.env_var, "")
    runtime.reset()
    assert getattr(function_settings.load(), setting.attribute) == unset == setting.parse(str(setting.default))


def test_defaults_are_the_limits() -> None:
    loaded = function_settings.load()
    assert loaded.session_lifetime_seconds == 3 * 3600
    assert loaded.max_listeners == 500
    assert loaded.max_session_lifetime_seconds == loaded.lifetime_ceiling_seconds == 24 * 3600
    assert loaded.max_active_sessions_per_speaker == 3
    assert loaded.transcript_retention_seconds == 7 * 86400
    assert loaded.languages == SUPPORTED_LANGUAGES
    assert function_settings.defaults()["supported_languages"] == ""
    assert loaded.polly_voices == {} and function_settings.defaults()["polly_voices"] == ""


def test_context_keys_are_the_camel_case_names() -> None:
    assert {setting.context_key for setting in function_settings.FUNCTION_SETTINGS} == {
        "sessionLifetimeHours",
        "maxListenersPerSession",
        "speakerGraceSeconds",
        "sessionsPerUserPerHour",
        "joinsPerSessionPerMinute",
        "connectionsPerSourcePerMinute",
        "supportedLanguages",
        "sessionIdVocabulary",
        "maxSessionLifetimeHours",
        "maxActiveSessionsPerSpeaker",
        "transcriptRetentionDays",
        "pollyVoices",
    }


def test_the_connection_time_scale_is_1_unless_the_local_run_sets_it(monkeypatch) -> None:
    # Deployed, the stack never sets CONNECTION_TIME_SCALE (tests/infrastructure/test_functions.py): the scale is 1
    assert function_settings.load().connection_time_scale == 1.0
    monkeypatch.setenv(function_settings.ENV_CONNECTION_TIME_SCALE, "60")
    runtime.reset()
    assert function_settings.load().connection_time_scale == 60.0


@pytest.mark.parametrize("raw", ["0", "-2", "nan", "inf", "fast"])
def test_a_time_scale_must_be_a_positive_number(raw: str) -> None:
    with pytest.raises(ValueError, match="positive number"):
        function_settings.parse_time_scale(raw)
