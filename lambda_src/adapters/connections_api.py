"""Posting to, asking about and closing WebSocket connections through API Gateway's management API
(``@connections``)."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from lambda_src.contract import function_settings, limits
from lambda_src.platform import aws

# One retry at most (botocore's jittered backoff, under a second): a fan-out posts to hundreds of listeners
# inside a route's 10 s, so a throttled post is given up rather than waited out.
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 2},
    connect_timeout=1,
    read_timeout=2,
    max_pool_connections=limits.FANOUT_PARALLELISM,  # one pooled connection per fan-out thread
)


@cache
def client() -> Any:
    callback_url = function_settings.load().callback_url
    if not callback_url:
        raise RuntimeError(f"{function_settings.ENV_CALLBACK_URL} is not set")
    return aws.create_client("apigatewaymanagementapi", endpoint_url=callback_url, config=_CLIENT_CONFIG)


def _is_gone(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "GoneException"


def post(connection_id: str, data: str) -> bool:
    """Send one frame; False when the connection is gone (410)."""
    try:
        client().post_to_connection(ConnectionId=connection_id, Data=data.encode("utf-8"))
    except ClientError as error:
        if _is_gone(error):
            return False
        raise
    return True


def post_after_handshake(connection_id: str, data: str, delays: tuple[float, ...]) -> bool:
    """Send the first frame of a connection whose ``$connect`` may still be finishing.

    Until API Gateway completes the handshake the connection answers 410, exactly as a vanished one
    does, so a 410 is retried after each of ``delays``; False when it never became reachable.
    """
    for delay in (0.0, *delays):
        if delay:
            time.sleep(delay)
        if post(connection_id, data):
            return True
    return False


def close(connection_id: str) -> None:
    """Close a connection (API Gateway then calls ``$disconnect``); one already gone is fine."""
    try:
        client().delete_connection(ConnectionId=connection_id)
    except ClientError as error:
        if not _is_gone(error):
            raise


def is_connected(connection_id: str) -> bool:
    """Whether API Gateway still holds the connection (``GET``); False when it answers 410.

    A connection whose handshake has not completed answers 410 too, so False proves a connection gone only
    once it is older than the handshake window (``limits.HANDSHAKE_WINDOW_SECONDS``).
    """
    try:
        client().get_connection(ConnectionId=connection_id)
    except ClientError as error:
        if _is_gone(error):
            return False
        raise
    return True
