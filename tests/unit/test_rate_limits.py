"""Rate limits: counted inside the operation's own transaction, refused with RATE_LIMIT_EXCEEDED and
``retryAfter``, and a refused operation writes (and counts) nothing."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from lambda_src import runtime
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.rate_limits import SOURCE_ADDRESS_SECRET_KEY, RateLimitsRepository
from lambda_src.handlers import connect, message
from lambda_src.protocol import messages
from tests.support.helpers import (
    RATE_LIMITS_TABLE,
    DynamoDBRequests,
    body_of,
    connect_event,
    message_event,
    new_connection_id,
)

CREATE = {"action": "createSession", "sourceLanguage": "en"}
SESSION_ID = "golden-eagle-427"
JOIN = {"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"}
VENUE = "203.0.113.77"
WINDOW_START_MS = int(time.time()) // 3600 * 3600 * 1000  # this hour's start: every window starts here


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    now = {"ms": WINDOW_START_MS + 10_000}
    monkeypatch.setattr(messages, "now_ms", lambda: now["ms"])
    return now


def limit(monkeypatch: pytest.MonkeyPatch, variable: str, allowed: int) -> None:
    monkeypatch.setenv(variable, str(allowed))
    runtime.reset()


def create(user_id: str = "speaker-1", **kwargs) -> dict:
    return connect.handler(connect_event(CREATE, user_id=user_id, **kwargs), None)


def join(**kwargs) -> dict:
    return connect.handler(connect_event(JOIN, **kwargs), None)


def refusal(response: dict) -> tuple[int, str, int]:
    body = body_of(response)
    return response["statusCode"], body["code"], body["retryAfter"]


def test_session_creation_is_limited_per_speaker_per_hour(tables, monkeypatch, clock):
    # Given a limit of 2 sessions per speaker per hour, 2 already created this hour
    limit(monkeypatch, "SESSIONS_PER_USER_PER_HOUR", 2)
    assert [create()["statusCode"] for _ in range(2)] == [200, 200]
    # When the same speaker creates a third, and another speaker creates one
    refused = create()
    other = create(user_id="speaker-2")
    # Then the third is refused until the hour is over, nothing written; the other speaker is unaffected
    assert refusal(refused) == (429, "RATE_LIMIT_EXCEEDED", 3600 - 10)
    assert "2 sessions created by one speaker per hour" in body_of(refused)["message"]
    assert other["statusCode"] == 200
    assert len(tables.raw_sessions()) == 3
    assert len([row for row in tables.connections_items() if row.get("role") == "speaker"]) == 3
    # And in the next hour the speaker may create again
    clock["ms"] = WINDOW_START_MS + 3600 * 1000
    assert create()["statusCode"] == 200


def test_session_creation_by_message_is_limited_too(tables, monkeypatch, clock):
    limit(monkeypatch, "SESSIONS_PER_USER_PER_HOUR", 1)
    assert create()["statusCode"] == 200
    connection_id = new_connection_id()
    assert (
        connect.handler(connect_event(None, connection_id=connection_id, user_id="speaker-1"), None)["statusCode"]
        == 200
    )
    reply = body_of(message.handler(message_event(CREATE, connection_id=connection_id, user_id="speaker-1"), None))
    assert (reply["code"], reply["retryAfter"]) == ("RATE_LIMIT_EXCEEDED", 3590)
    assert len(tables.raw_sessions()) == 1


def test_joins_are_limited_per_session_per_minute_and_refusals_count_nothing(tables, monkeypatch, clock):
    # Given a session that accepts 2 joins a minute
    limit(monkeypatch, "JOINS_PER_SESSION_PER_MINUTE", 2)
    tables.put_session(sessionId=SESSION_ID)
    assert [join()["statusCode"] for _ in range(2)] == [200, 200]
    # When a third listener joins within the minute
    refused = join()
    # Then it is refused with the seconds left in the minute, and the count did not move
    assert refusal(refused) == (429, "RATE_LIMIT_EXCEEDED", 50)
    assert tables.session(SESSION_ID)["listenerCount"] == 2
    # And the next minute admits joins again
    clock["ms"] += 60_000
    assert join()["statusCode"] == 200


def test_a_venue_behind_one_address_is_limited_only_beyond_its_allowance(tables, monkeypatch, clock):
    # Given 3 connections a minute per source address
    limit(monkeypatch, "CONNECTIONS_PER_SOURCE_PER_MINUTE", 3)
    tables.put_session(sessionId=SESSION_ID)
    # When four listeners behind one address join, and one from elsewhere
    statuses = [join(source_ip=VENUE)["statusCode"] for _ in range(3)]
    fourth = join(source_ip=VENUE)
    elsewhere = join(source_ip="198.51.100.5")
    # Then the first three and the other address are admitted; the fourth is refused and not counted
    assert statuses == [200, 200, 200]
    assert refusal(fourth)[:2] == (429, "RATE_LIMIT_EXCEEDED")
    assert elsewhere["statusCode"] == 200
    assert tables.session(SESSION_ID)["listenerCount"] == 4


def test_plain_connections_count_against_their_source(tables, monkeypatch, clock):
    limit(monkeypatch, "CONNECTIONS_PER_SOURCE_PER_MINUTE", 1)
    assert connect.handler(connect_event(None, source_ip=VENUE), None)["statusCode"] == 200
    refused = connect.handler(connect_event(None, source_ip=VENUE), None)
    assert refusal(refused)[:2] == (429, "RATE_LIMIT_EXCEEDED")
    assert len(tables.raw_connections()) == 1


def stored_secret(tables) -> bytes:
    item = tables.client.get_item(
        TableName=RATE_LIMITS_TABLE, Key={"limitKey": {"S": SOURCE_ADDRESS_SECRET_KEY}}, ConsistentRead=True
    )["Item"]
    assert set(item) == {"limitKey", "secret"}, item  # no TTL attribute: it lives as long as the table
    return item["secret"]["B"]


def source_counter_keys(tables) -> list[str]:
    items = tables.client.scan(TableName=RATE_LIMITS_TABLE)["Items"]
    return [
        item["limitKey"]["S"].split("#")[1]
        for item in items
        if item["limitKey"]["S"].startswith("connectionsBySource#")
    ]


def test_source_addresses_are_stored_only_as_hashes_keyed_with_the_deployments_secret(tables, clock):
    # (Regression: the key was sha256(address)[:32], unsalted: every IPv4 address can be hashed in hours.)
    tables.put_session(sessionId=SESSION_ID)
    assert join(source_ip=VENUE)["statusCode"] == 200
    stored = repr(tables.client.scan(TableName=RATE_LIMITS_TABLE)["Items"])
    assert VENUE not in stored and "203.0.113" not in stored
    (key,) = source_counter_keys(tables)
    assert key != hashlib.sha256(VENUE.encode()).hexdigest()[:32]
    secret = stored_secret(tables)
    assert len(secret) == 32
    assert key == hmac.new(secret, VENUE.encode(), hashlib.sha256).hexdigest()[:32]


def test_two_processes_key_an_address_alike_and_count_it_in_one_window(tables, monkeypatch, clock):
    # Given one connection a minute per address, used by a connection to one process
    limit(monkeypatch, "CONNECTIONS_PER_SOURCE_PER_MINUTE", 1)
    assert connect.handler(connect_event(None, source_ip=VENUE), None)["statusCode"] == 200
    # When another process (nothing cached) accepts a connection from the same address
    runtime.reset()
    refused = connect.handler(connect_event(None, source_ip=VENUE), None)
    # Then it counts against the same window, so it is refused; there is one key and one secret
    assert refusal(refused)[:2] == (429, "RATE_LIMIT_EXCEEDED")
    assert len(source_counter_keys(tables)) == 1
    assert len(tables.client.scan(TableName=RATE_LIMITS_TABLE)["Items"]) == 2


def test_processes_creating_the_secret_at_once_end_up_with_one(tables, monkeypatch):
    # Given two processes that both find no secret; the second creates one between the first's read and write
    first, second = RateLimitsRepository(RATE_LIMITS_TABLE), RateLimitsRepository(RATE_LIMITS_TABLE)
    send = dynamodb.request
    interleaved: list[bytes] = []

    def racing(operation: str, **arguments):
        if operation == "put_item" and not interleaved:
            interleaved.append(b"")  # (the second process's own write passes straight through)
            interleaved[0] = second.source_address_secret()
        return send(operation, **arguments)

    monkeypatch.setattr(dynamodb, "request", racing)
    secret = first.source_address_secret()
    # Then both use the one that was written first, and that is the one stored
    assert interleaved and secret == interleaved[0] == stored_secret(tables)
    assert first.source_address_secret() == second.source_address_secret() == secret


def test_a_stored_value_that_is_not_a_secret_is_replaced(tables):
    tables.client.put_item(
        TableName=RATE_LIMITS_TABLE, Item={"limitKey": {"S": SOURCE_ADDRESS_SECRET_KEY}, "secret": {"S": "not bytes"}}
    )
    secret = runtime.rate_limits().source_address_secret()
    assert len(secret) == 32 and stored_secret(tables) == secret


def test_a_join_refused_for_another_reason_consumes_no_allowance(tables, monkeypatch, clock):
    # Given a session that is full, and a join allowance of 1 a minute
    limit(monkeypatch, "JOINS_PER_SESSION_PER_MINUTE", 1)
    limit(monkeypatch, "MAX_LISTENERS_PER_SESSION", 1)
    tables.put_session(sessionId=SESSION_ID, listenerCount=1)
    # When a join is refused as full, and a listener then leaves
    assert body_of(join())["code"] == "SESSION_FULL"
    tables.put_session(sessionId=SESSION_ID, listenerCount=0)
    # Then the next join is still within the allowance
    assert join()["statusCode"] == 200


def test_limits_cost_no_extra_request_once_the_secret_is_known(tables, clock):
    tables.put_session(sessionId=SESSION_ID)
    join()  # the session's source language is now known to this process
    join(source_ip="198.51.100.5")  # and so is the secret that keys source addresses
    with DynamoDBRequests() as joining:
        assert join(source_ip=VENUE)["statusCode"] == 200
    with DynamoDBRequests() as creating:
        assert create(source_ip=VENUE)["statusCode"] == 200
    assert joining.by_operation == {"TransactWriteItems": 1}
    assert creating.by_operation == {"TransactWriteItems": 1}


REFRESH = {"action": "refreshConnection", "sessionId": SESSION_ID, "role": "listener", "targetLanguage": "es"}


def refresh(**query: str) -> dict:
    return connect.handler(connect_event({**REFRESH, **query}), None)


@pytest.mark.parametrize("previous", ["none named", "already gone"])
def test_a_listener_refresh_that_counts_a_listener_in_is_metered_like_a_join(tables, monkeypatch, clock, previous):
    # (Regression: a listener refresh without previousConnectionId, or naming a row already gone, counted a
    # listener in without the join limit: with a limit of 2, five listeners were counted.)
    # Given a session that accepts 2 joins a minute
    limit(monkeypatch, "JOINS_PER_SESSION_PER_MINUTE", 2)
    tables.put_session(sessionId=SESSION_ID)

    def counting_refresh() -> dict:
        if previous == "none named":
            return refresh()
        return refresh(previousConnectionId=new_connection_id())  # a row that is not there (closed already)

    # When five listeners refresh in a way that counts each of them in
    responses = [counting_refresh() for _ in range(5)]
    # Then two are admitted and the rest refused like joins, with nothing written for them
    assert [response["statusCode"] for response in responses] == [200, 200, 429, 429, 429]
    for response in responses[2:]:
        assert refusal(response) == (429, "RATE_LIMIT_EXCEEDED", 50)
    assert tables.session(SESSION_ID)["listenerCount"] == 2
    assert len([row for row in tables.connections_items() if row.get("role") == "listener"]) == 2
    # And they share the joins' allowance: a join within the minute is refused too
    assert refusal(join())[:2] == (429, "RATE_LIMIT_EXCEEDED")


def test_a_listener_refresh_that_swaps_rows_is_not_metered(tables, monkeypatch, clock):
    # Given a session whose join allowance for this minute is used up by its listeners
    limit(monkeypatch, "JOINS_PER_SESSION_PER_MINUTE", 2)
    tables.put_session(sessionId=SESSION_ID)
    first = new_connection_id()
    assert join(connection_id=first)["statusCode"] == 200
    assert join()["statusCode"] == 200
    assert refusal(join())[:2] == (429, "RATE_LIMIT_EXCEEDED")
    # When a listener refreshes naming its old connection (the rows are swapped, the count does not move)
    response = refresh(previousConnectionId=first)
    # Then it is admitted
    assert response["statusCode"] == 200
    assert tables.session(SESSION_ID)["listenerCount"] == 2
