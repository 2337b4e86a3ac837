"""The functions' attribute-value conversions give exactly what boto3's TypeSerializer / TypeDeserializer give
for every value of the types the service stores, and refuse what boto3 refuses."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.attribute_values import from_attribute, to_attribute

if TYPE_CHECKING:  # boto3's own name for an attribute value (a TypedDict of its kinds), in its stubs only
    from boto3.dynamodb.types import _AttributeValueTypeDef as Boto3AttributeValue

_boto3_serializer = TypeSerializer()
_boto3_deserializer = TypeDeserializer()

_numbers = st.one_of(
    st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: d == 0 or -130 <= d.adjusted() <= 125
    ),
)
_scalars = st.one_of(st.none(), st.booleans(), st.text(max_size=20), _numbers)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


def _boto3_to_attribute(value: Any) -> Boto3AttributeValue | type[Exception]:
    try:
        return _boto3_serializer.serialize(value)
    except Exception as error:  # noqa: BLE001 - the kind of refusal is what is compared
        return type(error)


def _ours_to_attribute(value: Any) -> dict[str, Any] | type[Exception]:
    try:
        return to_attribute(value)
    except Exception as error:  # noqa: BLE001
        return type(error)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_serializes_as_boto3_does(value: Any) -> None:
    assert _ours_to_attribute(value) == _boto3_to_attribute(value)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_deserializes_as_boto3_does_and_round_trips(value: Any) -> None:
    attribute = _boto3_to_attribute(value)
    if not isinstance(attribute, dict):
        return  # a number DynamoDB cannot hold exactly: refused on the way in (the serializer test covers it)
    ours = from_attribute(attribute)
    assert ours == _boto3_deserializer.deserialize(attribute)
    assert to_attribute(ours) == attribute


@pytest.mark.parametrize(
    "value, expected",
    [
        ("golden-eagle-427", {"S": "golden-eagle-427"}),
        (Decimal("0.85"), {"N": "0.85"}),
        (Decimal("5.0"), {"N": "5.0"}),
        (1764222000, {"N": "1764222000"}),
        (True, {"BOOL": True}),
        (None, {"NULL": True}),
        ({"fr": 2}, {"M": {"fr": {"N": "2"}}}),
        (["fr", "de"], {"L": [{"S": "fr"}, {"S": "de"}]}),
        (b"\x00\x01", {"B": b"\x00\x01"}),  # an audio chunk's PCM
    ],
)
def test_the_stored_forms(value: Any, expected: dict[str, Any]) -> None:
    assert to_attribute(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        0.85,  # floats are refused, not rounded
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),  # boto3 lets this one through; DynamoDB would refuse it
        {"a", "b"},  # sets are not stored by this service
        object(),
    ],
)
def test_refuses_what_it_does_not_store(value: Any) -> None:
    with pytest.raises(TypeError):
        to_attribute(value)


@pytest.mark.parametrize(
    "value",
    [
        Decimal("1." + "1" * 40),  # more than 38 significant digits: DynamoDB would round it
        Decimal("1E+200"),  # beyond DynamoDB's exponent range
        Decimal("1E-200"),
    ],
)
def test_refuses_numbers_it_cannot_store_unchanged(value: Decimal) -> None:
    with pytest.raises(ArithmeticError):
        to_attribute(value)


@pytest.mark.parametrize(
    "attribute, expected",
    [
        ({"B": b"0.9"}, b"0.9"),
        ({"SS": ["a", "b"]}, {"a", "b"}),
        ({"NS": ["1", "0.85"]}, {Decimal("1"), Decimal("0.85")}),
        ({"BS": [b"x"]}, {b"x"}),
        ({"L": [{"B": b"x"}, {"NS": ["2"]}]}, [b"x", {Decimal("2")}]),
    ],
)
def test_reads_every_type_another_writer_may_have_stored(attribute: Boto3AttributeValue, expected: Any) -> None:
    assert from_attribute(attribute) == expected
    assert _plain(_boto3_deserializer.deserialize(attribute)) == expected


def _plain(value: Any) -> Any:
    """boto3's reading with its ``Binary`` wrappers unwrapped to the ``bytes`` they hold."""
    if isinstance(value, Binary):
        return bytes(value.value)  # type: ignore[attr-defined]  # boto3-stubs leave out Binary.value, which boto3 sets
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, set):
        return {_plain(item) for item in value}
    return value


@pytest.mark.parametrize("attribute", [{"S": "a", "N": "1"}, {}, {"X": "1"}])
def test_refuses_what_is_not_one_attribute_value(attribute: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        from_attribute(attribute)


def test_item_helpers_convert_every_attribute() -> None:
    item = {"sessionId": "golden-eagle-427", "minStabilityThreshold": Decimal("0.85"), "partialResultsEnabled": True}
    stored = dynamodb.serialize(item)
    assert stored == {
        "sessionId": {"S": "golden-eagle-427"},
        "minStabilityThreshold": {"N": "0.85"},
        "partialResultsEnabled": {"BOOL": True},
    }
    assert dynamodb.deserialize(stored) == item
    assert dynamodb.values(now=1, id="x") == {":now": {"N": "1"}, ":id": {"S": "x"}}
