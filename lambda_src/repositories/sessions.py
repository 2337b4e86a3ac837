"""The Sessions table: the only code that reads or writes session items."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from botocore.exceptions import ClientError

from lambda_src import config as partial_config
from lambda_src.config import PartialResultConfig
from lambda_src.errors import ErrorCode, ServiceError
from lambda_src.repositories import dynamodb
from lambda_src.repositories.dynamodb import TransactItem
from lambda_src.schema import SESSIONS_PARTITION_KEY, SESSIONS_TTL_ATTRIBUTE


@dataclass(frozen=True)
class Session:
    """A Sessions item (the contract's schema)."""

    session_id: str
    speaker_connection_id: str
    speaker_user_id: str
    source_language: str
    quality_tier: str
    created_at_ms: int
    expires_at_s: int
    is_active: bool = True
    listener_count: int = 0
    config: PartialResultConfig = field(default_factory=PartialResultConfig)

    def to_item(self) -> dict[str, Any]:
        return {
            SESSIONS_PARTITION_KEY: self.session_id,
            "speakerConnectionId": self.speaker_connection_id,
            "speakerUserId": self.speaker_user_id,
            "sourceLanguage": self.source_language,
            "qualityTier": self.quality_tier,
            "createdAt": self.created_at_ms,
            "isActive": self.is_active,
            "listenerCount": self.listener_count,
            SESSIONS_TTL_ATTRIBUTE: self.expires_at_s,
            **self.config.to_item(),
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "Session":
        return cls(
            session_id=item[SESSIONS_PARTITION_KEY],
            speaker_connection_id=item.get("speakerConnectionId", ""),
            speaker_user_id=item.get("speakerUserId", ""),
            source_language=item.get("sourceLanguage", ""),
            quality_tier=item.get("qualityTier", ""),
            created_at_ms=int(item.get("createdAt", 0)),
            expires_at_s=int(item.get(SESSIONS_TTL_ATTRIBUTE, 0)),
            is_active=bool(item.get("isActive", False)),
            listener_count=int(item.get("listenerCount", 0)),
            config=partial_config.from_item(item),
        )


class SessionIdTaken(Exception):
    """The conditional put found a live session with the same id; draw another id."""


class SessionsRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def create(self, session: Session, with_items: Sequence[TransactItem] = ()) -> None:
        """Write a new session and ``with_items`` (the speaker's connection row) in one transaction.

        Raises :class:`SessionIdTaken` when the id belongs to a live session (an expired one that TTL has
        not yet deleted may be replaced), and ServiceError when one of ``with_items`` is refused.
        """
        put = {
            "Put": {
                "TableName": self.table_name,
                "Item": dynamodb.serialize(session.to_item()),
                "ConditionExpression": "attribute_not_exists(#id) OR #expires <= :now",
                "ExpressionAttributeNames": {"#id": SESSIONS_PARTITION_KEY, "#expires": SESSIONS_TTL_ATTRIBUTE},
                "ExpressionAttributeValues": dynamodb.values(now=session.created_at_ms // 1000),
            }
        }
        try:
            dynamodb.transact([put, *with_items])
        except ClientError as error:
            dynamodb.unavailable_if_throttled(error)
            reasons = dynamodb.cancellation_reasons(error)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise SessionIdTaken(session.session_id) from error
            if any(reason == "ConditionalCheckFailed" for reason in reasons[1:]):
                raise ServiceError(
                    ErrorCode.FORBIDDEN,
                    "this connection already belongs to a session; open a new connection to create another",
                ) from error
            raise

    def get(self, session_id: str, now_s: int) -> Session | None:
        """The session, or None when there is none or it has expired (TTL deletion lags)."""
        try:
            response = dynamodb.client().get_item(
                TableName=self.table_name,
                Key=dynamodb.serialize({SESSIONS_PARTITION_KEY: session_id}),
                ConsistentRead=True,
            )
        except ClientError as error:
            dynamodb.unavailable_if_throttled(error)
            raise
        item = response.get("Item")
        if item is None:
            return None
        session = Session.from_item(dynamodb.deserialize(item))
        return session if session.expires_at_s > now_s else None

    def add_listener_item(self, session_id: str, now_s: int, cap: int) -> TransactItem:
        """Transaction item: count one more listener, only on a live, active session under the cap.

        On failure the old item comes back (``ALL_OLD``) so :meth:`join_refusal` can say why.
        """
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": dynamodb.serialize({SESSIONS_PARTITION_KEY: session_id}),
                "UpdateExpression": "ADD listenerCount :one",
                "ConditionExpression": (
                    "attribute_exists(#id) AND isActive = :true AND #expires > :now AND listenerCount < :cap"
                ),
                "ExpressionAttributeNames": {"#id": SESSIONS_PARTITION_KEY, "#expires": SESSIONS_TTL_ATTRIBUTE},
                "ExpressionAttributeValues": dynamodb.values(one=1, true=True, now=now_s, cap=cap),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def remove_listener_item(self, session_id: str) -> TransactItem:
        """Transaction item: count one listener less; never below zero and never on a deleted session."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": dynamodb.serialize({SESSIONS_PARTITION_KEY: session_id}),
                "UpdateExpression": "ADD listenerCount :minus",
                "ConditionExpression": "attribute_exists(#id) AND listenerCount > :zero",
                "ExpressionAttributeNames": {"#id": SESSIONS_PARTITION_KEY},
                "ExpressionAttributeValues": dynamodb.values(minus=-1, zero=0),
            }
        }

    @staticmethod
    def join_refusal(old_item: dict[str, Any] | None, session_id: str, now_s: int) -> ServiceError:
        """Why :meth:`add_listener_item`'s condition failed, as the client should hear it."""
        if old_item is None:
            return _not_found(session_id)
        session = Session.from_item(dynamodb.deserialize(old_item))
        if session.expires_at_s <= now_s:
            return _not_found(session_id)
        if not session.is_active:
            return ServiceError(ErrorCode.SESSION_ENDED, f"session {session_id} has ended", field="sessionId")
        return ServiceError(
            ErrorCode.SESSION_FULL,
            f"session {session_id} has reached its listener limit of {session.listener_count}",
            field="sessionId",
        )


def _not_found(session_id: str) -> ServiceError:
    return ServiceError(ErrorCode.SESSION_NOT_FOUND, f"no session {session_id}", field="sessionId")
