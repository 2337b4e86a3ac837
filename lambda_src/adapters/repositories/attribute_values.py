"""Python values to DynamoDB attribute values and back. Written: the types this service stores (strings,
numbers, booleans, null, binary (audio chunks), maps and lists). Read: every DynamoDB type, since an item may
hold what another writer put there (binary values come back as ``bytes``, sets as ``set``).

The same conversions as boto3's ``TypeSerializer`` / ``TypeDeserializer`` (``tests/unit/test_attribute_values.py``
holds them to boto3's output), written here so that the functions need botocore only: importing boto3 for them
would load its resource layer and s3transfer on every cold start, about a tenth of one (``make bench``, section 3).
Numbers go through DynamoDB's own decimal context, so a number DynamoDB would round or refuse raises here
instead of being stored changed; floats are refused, as boto3 refuses them, and so are all non-finite numbers
(boto3 lets ``-Infinity`` through to DynamoDB, which refuses it).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any, Final

# DynamoDB numbers: 38 significant digits, exponents -130..125 (boto3's DYNAMODB_CONTEXT).
NUMBER_CONTEXT: Final = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])


def _number(value: int | Decimal) -> str:
    text = str(NUMBER_CONTEXT.create_decimal(value))
    if text in ("Infinity", "-Infinity", "NaN", "-NaN", "sNaN", "-sNaN"):
        raise TypeError(f"{text} is not a DynamoDB number")
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def to_attribute(value: Any) -> dict[str, Any]:
    """One attribute value: ``"a"`` -> ``{"S": "a"}``, ``Decimal("0.85")`` -> ``{"N": "0.85"}``."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": {key: to_attribute(item) for key, item in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [to_attribute(item) for item in value]}
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    raise TypeError(f"Unsupported type {type(value)!r} for value {value!r}")


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    """One Python value: ``{"N": "0.85"}`` -> ``Decimal("0.85")``, ``{"S": "a"}`` -> ``"a"``."""
    if len(attribute) != 1:
        raise TypeError(f"an attribute value has exactly one type, got {sorted(attribute)}")
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return NUMBER_CONTEXT.create_decimal(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "M":
        return {key: from_attribute(item) for key, item in value.items()}
    if kind == "L":
        return [from_attribute(item) for item in value]
    if kind == "B":
        return bytes(value)
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {NUMBER_CONTEXT.create_decimal(item) for item in value}
    if kind == "BS":
        return {bytes(item) for item in value}
    raise TypeError(f"unknown DynamoDB type {kind!r}")
