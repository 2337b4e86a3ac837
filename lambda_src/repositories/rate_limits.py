"""The RateLimits table: one counter per limit, key and fixed time window, written only inside the
transaction of the operation it limits (so a refused operation counts nothing, and a counted one happened)."""

from __future__ import annotations

from dataclasses import dataclass

from lambda_src.errors import ErrorCode, ServiceError
from lambda_src.repositories import dynamodb
from lambda_src.repositories.dynamodb import TransactItem
from lambda_src.schema import RATE_LIMITS_PARTITION_KEY, RATE_LIMITS_TTL_ATTRIBUTE

# A window's counter outlives the window a little (TTL deletion lags anyway); reads never look back.
_EXPIRY_MARGIN_SECONDS = 60


@dataclass(frozen=True)
class Limit:
    """At most ``allowed`` per ``window_seconds`` for one key, e.g. createSession per user per hour."""

    name: str
    allowed: int
    window_seconds: int
    what: str  # how the refusal describes what is counted, e.g. "sessions created by this user"

    def window(self, now_s: int) -> tuple[int, int]:
        start = now_s - now_s % self.window_seconds
        return start, start + self.window_seconds


class RateLimitsRepository:
    def __init__(self, table_name: str) -> None:
        if not table_name:
            raise RuntimeError("RATE_LIMITS_TABLE is not set")
        self.table_name = table_name

    def count_item(self, limit: Limit, key: str, now_s: int) -> TransactItem:
        """Transaction item: one more in this window, only while under the limit."""
        start, end = limit.window(now_s)
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": dynamodb.serialize({RATE_LIMITS_PARTITION_KEY: f"{limit.name}#{key}#{start}"}),
                "UpdateExpression": "ADD #count :one SET #expires = :expires",
                "ConditionExpression": "attribute_not_exists(#count) OR #count < :allowed",
                "ExpressionAttributeNames": {"#count": "count", "#expires": RATE_LIMITS_TTL_ATTRIBUTE},
                "ExpressionAttributeValues": dynamodb.values(
                    one=1, expires=end + _EXPIRY_MARGIN_SECONDS, allowed=limit.allowed
                ),
            }
        }

    @staticmethod
    def refusal(limit: Limit, now_s: int) -> ServiceError:
        _start, end = limit.window(now_s)
        return ServiceError(
            ErrorCode.RATE_LIMIT_EXCEEDED,
            f"at most {limit.allowed} {limit.what} per {_duration(limit.window_seconds)}; retry after {end - now_s} s",
            retry_after=max(1, end - now_s),
        )


def _duration(seconds: int) -> str:
    return {60: "minute", 3600: "hour"}.get(seconds, f"{seconds} s")
