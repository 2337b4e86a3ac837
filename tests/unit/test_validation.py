"""Validation of client input (contract: "Validation of the partial-result parameters", "Other inputs")."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_src.contract import limits
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.contract.languages import SUPPORTED_LANGUAGES
from lambda_src.model.partial_results import PartialResultConfig
from lambda_src.protocol.validation import parse_create_session, parse_join_session, parse_partial_result_config

LANGUAGES = SUPPORTED_LANGUAGES
VALID_CREATE = {"sourceLanguage": "en", "qualityTier": "standard"}


def refusal(call, *args) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call(*args)
    return caught.value


# --- minStability / maxBufferTimeout bounds ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("minStability", "0.70", Decimal("0.70")),
        ("minStability", "0.95", Decimal("0.95")),
        ("minStability", "0.7", Decimal("0.7")),
        ("maxBufferTimeout", "2.0", Decimal("2.0")),
        ("maxBufferTimeout", "10.0", Decimal("10.0")),
        ("maxBufferTimeout", "2", Decimal("2")),
        ("maxBufferTimeout", "10", Decimal("10")),
    ],
)
def test_inclusive_bounds_are_accepted(field, value, expected):
    # Given a value exactly on a bound
    # When it is validated
    config = parse_partial_result_config({field: value})
    # Then it is accepted with its exact decimal value
    stored = config.min_stability_threshold if field == "minStability" else config.max_buffer_timeout
    assert stored == expected
    assert isinstance(stored, Decimal)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("minStability", "0.69"),
        ("minStability", "0.6999"),
        ("minStability", "0.951"),
        ("minStability", "0.96"),
        ("minStability", "1"),
        ("minStability", "-0.85"),
        ("minStability", 0.69),
        ("minStability", Decimal("0.951")),
        ("maxBufferTimeout", "1.99"),
        ("maxBufferTimeout", "10.01"),
        ("maxBufferTimeout", "0"),
        ("maxBufferTimeout", 11),
        ("maxBufferTimeout", Decimal("1.99")),
    ],
)
def test_out_of_range_values_are_refused(field, value):
    # Given a value just outside the inclusive range
    # When it is validated
    error = refusal(parse_partial_result_config, {field: value})
    # Then it is refused as INVALID_CONFIGURATION naming the field
    assert error.code is ErrorCode.INVALID_CONFIGURATION
    assert error.field == field
    assert error.code.status == 400


MALFORMED_NUMBERS = [
    float("nan"),
    float("inf"),
    float("-inf"),
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal("sNaN"),
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    True,
    False,
    "",
    " 0.85",
    "0.85 ",
    "0x1",
    "1e999999",
    "1_0",
    "abc",
    "0,85",
    "85%",
    None,
    [],
    [0.85],
    {},
    {"value": 0.85},
]


@pytest.mark.parametrize("field", ["minStability", "maxBufferTimeout"])
@pytest.mark.parametrize("value", MALFORMED_NUMBERS, ids=repr)
def test_malformed_numbers_are_refused(field, value):
    # Given a value that is not a finite JSON number nor a plain decimal string
    # When it is validated
    error = refusal(parse_partial_result_config, {field: value})
    # Then it is INVALID_CONFIGURATION with the field named, never a silent default
    assert error.code is ErrorCode.INVALID_CONFIGURATION
    assert error.field == field
    assert field in error.message


@pytest.mark.parametrize(
    "value",
    ["0.85", ".85", "8.5e-1", "85E-2", "0.850", Decimal("0.85"), 0.85],
    ids=repr,
)
def test_decimal_forms_of_min_stability_give_the_exact_decimal(value):
    # Given 0.85 written as a decimal string or a JSON number (Decimal as parsed, or a Python float)
    # When it is validated
    result = parse_partial_result_config({"minStability": value}).min_stability_threshold
    # Then it is exactly Decimal("0.85"), without binary float noise
    assert isinstance(result, Decimal)
    assert result == Decimal("0.85")
    assert "0000000" not in str(result) and "9999999" not in str(result)
    assert result != Decimal(0.85)  # the noisy form the contract forbids


def test_float_is_converted_without_noise():
    # Given Python floats whose binary value is not the decimal written
    config = parse_partial_result_config({"minStability": 0.85, "maxBufferTimeout": 5.0})
    # Then the decimals are the short forms
    assert str(config.min_stability_threshold) == "0.85"
    assert str(config.max_buffer_timeout) == "5.0"


def test_integer_json_number_is_accepted():
    # Given an integer JSON number
    config = parse_partial_result_config({"maxBufferTimeout": 5})
    # Then it is the exact decimal 5
    assert config.max_buffer_timeout == Decimal("5")
    assert isinstance(config.max_buffer_timeout, Decimal)


@pytest.mark.parametrize("value", ["0.85" + "0" * 40, "0.8" + "5" * 60], ids=["trailing-zeros", "long-digits"])
def test_accepted_values_are_storable_in_dynamodb(value):
    # Given an in-range decimal string with more digits than DynamoDB stores (38)
    # When it is validated
    try:
        config = parse_partial_result_config({"minStability": value})
    except ServiceError as error:
        # Then either it is refused as a configuration error...
        assert error.code is ErrorCode.INVALID_CONFIGURATION
        return
    # ...or what is accepted can be written as a DynamoDB number
    TypeSerializer().serialize(config.min_stability_threshold)


# --- partialResults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("false", False), ("FALSE", False), ("True", True), ("tRuE", True)],
)
def test_partial_results_booleans_and_their_strings(value, expected):
    # Given a JSON boolean or its string in any case
    config = parse_partial_result_config({"partialResults": value})
    # Then it is read as that boolean
    assert config.partial_results_enabled is expected


@pytest.mark.parametrize("value", ["yes", "no", "1", "0", 1, 0, "", None, " true", "t", [], {}], ids=repr)
def test_partial_results_anything_else_is_an_error_not_false(value):
    # Given a value that is not a boolean nor "true"/"false"
    error = refusal(parse_partial_result_config, {"partialResults": value})
    # Then it is refused, naming the field, rather than read as false
    assert error.code is ErrorCode.INVALID_CONFIGURATION
    assert error.field == "partialResults"
    assert "partialResults" in error.message
    assert "true or false" in error.message


# --- error messages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"minStability": "0.99"}, "minStability must be between 0.70 and 0.95, got 0.99"),
        ({"minStability": Decimal("0.99")}, "minStability must be between 0.70 and 0.95, got 0.99"),
        ({"minStability": 0.99}, "minStability must be between 0.70 and 0.95, got 0.99"),
        ({"minStability": "0.69"}, "minStability must be between 0.70 and 0.95, got 0.69"),
        ({"maxBufferTimeout": "10.01"}, "maxBufferTimeout must be between 2.0 and 10.0 seconds, got 10.01"),
        ({"partialResults": "yes"}, "partialResults must be true or false, got yes"),
    ],
)
def test_error_message_names_field_range_and_value(fields, message):
    error = refusal(parse_partial_result_config, fields)
    assert error.message == message


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("minStability", "abc", "got abc"),
        ("minStability", True, "got true"),
        ("minStability", None, "got null"),
        ("minStability", "", "got an empty string"),
        ("maxBufferTimeout", [1], "got a JSON array"),
        ("maxBufferTimeout", {"a": 1}, "got a JSON object"),
    ],
)
def test_malformed_value_message_names_range_and_what_came(field, value, shown):
    error = refusal(parse_partial_result_config, {field: value})
    low, high = ("0.70", "0.95") if field == "minStability" else ("2.0", "10.0")
    assert error.message.startswith(f"{field} must be a number between {low} and {high}")
    assert error.message.endswith(shown)


def test_long_value_is_quoted_back_shortened():
    # Given a long non-number (under the size limit)
    error = refusal(parse_partial_result_config, {"minStability": "z" * 200})
    # Then the message quotes only a bounded prefix
    assert len(error.message) < 150
    assert error.message.endswith("...")


# --- defaults and base -----------------------------------------------------------------------------


def test_defaults_when_absent():
    config = parse_partial_result_config({})
    assert config.partial_results_enabled is True
    assert config.min_stability_threshold == Decimal("0.85")
    assert config.max_buffer_timeout == Decimal("5.0")
    assert str(config.min_stability_threshold) == "0.85"
    assert str(config.max_buffer_timeout) == "5.0"


def test_absent_fields_keep_the_base_configuration():
    # Given an existing configuration (as updateSessionConfig would pass)
    base = PartialResultConfig(False, Decimal("0.9"), Decimal("3.0"))
    # When only one field is sent
    config = parse_partial_result_config({"maxBufferTimeout": "7.5"}, base)
    # Then only that field changes
    assert config == PartialResultConfig(False, Decimal("0.9"), Decimal("7.5"))


def test_create_session_defaults():
    request = parse_create_session({"sourceLanguage": "en"}, LANGUAGES)
    assert request.source_language == "en"
    assert request.quality_tier == "standard"
    assert request.config == PartialResultConfig(True, Decimal("0.85"), Decimal("5.0"))


def test_create_session_seed_query_values():
    # Given the seed's query string values (all strings)
    fields = {
        "action": "createSession",
        "sourceLanguage": "en",
        "qualityTier": "premium",
        "partialResults": "true",
        "minStability": "0.85",
        "maxBufferTimeout": "5.0",
    }
    request = parse_create_session(fields, LANGUAGES)
    assert request.quality_tier == "premium"
    assert request.config == PartialResultConfig(True, Decimal("0.85"), Decimal("5.0"))


def test_create_session_config_error_propagates():
    error = refusal(parse_create_session, {**VALID_CREATE, "minStability": "0.99"}, LANGUAGES)
    assert error.code is ErrorCode.INVALID_CONFIGURATION
    assert error.field == "minStability"


# --- qualityTier, languages -------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["Standard", " standard", "standard ", "PREMIUM", "gold", "", None, 1, ["standard"]])
def test_quality_tier_is_exact(tier):
    error = refusal(parse_create_session, {"sourceLanguage": "en", "qualityTier": tier}, LANGUAGES)
    assert error.code is ErrorCode.INVALID_PARAMETERS
    assert error.field == "qualityTier"
    assert "standard" in error.message and "premium" in error.message


@pytest.mark.parametrize("tier", ["standard", "premium"])
def test_quality_tiers_accepted(tier):
    assert parse_create_session({"sourceLanguage": "en", "qualityTier": tier}, LANGUAGES).quality_tier == tier


@pytest.mark.parametrize("value", ["xx", "EN", "en ", "eng", "en-US", "", 1, ["en"]], ids=repr)
def test_unknown_source_language_is_refused_listing_supported_codes(value):
    error = refusal(parse_create_session, {"sourceLanguage": value}, LANGUAGES)
    assert error.code is ErrorCode.INVALID_PARAMETERS
    assert error.field == "sourceLanguage"
    assert "sourceLanguage" in error.message
    for code in ("en", "es", "fr", "zh"):
        assert code in error.message


def test_missing_source_language_is_refused():
    error = refusal(parse_create_session, {"qualityTier": "standard"}, LANGUAGES)
    assert error.code is ErrorCode.INVALID_PARAMETERS
    assert error.field == "sourceLanguage"
    assert "required" in error.message


def test_language_list_is_the_given_one():
    # Given an environment narrowed to two languages
    narrowed = frozenset({"en", "es"})
    assert parse_create_session({"sourceLanguage": "es"}, narrowed).source_language == "es"
    error = refusal(parse_create_session, {"sourceLanguage": "fr"}, narrowed)
    assert "en, es" in error.message


@pytest.mark.parametrize("value", ["xx", "ES", None], ids=repr)
def test_unknown_or_missing_target_language_is_refused(value):
    fields = {"sessionId": "golden-eagle-427"}
    if value is not None:
        fields["targetLanguage"] = value
    error = refusal(parse_join_session, fields, LANGUAGES)
    assert error.code is ErrorCode.INVALID_PARAMETERS
    assert error.field == "targetLanguage"
    assert "targetLanguage" in error.message


# --- sessionId ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("session_id", ["golden-eagle-427", "a-b-100", "brave-fox-999"])
def test_valid_session_ids(session_id):
    request = parse_join_session({"sessionId": session_id, "targetLanguage": "es"}, LANGUAGES)
    assert request.session_id == session_id
    assert request.target_language == "es"


@pytest.mark.parametrize(
    "session_id",
    [
        "golden-eagle-027",
        "golden-eagle-42",
        "golden-eagle-4270",
        "Golden-eagle-427",
        "golden_eagle_427",
        "golden-eagle",
        "golden-eagle-427 ",
        " golden-eagle-427",
        "golden-bald-eagle-427",
        "",
        427,
        ["golden-eagle-427"],
    ],
    ids=repr,
)
def test_malformed_session_ids_are_refused(session_id):
    error = refusal(parse_join_session, {"sessionId": session_id, "targetLanguage": "es"}, LANGUAGES)
    assert error.code is ErrorCode.INVALID_PARAMETERS
    assert error.field == "sessionId"


def test_session_id_with_trailing_newline_is_refused():
    # Given a session id followed by a newline (not of the form adjective-noun-NNN)
    error = refusal(parse_join_session, {"sessionId": "golden-eagle-427\n", "targetLanguage": "es"}, LANGUAGES)
    # Then it is refused as a malformed session id
    assert error.code is ErrorCode.INVALID_PARAMETERS
    assert error.field == "sessionId"


@pytest.mark.parametrize("field", ["minStability", "maxBufferTimeout"])
def test_number_with_trailing_newline_is_refused(field):
    # Given a decimal string padded with whitespace at the end (as " 0.85" is at the start)
    error = refusal(parse_partial_result_config, {field: "5.0\n" if field == "maxBufferTimeout" else "0.85\n"})
    # Then it is refused like any other non-decimal string
    assert error.code is ErrorCode.INVALID_CONFIGURATION
    assert error.field == field


def test_missing_session_id_is_refused():
    error = refusal(parse_join_session, {"targetLanguage": "es"}, LANGUAGES)
    assert error.code is ErrorCode.INVALID_PARAMETERS
    assert error.field == "sessionId"


# --- sizes ------------------------------------------------------------------------------------------

LONG = "9" * (limits.MAX_FIELD_LENGTH + 1)


@pytest.mark.parametrize("field", ["minStability", "maxBufferTimeout", "partialResults"])
def test_over_long_config_field_is_invalid_configuration(field):
    error = refusal(parse_create_session, {**VALID_CREATE, field: LONG}, LANGUAGES)
    assert error.code is ErrorCode.INVALID_CONFIGURATION
    assert error.field == field
    assert str(limits.MAX_FIELD_LENGTH) in error.message


def test_over_long_in_range_number_is_refused_before_parsing():
    # Given an in-range number that is only too long ("0.8" followed by many digits)
    error = refusal(parse_create_session, {**VALID_CREATE, "minStability": "0.8" + "5" * 300}, LANGUAGES)
    assert error.code is ErrorCode.INVALID_CONFIGURATION
    assert error.field == "minStability"


@pytest.mark.parametrize(
    ("call", "fields", "field"),
    [
        (parse_create_session, {"sourceLanguage": "e" * 257}, "sourceLanguage"),
        (parse_create_session, {**VALID_CREATE, "qualityTier": "s" * 257}, "qualityTier"),
        (parse_create_session, {**VALID_CREATE, "anything": "x" * 257}, "anything"),
        (parse_join_session, {"sessionId": "a" * 257, "targetLanguage": "es"}, "sessionId"),
        (parse_join_session, {"sessionId": "golden-eagle-427", "targetLanguage": "t" * 257}, "targetLanguage"),
    ],
)
def test_over_long_other_fields_are_invalid_parameters(call, fields, field):
    error = refusal(call, fields, LANGUAGES)
    assert error.code is ErrorCode.INVALID_PARAMETERS
    assert error.field == field


def test_field_of_exactly_the_limit_is_not_refused_for_size():
    # A 256-character value passes the size check (and then fails the language check instead)
    error = refusal(parse_create_session, {"sourceLanguage": "e" * limits.MAX_FIELD_LENGTH}, LANGUAGES)
    assert "characters" not in error.message
    assert "ISO 639-1" in error.message


# --- properties ------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0.70, max_value=0.95))
def test_any_float_in_range_is_accepted_for_min_stability(value):
    result = parse_partial_result_config({"minStability": value}).min_stability_threshold
    assert Decimal("0.70") <= result <= Decimal("0.95")
    assert float(result) == value  # the shortest round-tripping decimal, no noise added


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda value: not 0.70 <= value <= 0.95))
def test_any_finite_float_outside_is_refused_for_min_stability(value):
    assert math.isfinite(value)
    error = refusal(parse_partial_result_config, {"minStability": value})
    assert error.code is ErrorCode.INVALID_CONFIGURATION
    assert error.field == "minStability"
