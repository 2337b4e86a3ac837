"""The shared DynamoDB plumbing of the repositories: one low-level client, (de)serialization, and the
translation of DynamoDB failures into catalogue errors."""

from __future__ import annotations

from functools import cache
from typing import Any, Mapping, Sequence

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from lambda_src.errors import ErrorCode, ServiceError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Throttling and 5xx responses: botocore retries them with jitter, bounded well inside the function timeout.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=3)
_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
RETRY_AFTER_SECONDS = 1

TransactItem = dict[str, Any]


@cache
def client() -> Any:
    """The process's DynamoDB client (created once, reused across invocations)."""
    return boto3.client("dynamodb", config=_CLIENT_CONFIG)


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def values(**named: Any) -> dict[str, Any]:
    """ExpressionAttributeValues from keyword arguments: ``values(now=1)`` -> ``{":now": {"N": "1"}}``."""
    return {f":{name}": _serializer.serialize(value) for name, value in named.items()}


def cancellation_reasons(error: ClientError) -> list[str]:
    """The per-item codes of a cancelled transaction (``"None"`` for items that were not at fault)."""
    return [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def unavailable_if_throttled(error: ClientError) -> None:
    """Raise SERVICE_UNAVAILABLE for throttling / server errors that survived the client's retries."""
    code = error_code(error)
    reasons = cancellation_reasons(error) if code == "TransactionCanceledException" else []
    if code in _THROTTLING_CODES or any(reason in _THROTTLING_CODES | {"TransactionConflict"} for reason in reasons):
        raise ServiceError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "the session store is busy; retry shortly",
            retry_after=RETRY_AFTER_SECONDS,
        ) from error


def transact(items: Sequence[TransactItem]) -> None:
    """Write ``items`` atomically (one TransactWriteItems request)."""
    client().transact_write_items(TransactItems=list(items))
