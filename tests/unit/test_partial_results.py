"""The partial-result configuration's storage and wire forms, and reading stored items defensively."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeSerializer

from lambda_src.contract import partial_result_fields
from lambda_src.model import partial_results
from lambda_src.model.partial_results import PartialResultConfig
from lambda_src.protocol.validation import parse_partial_result_config

DEFAULTS = PartialResultConfig(True, Decimal("0.85"), Decimal("5.0"))


def test_defaults_are_the_contracts():
    assert PartialResultConfig() == DEFAULTS


def test_to_item_has_decimal_numbers_stored_without_noise():
    # Given the default configuration
    item = PartialResultConfig().to_item()
    # Then the attributes are the contract's names with exact Decimals
    assert item == {
        "partialResultsEnabled": True,
        "minStabilityThreshold": Decimal("0.85"),
        "maxBufferTimeout": Decimal("5.0"),
    }
    assert all(not isinstance(value, float) for value in item.values())
    # And DynamoDB receives them as the short number strings
    serialized = {key: TypeSerializer().serialize(value) for key, value in item.items()}
    assert serialized == {
        "partialResultsEnabled": {"BOOL": True},
        "minStabilityThreshold": {"N": "0.85"},
        "maxBufferTimeout": {"N": "5.0"},
    }


def test_to_message_gives_json_numbers():
    # Given a configuration
    message = PartialResultConfig(False, Decimal("0.9"), Decimal("2.5")).to_message()
    # Then the wire form has JSON booleans and numbers (not strings)
    assert message == {"partialResultsEnabled": False, "minStabilityThreshold": 0.9, "maxBufferTimeout": 2.5}
    assert json.dumps(PartialResultConfig().to_message(), separators=(",", ":")) == (
        '{"partialResultsEnabled":true,"minStabilityThreshold":0.85,"maxBufferTimeout":5.0}'
    )


def test_round_trip_through_an_item():
    config = PartialResultConfig(False, Decimal("0.72"), Decimal("9.5"))
    assert partial_results.from_item(config.to_item()) == config


def test_item_without_the_fields_reads_back_with_defaults():
    # Given an item written before the partial-result fields existed
    item = {"sessionId": "golden-eagle-427", "sourceLanguage": "en", "listenerCount": Decimal(3)}
    # Then it reads back with the defaults
    assert partial_results.from_item(item) == DEFAULTS


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("minStabilityThreshold", "abc"),
        ("minStabilityThreshold", True),
        ("minStabilityThreshold", False),
        ("minStabilityThreshold", Decimal("0.99")),
        ("minStabilityThreshold", Decimal("0.5")),
        ("minStabilityThreshold", Decimal("NaN")),
        ("minStabilityThreshold", "Infinity"),
        ("minStabilityThreshold", None),
        ("minStabilityThreshold", ["0.85"]),
        ("minStabilityThreshold", {"N": "0.85"}),
        ("minStabilityThreshold", b"0.85"),
        ("maxBufferTimeout", "abc"),
        ("maxBufferTimeout", True),
        ("maxBufferTimeout", Decimal("60")),
        ("maxBufferTimeout", 1),
        ("maxBufferTimeout", Decimal("-Infinity")),
        ("partialResultsEnabled", "false"),
        ("partialResultsEnabled", "true"),
        ("partialResultsEnabled", 0),
        ("partialResultsEnabled", Decimal(0)),
        ("partialResultsEnabled", None),
    ],
    ids=repr,
)
def test_corrupt_attribute_reads_back_as_its_default(attribute, value):
    # Given an item whose one attribute is of the wrong type or out of range, the others being valid
    good = PartialResultConfig(False, Decimal("0.75"), Decimal("8"))
    item = {**good.to_item(), attribute: value}
    # When it is read (no exception)
    config = partial_results.from_item(item)
    # Then the corrupt attribute has its default and the others keep their stored values
    expected = {
        "partialResultsEnabled": PartialResultConfig(True, Decimal("0.75"), Decimal("8")),
        "minStabilityThreshold": PartialResultConfig(False, Decimal("0.85"), Decimal("8")),
        "maxBufferTimeout": PartialResultConfig(False, Decimal("0.75"), Decimal("5.0")),
    }[attribute]
    assert config == expected


def test_all_corrupt_attributes_read_back_as_defaults():
    item = {"partialResultsEnabled": "no", "minStabilityThreshold": "abc", "maxBufferTimeout": True}
    assert partial_results.from_item(item) == DEFAULTS


@pytest.mark.parametrize("field", partial_result_fields.FIELDS, ids=lambda field: field.request)
def test_each_setting_goes_from_its_request_name_to_its_stored_and_message_name_and_back(field):
    # Given a request asking for a value other than the default under the setting's request name
    value = (not field.default) if field.kind is bool else field.bounds[0]
    config = parse_partial_result_config({field.request: value})
    # Then the item stores it under the stored name, reads it back, and messages carry it under the same name
    assert config.to_item()[field.stored] == value
    assert partial_results.from_item(config.to_item()) == config
    assert config.to_message()[field.stored] == (value if field.kind is bool else float(value))
    # And it is the configuration attribute the transcription processor reads
    assert getattr(config, field.attribute) == value
