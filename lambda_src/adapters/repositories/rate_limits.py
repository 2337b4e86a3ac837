"""The RateLimits table: one counter per limit, key and fixed time window, written only inside the
transaction of the operation it limits (so a refused operation counts nothing, and a counted one happened);
one item per speaker holding the ids of its active sessions, written inside the transactions that create and
end them; and one item holding the deployment's secret for keying source addresses."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.dynamodb import TransactItem
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.contract.schema import RATE_LIMITS_PARTITION_KEY, RATE_LIMITS_TTL_ATTRIBUTE

# A window's counter outlives the window a little (TTL deletion lags anyway); reads never look back.
_EXPIRY_MARGIN_SECONDS = 60
# The item holding the secret that keys source addresses. No limit can produce this key (a counter's key is
# ``<limit name>#<key>#<window start>``, and the window start is a number), and the item has no TTL attribute,
# so it lives as long as the table. Losing it only yields a new secret: the per-source windows restart.
SOURCE_ADDRESS_SECRET_KEY = "secret#sourceAddressKey"
_SECRET_ATTRIBUTE = "secret"
SOURCE_ADDRESS_SECRET_BYTES = 32
# A speaker's active sessions: ``activeSessions#<user id>``, a string set of session ids. No counter's key
# starts with this (their limit names differ), and the secret's key is another. Its TTL is the lifetime
# ceiling of the latest session added, which no session it lists can outlive.
ACTIVE_SESSIONS_KEY_PREFIX = "activeSessions#"
_ACTIVE_SESSIONS_ATTRIBUTE = "sessionIds"
_ACTIVE_SESSIONS_NAMES = {"#sessions": _ACTIVE_SESSIONS_ATTRIBUTE, "#expires": RATE_LIMITS_TTL_ATTRIBUTE}


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
        self._source_address_secret: bytes | None = None

    def source_address_secret(self) -> bytes:
        """The deployment's secret for keying source addresses, cached for the life of the process: read with
        one consistent GetItem; created by the first process that finds none (a conditional PutItem, so
        processes racing to create it all end up with the one that was written first)."""
        if self._source_address_secret is None:
            self._source_address_secret = self._read_secret() or self._create_secret()
        return self._source_address_secret

    def _secret_key(self) -> dict[str, dict[str, str]]:
        return dynamodb.serialize({RATE_LIMITS_PARTITION_KEY: SOURCE_ADDRESS_SECRET_KEY})

    def _read_secret(self) -> bytes | None:
        """The stored secret; None when there is none (or what is stored is not one: it is then replaced)."""
        response = dynamodb.request("get_item", TableName=self.table_name, Key=self._secret_key(), ConsistentRead=True)
        value = response.get("Item", {}).get(_SECRET_ATTRIBUTE, {}).get("B")
        return value if isinstance(value, bytes) and len(value) == SOURCE_ADDRESS_SECRET_BYTES else None

    def _create_secret(self) -> bytes:
        secret = secrets.token_bytes(SOURCE_ADDRESS_SECRET_BYTES)
        try:
            dynamodb.request(
                "put_item",
                TableName=self.table_name,
                Item={**self._secret_key(), _SECRET_ATTRIBUTE: {"B": secret}},
                # Absent, or not a secret (wrong type or length): written; a valid one is never overwritten.
                ConditionExpression=(
                    "attribute_not_exists(#secret) OR NOT attribute_type(#secret, :binary) OR size(#secret) <> :size"
                ),
                ExpressionAttributeNames={"#secret": _SECRET_ATTRIBUTE},
                ExpressionAttributeValues=dynamodb.values(binary="B", size=SOURCE_ADDRESS_SECRET_BYTES),
            )
        except ClientError as error:
            if dynamodb.error_code(error) != "ConditionalCheckFailedException":
                raise
            # Another process created it first: use that one.
            stored = self._read_secret()
            if stored is None:
                raise
            return stored
        return secret

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

    # -- a speaker's active sessions -----------------------------------------------------------------
    def _active_sessions_key(self, user_id: str) -> dict[str, Any]:
        return dynamodb.serialize({RATE_LIMITS_PARTITION_KEY: ACTIVE_SESSIONS_KEY_PREFIX + user_id})

    def add_active_session_item(self, user_id: str, session_id: str, allowed: int, expires_at_s: int) -> TransactItem:
        """Transaction item: ``session_id`` joins the speaker's active sessions, only while it has fewer than
        ``allowed`` (so two creations at once cannot both pass at the limit); a failed condition returns the
        item, whose ids :func:`active_session_ids` reads."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._active_sessions_key(user_id),
                "UpdateExpression": "ADD #sessions :session SET #expires = :expires",
                "ConditionExpression": "attribute_not_exists(#sessions) OR size(#sessions) < :allowed",
                "ExpressionAttributeNames": _ACTIVE_SESSIONS_NAMES,
                "ExpressionAttributeValues": {
                    ":session": {"SS": [session_id]},
                    **dynamodb.values(expires=expires_at_s, allowed=allowed),
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def remove_active_session_item(self, user_id: str, session_id: str, expires_at_s: int) -> TransactItem:
        """Transaction item: ``session_id`` leaves the speaker's active sessions (whether or not it was listed:
        a session created before they were kept). An item this creates expires at ``expires_at_s``."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._active_sessions_key(user_id),
                "UpdateExpression": "DELETE #sessions :session SET #expires = if_not_exists(#expires, :expires)",
                "ExpressionAttributeNames": _ACTIVE_SESSIONS_NAMES,
                "ExpressionAttributeValues": {
                    ":session": {"SS": [session_id]},
                    **dynamodb.values(expires=expires_at_s),
                },
            }
        }

    def forget_active_sessions(self, user_id: str, session_ids: Iterable[str]) -> None:
        """Take ``session_ids`` (sessions found gone) out of the speaker's active sessions."""
        ids = sorted(set(session_ids))
        if not ids:
            return
        dynamodb.request(
            "update_item",
            TableName=self.table_name,
            Key=self._active_sessions_key(user_id),
            UpdateExpression="DELETE #sessions :sessions",
            ExpressionAttributeNames={"#sessions": _ACTIVE_SESSIONS_ATTRIBUTE},
            ExpressionAttributeValues={":sessions": {"SS": ids}},
        )

    @staticmethod
    def active_session_ids(item: dict[str, Any] | None) -> set[str]:
        """The session ids of a speaker's active-sessions item as a transaction returned it (serialized)."""
        if item is None:
            return set()
        ids = dynamodb.deserialize(item).get(_ACTIVE_SESSIONS_ATTRIBUTE)
        return {i for i in ids if isinstance(i, str)} if isinstance(ids, set) else set()

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
