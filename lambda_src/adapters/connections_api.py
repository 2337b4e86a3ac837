"""Posting to, asking about and closing WebSocket connections through API Gateway's management API
(``@connections``), with the one retry policy of its requests (:func:`_request`)."""

from __future__ import annotations

import random
import time
from functools import cache
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from lambda_src.contract import function_settings, limits
from lambda_src.platform import aws

# botocore does not retry: the one policy below does, for every request.
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=1,
    read_timeout=2,
    max_pool_connections=limits.FANOUT_PARALLELISM,  # one pooled connection per fan-out thread
)
# 429 LimitExceededException: the account's request rate is exceeded (API Gateway's 10,000 requests a second
# across every API and every @connections request of the account and region, by default), or the connection's
# send buffer is full. Either passes within moments, and is no sign that the connection is gone (only a 410 is),
# so the request is repeated after full-jitter exponential pauses, for at most THROTTLE_RETRY_SECONDS of waiting,
# and never past the caller's deadline (a fan-out gives all its posts one: :func:`retry_deadline`). Why 2 s: a
# route's fan-out (a pause, an end) runs inside the route's 10 s timeout beside DynamoDB requests that may wait up
# to 6 s of it (``repositories.dynamodb``); the transcription consumer settles a segment's captions before it
# delivers the next, and a caption more than a couple of seconds behind its speech is of little use. A throttle
# that outlasts that is not a burst, and waiting it out would only hold back the messages that follow.
THROTTLE_RETRY_SECONDS = 2.0
_FIRST_PAUSE_SECONDS = 0.05
_MAX_PAUSE_SECONDS = 0.8
_THROTTLED_CODES = frozenset({"LimitExceededException", "TooManyRequestsException", "ThrottlingException"})
# Any other failure worth repeating (a 5xx, no connection, no answer in time) is repeated once, after a pause of
# up to this (what botocore's standard mode did with its one retry).
_TRANSIENT_PAUSE_SECONDS = 0.5
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
_TRANSIENT_ERRORS = (ConnectionError, HTTPClientError)
# The clock of the deadlines (tests give a fake one).
_clock = time.monotonic


class Throttled(Exception):
    """API Gateway kept answering 429 past the retries (the request was not carried out; the connection may well
    still be there)."""


@cache
def client() -> Any:
    callback_url = function_settings.load().callback_url
    if not callback_url:
        raise RuntimeError(f"{function_settings.ENV_CALLBACK_URL} is not set")
    return aws.create_client("apigatewaymanagementapi", endpoint_url=callback_url, config=_CLIENT_CONFIG)


def retry_deadline() -> float:
    """A deadline (on ``time.monotonic``) for the retries of requests that start now: what a fan-out gives all its
    posts, so that a throttled fan-out as a whole waits at most THROTTLE_RETRY_SECONDS more than it would have."""
    return _clock() + THROTTLE_RETRY_SECONDS


def _is_gone(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "GoneException"


def _is_throttled(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 429 or error.response.get("Error", {}).get("Code") in _THROTTLED_CODES


def _is_transient(error: Exception) -> bool:
    if isinstance(error, _TRANSIENT_ERRORS):
        return True
    return (
        isinstance(error, ClientError)
        and error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in _TRANSIENT_STATUSES
    )


def _request(operation: str, deadline: float | None, **arguments: Any) -> Any:
    """One ``@connections`` request: a 429 repeated with full jitter for at most THROTTLE_RETRY_SECONDS of waiting
    and never past ``deadline`` (on ``time.monotonic``; None: no deadline but that), then :class:`Throttled`; a
    transient failure repeated once; any other answer (a 410 included) raised as it came."""
    call = getattr(client(), operation)
    waited = 0.0
    pause = _FIRST_PAUSE_SECONDS
    repeated_transient = False
    while True:
        try:
            return call(**arguments)
        except (ClientError, *_TRANSIENT_ERRORS) as error:
            if isinstance(error, ClientError) and _is_throttled(error):
                sleep = random.uniform(0, pause)
                past_deadline = deadline is not None and _clock() + sleep > deadline
                if waited + sleep > THROTTLE_RETRY_SECONDS or past_deadline:
                    raise Throttled(f"{operation} still throttled after {waited:.2f} s of retries") from error
                pause = min(pause * 2, _MAX_PAUSE_SECONDS)
            elif _is_transient(error) and not repeated_transient:
                sleep = random.uniform(0, _TRANSIENT_PAUSE_SECONDS)
                repeated_transient = True
            else:
                raise
        time.sleep(sleep)
        waited += sleep


def post(connection_id: str, data: str, *, deadline: float | None = None) -> bool:
    """Send one frame; False when the connection is gone (410). Throttled past the retries (``deadline``: when
    they stop at the latest): :class:`Throttled`, never False."""
    try:
        _request("post_to_connection", deadline, ConnectionId=connection_id, Data=data.encode("utf-8"))
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


def close(connection_id: str, *, deadline: float | None = None) -> None:
    """Close a connection (API Gateway then calls ``$disconnect``); one already gone is fine."""
    try:
        _request("delete_connection", deadline, ConnectionId=connection_id)
    except ClientError as error:
        if not _is_gone(error):
            raise


def is_connected(connection_id: str, *, deadline: float | None = None) -> bool:
    """Whether API Gateway still holds the connection (``GET``); False when it answers 410.

    A connection whose handshake has not completed answers 410 too, so False proves a connection gone only
    once it is older than the handshake window (``limits.HANDSHAKE_WINDOW_SECONDS``).
    """
    try:
        _request("get_connection", deadline, ConnectionId=connection_id)
    except ClientError as error:
        if _is_gone(error):
            return False
        raise
    return True
