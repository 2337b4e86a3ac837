"""``heartbeat``: acknowledged as the route response; near API Gateway's 2-hour limit the client is asked to
refresh once (from 100 minutes) and warned with the minutes left on every heartbeat (from 105 minutes).

The extra notices are posted to the connection through ``@connections`` (the ``gateway`` recorder) before
the handler returns the ``heartbeatAck``; the connection's age comes from ``requestContext.connectedAt``
against a fixed clock.
"""

from __future__ import annotations

import pytest

from lambda_src import runtime
from lambda_src.contract import function_settings
from tests.support.helpers import body_of
from tests.unit.flows import Clock, create_session, join, plain, send

HEARTBEAT = {"action": "heartbeat"}
MINUTE_MS = 60_000


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock.install(monkeypatch)


def heartbeat_at(connection_id: str, connected_at_ms: int, clock: Clock, age_minutes: float) -> dict:
    """A heartbeat sent when the connection is ``age_minutes`` old; returns the route response."""
    clock.now_ms = connected_at_ms + int(age_minutes * MINUTE_MS)
    return send(HEARTBEAT, connection_id, connected_at_ms=connected_at_ms)


def assert_acked(response: dict, clock: Clock) -> None:
    assert response["statusCode"] == 200
    assert body_of(response) == {"type": "heartbeatAck", "timestamp": clock.now_ms}


@pytest.fixture
def connection(tables, clock) -> tuple[str, int]:
    """A plain connection opened at the clock's start; (connection id, connectedAt ms)."""
    connected_at = clock.now_ms
    return plain(connected_at_ms=connected_at), connected_at


@pytest.mark.parametrize("age_minutes", [0, 1, 60, 99.99])
def test_before_100_minutes_only_the_ack(tables, gateway, clock, connection, age_minutes):
    # Given a connection younger than 100 minutes
    connection_id, connected_at = connection
    # When it sends a heartbeat
    response = heartbeat_at(connection_id, connected_at, clock, age_minutes)
    # Then the route response is heartbeatAck and nothing else is posted or recorded
    assert_acked(response, clock)
    assert gateway.calls == []
    assert "refreshNotified" not in tables.connection(connection_id)


def test_at_100_minutes_refresh_is_required_before_the_ack(tables, gateway, clock, connection):
    # Given a connection exactly 100 minutes old
    connection_id, connected_at = connection
    # When it sends a heartbeat
    response = heartbeat_at(connection_id, connected_at, clock, 100)
    # Then connectionRefreshRequired was posted to it (with 20 minutes left) ...
    assert gateway.posts() == [
        (connection_id, {"type": "connectionRefreshRequired", "minutesLeft": 20, "timestamp": clock.now_ms}),
    ]
    # ... and the ack is the route response, not a post
    assert_acked(response, clock)
    # And the connection row remembers it was asked
    assert tables.connection(connection_id)["refreshNotified"] is True


def test_a_scaled_connection_clock_asks_for_the_refresh_and_warns_as_many_times_sooner(
    tables, gateway, clock, connection, monkeypatch
):
    # Given the functions of a local run whose connections' clocks run 60 times faster (GATEWAY_TIME_SCALE=60:
    # the gateway closes connections after 2 minutes)
    monkeypatch.setenv(function_settings.ENV_CONNECTION_TIME_SCALE, "60")
    runtime.reset()
    connection_id, connected_at = connection
    # When the connection sends heartbeats at 99 s, 100 s and 106 s of age (99, 100 and 106 of its minutes)
    for age_seconds in (99, 100, 106):
        clock.now_ms = connected_at + age_seconds * 1000
        assert_acked(send(HEARTBEAT, connection_id, connected_at_ms=connected_at), clock)
    # Then the refresh is asked for at 100 s, and the warning at 106 s counts the scaled minutes left (14)
    assert gateway.messages_to(connection_id) == [
        {"type": "connectionRefreshRequired", "minutesLeft": 20, "timestamp": connected_at + 100_000},
        {"type": "connectionWarning", "minutesLeft": 14, "timestamp": connected_at + 106_000},
    ]


def test_refresh_required_is_sent_exactly_once_across_heartbeats(tables, gateway, clock, connection):
    # Given a connection past 100 minutes that keeps sending heartbeats
    connection_id, connected_at = connection
    responses = [heartbeat_at(connection_id, connected_at, clock, age) for age in (100, 100.5, 102, 104.99)]
    # Then every heartbeat was acknowledged, and the refresh was asked for once, with no warning yet
    assert all(response["statusCode"] == 200 for response in responses)
    assert [body_of(response)["type"] for response in responses] == ["heartbeatAck"] * 4
    assert gateway.types_to(connection_id) == ["connectionRefreshRequired"]
    # And not again once the warnings start
    heartbeat_at(connection_id, connected_at, clock, 106)
    heartbeat_at(connection_id, connected_at, clock, 110)
    assert gateway.types_to(connection_id).count("connectionRefreshRequired") == 1


def test_from_105_minutes_every_heartbeat_warns_with_the_minutes_left(tables, gateway, clock, connection):
    # Given a connection that was already asked to refresh
    connection_id, connected_at = connection
    heartbeat_at(connection_id, connected_at, clock, 100)
    gateway.clear()
    # When it keeps sending heartbeats from 105 minutes on
    minutes_left = []
    for age in (105, 107.5, 110, 119.5, 120, 121):
        response = heartbeat_at(connection_id, connected_at, clock, age)
        assert_acked(response, clock)
        # Then each heartbeat posts exactly one connectionWarning before its ack
        posts = gateway.messages_to(connection_id)
        assert [message["type"] for message in posts] == ["connectionWarning"]
        assert posts[0]["timestamp"] == clock.now_ms
        minutes_left.append(posts[0]["minutesLeft"])
        gateway.clear()
    # And the minutes left count down to the 2-hour limit, never below zero
    assert minutes_left == [15, 13, 10, 1, 0, 0]


def test_a_first_heartbeat_after_105_minutes_gets_both_notices_in_order(tables, gateway, clock, connection):
    # Given a connection that sends its first heartbeat late, at 106 minutes
    connection_id, connected_at = connection
    # When it sends it
    response = heartbeat_at(connection_id, connected_at, clock, 106)
    # Then it is asked to refresh, then warned, then acknowledged
    assert gateway.messages_to(connection_id) == [
        {"type": "connectionRefreshRequired", "minutesLeft": 14, "timestamp": clock.now_ms},
        {"type": "connectionWarning", "minutesLeft": 14, "timestamp": clock.now_ms},
    ]
    assert_acked(response, clock)
    # And the next heartbeat only warns
    gateway.clear()
    heartbeat_at(connection_id, connected_at, clock, 107)
    assert gateway.types_to(connection_id) == ["connectionWarning"]


def test_each_connection_is_asked_to_refresh_once(tables, gateway, clock):
    # Given a speaker and a listener of a session, both 101 minutes old
    session_id, speaker = create_session()
    listener = join(session_id)
    connected_at = clock.now_ms
    # When both send heartbeats twice
    for _ in range(2):
        for connection_id in (speaker, listener):
            assert_acked(heartbeat_at(connection_id, connected_at, clock, 101), clock)
    # Then each was asked once, on its own connection
    assert gateway.types_to(speaker) == ["connectionRefreshRequired"]
    assert gateway.types_to(listener) == ["connectionRefreshRequired"]


def test_notices_are_posted_before_the_ack_is_returned(tables, gateway, clock, connection, monkeypatch):
    # Given a recorder that notes, at each post, whether the heartbeat handler has returned yet
    connection_id, connected_at = connection
    returned = {"value": False}
    seen_at_post: list[bool] = []
    original_post = gateway.post_to_connection

    def post_to_connection(**kwargs):
        seen_at_post.append(returned["value"])
        return original_post(**kwargs)

    monkeypatch.setattr(gateway, "post_to_connection", post_to_connection)
    # When a 106-minute-old connection sends a heartbeat
    response = heartbeat_at(connection_id, connected_at, clock, 106)
    returned["value"] = True
    # Then both notices were posted while the handler was still running, and its response is the ack
    assert seen_at_post == [False, False]
    assert_acked(response, clock)
    assert "heartbeatAck" not in gateway.types_to(connection_id)


def test_a_failed_notice_post_neither_loses_the_ack_nor_the_refresh_request(tables, gateway, clock, connection):
    # Given a connection at 100 minutes whose @connections posts are throttled for a moment
    connection_id, connected_at = connection
    gateway.failing[connection_id] = "LimitExceededException"
    # When it sends a heartbeat
    response = heartbeat_at(connection_id, connected_at, clock, 100)
    # Then it is still acknowledged
    assert_acked(response, clock)
    # And once posts work again, the refresh request is delivered on a later heartbeat
    del gateway.failing[connection_id]
    heartbeat_at(connection_id, connected_at, clock, 101)
    assert gateway.types_to(connection_id) == ["connectionRefreshRequired"]
