"""The ``@connections`` requests' one retry policy (botocore's Stubber, no network): a 429 is repeated after growing,
jittered pauses within its budget and never past the caller's deadline, then given up as ``Throttled`` (never as a
departure); a 410 is an answer at once; a server error is repeated once; a 413 is not repeated. And through the
fan-out: a throttled listener is still delivered to, one throttled past the retries is FAILED and stays counted, and
the posts of one fan-out share one deadline."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from lambda_src.adapters import connections_api
from lambda_src.app import connections, fanout
from lambda_src.contract import limits
from lambda_src.platform import aws
from tests.support.helpers import REGION
from tests.unit.flows import create_session, join

BUDGET = connections_api.THROTTLE_RETRY_SECONDS  # (read before the gateway fixture shortens it)
CONNECTION = "AbCdEfGhIjKl="


class FakeClock:
    """``time.sleep`` recorded instead of slept, every jitter at its maximum (the bounds asked for are recorded
    too), and a monotonic clock that only those sleeps move."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.jitter_bounds: list[tuple[float, float]] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def uniform(self, low: float, high: float) -> float:
        self.jitter_bounds.append((low, high))
        return high

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time, "sleep", fake.sleep)
    monkeypatch.setattr(random, "uniform", fake.uniform)
    monkeypatch.setattr(connections_api, "_clock", fake.monotonic)
    return fake


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """The real ``apigatewaymanagementapi`` client, answered by botocore's Stubber in the order queued."""
    client = aws.create_client(
        "apigatewaymanagementapi", region_name=REGION, endpoint_url="https://example.execute-api.local/test"
    )
    monkeypatch.setattr(connections_api, "client", lambda: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def throttle(stubber: Stubber, operation: str = "post_to_connection", times: int = 1) -> None:
    """What API Gateway answers a request over the account's rate: 429 LimitExceededException."""
    for _ in range(times):
        stubber.add_client_error(
            operation,
            service_error_code="LimitExceededException",
            service_message="Rate exceeded",
            http_status_code=429,
        )


def refuse(stubber: Stubber, code: str, status: int) -> None:
    stubber.add_client_error("post_to_connection", service_error_code=code, http_status_code=status)


def accept(stubber: Stubber, operation: str = "post_to_connection") -> None:
    stubber.add_response(operation, {})


# -- the policy, one request at a time -----------------------------------------------------------------------------


def test_a_throttled_post_is_repeated_after_growing_jittered_pauses_until_it_is_taken(stubbed, clock) -> None:
    # Given API Gateway throttling a post twice, then taking it
    throttle(stubbed, times=2)
    accept(stubbed)
    # When it is posted
    delivered = connections_api.post(CONNECTION, '{"type":"caption"}')
    # Then it arrived, after two pauses each drawn from zero to a bound that doubles (full jitter)
    assert delivered is True
    assert clock.jitter_bounds == [(0, 0.05), (0, 0.1)]
    assert clock.sleeps == [0.05, 0.1]


def test_a_post_throttled_past_its_budget_is_given_up_as_throttled_never_as_gone(stubbed, clock) -> None:
    # Given API Gateway throttling every attempt
    throttle(stubbed, times=6)
    # When a post is made, Then it is given up as Throttled (not False: the connection is not proved gone)
    with pytest.raises(connections_api.Throttled):
        connections_api.post(CONNECTION, '{"type":"caption"}')
    # after pauses doubling up to their cap, and no more waiting in all than the budget (6 attempts, as queued)
    assert clock.sleeps == [0.05, 0.1, 0.2, 0.4, 0.8]
    assert sum(clock.sleeps) <= BUDGET


def test_the_retries_stop_at_the_callers_deadline(stubbed, clock) -> None:
    # Given a post throttled every time, whose caller's deadline is 0.1 s away
    throttle(stubbed, times=2)
    # When it is posted with that deadline, Then it is given up once the next pause would pass the deadline
    with pytest.raises(connections_api.Throttled):
        connections_api.post(CONNECTION, "{}", deadline=clock.now + 0.1)
    assert clock.sleeps == [0.05]  # (then 0.1 more would have ended past it)
    # And a post whose deadline has passed already is tried once, without waiting
    throttle(stubbed)
    with pytest.raises(connections_api.Throttled):
        connections_api.post(CONNECTION, "{}", deadline=clock.now)
    assert clock.sleeps == [0.05]


def test_a_gone_connection_is_an_answer_at_once(stubbed, clock) -> None:
    refuse(stubbed, "GoneException", 410)
    assert connections_api.post(CONNECTION, "{}") is False
    assert clock.sleeps == []


def test_a_server_error_is_repeated_once(stubbed, clock) -> None:
    # Given a 500, then an accepted post: delivered after one short pause
    refuse(stubbed, "InternalServerErrorException", 500)
    accept(stubbed)
    assert connections_api.post(CONNECTION, "{}") is True
    assert len(clock.sleeps) == 1 and clock.sleeps[0] <= 0.5
    # And two 500s in a row: the second is raised as it came
    refuse(stubbed, "InternalServerErrorException", 500)
    refuse(stubbed, "InternalServerErrorException", 500)
    with pytest.raises(ClientError) as raised:
        connections_api.post(CONNECTION, "{}")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_a_post_over_the_payload_limit_is_refused_as_it_came(stubbed, clock) -> None:
    # Given API Gateway refusing a post over 128 KB (413 PayloadTooLargeException)
    refuse(stubbed, "PayloadTooLargeException", 413)
    with pytest.raises(ClientError) as raised:
        connections_api.post(CONNECTION, "x" * (limits.MAX_FRAME_BYTES + 1))
    # Then it is not repeated (the same post would be refused again)
    assert raised.value.response["Error"]["Code"] == "PayloadTooLargeException"
    assert clock.sleeps == []


def test_closing_and_asking_are_retried_when_throttled_too(stubbed, clock) -> None:
    throttle(stubbed, "delete_connection")
    accept(stubbed, "delete_connection")
    throttle(stubbed, "get_connection")
    accept(stubbed, "get_connection")
    connections_api.close(CONNECTION)
    assert connections_api.is_connected(CONNECTION) is True
    assert clock.sleeps == [0.05, 0.05]


# -- through the fan-out ----------------------------------------------------------------------------------------


@pytest.fixture
def real_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry budget the deployed functions have (the ``gateway`` fixture gives up throttled requests at once)."""
    monkeypatch.setattr(connections_api, "THROTTLE_RETRY_SECONDS", BUDGET)


def _listener_count(tables: Any, session_id: str) -> int:
    return int(tables.session(session_id)["listenerCount"])


def test_a_throttled_listener_is_delivered_to_and_one_throttled_past_the_retries_stays_counted(
    tables, gateway, clock, real_budget
) -> None:
    # Given a session with two listeners: posts to the first are throttled twice, to the second every time
    session_id, _speaker = create_session()
    first, second = join(session_id, "es"), join(session_id, "de")
    gateway.throttled[first] = 2
    gateway.failing[second] = "LimitExceededException"
    # When its listeners are told something, vanished ones handed to the count-out
    result = fanout.notify_listeners(session_id, {"type": "broadcastPaused"}, on_gone=connections.count_out_if_vanished)
    # Then the first got it after its retries, the second is FAILED (not GONE), and nobody was counted out
    assert gateway.refused == [first, first]
    assert gateway.types_to(first) == ["broadcastPaused"]
    assert result.outcomes[fanout.Outcome.DELIVERED] == 1
    assert result.outcomes[fanout.Outcome.FAILED] == 1
    assert (result.outcomes[fanout.Outcome.GONE], result.gone) == (0, [])
    assert _listener_count(tables, session_id) == 2
    assert tables.connection(first) is not None and tables.connection(second) is not None


def test_the_posts_of_one_fan_out_share_one_retry_deadline(tables, gateway, clock, real_budget, monkeypatch) -> None:
    # Given three listeners whose posts are all throttled for good, posted to one after the other
    monkeypatch.setattr(limits, "FANOUT_PARALLELISM", 1)
    session_id, _speaker = create_session()
    listeners = [join(session_id, language) for language in ("es", "de", "fr")]
    for listener in listeners:
        gateway.failing[listener] = "LimitExceededException"
    # When they are told something
    result = fanout.notify_listeners(session_id, {"type": "broadcastPaused"})
    # Then each was given up, and the fan-out as a whole waited no longer than one request's budget (each alone
    # would have waited 1.55 s)
    assert result.outcomes[fanout.Outcome.FAILED] == len(listeners)
    assert sum(clock.sleeps) <= BUDGET
    assert sum(clock.sleeps) > 1.55
