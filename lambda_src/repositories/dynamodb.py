"""The shared DynamoDB plumbing of the repositories: one low-level client, (de)serialization, and the
translation of DynamoDB failures into catalogue errors."""

from __future__ import annotations

import random
import time
from functools import cache
from typing import Any, Callable, Mapping, Sequence

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
# Writes that collide with a concurrent transaction on the same item (every join touches its session's
# item) are refused whole and are safe to repeat: retried with full jitter, ~1.3 s at most in all.
_CONFLICT_BACKOFF_SECONDS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)
_CONFLICT_CODES = frozenset({"TransactionConflict", "TransactionConflictException", "TransactionInProgressException"})

TransactItem = dict[str, Any]
# A transaction item and what to raise when its condition fails (given the item's old image, if returned).
Guarded = tuple[TransactItem, Callable[[dict[str, Any] | None], Exception]]


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


def _conflicted(error: ClientError) -> bool:
    """Refused only because another transaction held an item, with no condition failing."""
    code = error_code(error)
    if code == "TransactionCanceledException":
        reasons = cancellation_reasons(error)
        return any(r in _CONFLICT_CODES for r in reasons) and "ConditionalCheckFailed" not in reasons
    return code in _CONFLICT_CODES


def with_conflict_retry(operation: Callable[..., Any], **arguments: Any) -> Any:
    """Call ``operation``, repeating it while it is refused only for a conflicting concurrent transaction."""
    for pause in _CONFLICT_BACKOFF_SECONDS:
        try:
            return operation(**arguments)
        except ClientError as error:
            if not _conflicted(error):
                raise
        time.sleep(random.uniform(0, pause))
    return operation(**arguments)


def transact(items: Sequence[TransactItem]) -> None:
    """Write ``items`` atomically (one TransactWriteItems request, repeated only on a conflict)."""
    with_conflict_retry(client().transact_write_items, TransactItems=list(items))


def transact_guarded(guarded: Sequence[Guarded]) -> None:
    """Write the items atomically; when one's condition fails, raise that item's refusal (the first one)."""
    try:
        transact([item for item, _refusal in guarded])
    except ClientError as error:
        unavailable_if_throttled(error)
        reasons = error.response.get("CancellationReasons", [])
        for (_item, refusal), reason in zip(guarded, reasons):
            if reason.get("Code") == "ConditionalCheckFailed":
                raise refusal(reason.get("Item")) from error
        raise
