"""Seat shards (decision record 0040): a session created under a cap above ``ONE_SHARD_MAX_LISTENERS`` counts its
listeners on seat items ``<sessionId>#<k>``. Joins spread over them (another shard on a full one or a conflict), a
refusal is for the cap only (every seat full, nothing written), departures and changes act on the row's own shard,
the count and the listeners by language are the seats' sums, the listener index is read shard by shard, and ending
closes every seat. The count equals the rows at every quiescent point.

The shards here are small (``SEATS_PER_SHARD`` 2 above a one-shard cap of 2) so that a handful of joins fills them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambda_src import downstream, runtime
from lambda_src.adapters.repositories import dynamodb
from lambda_src.app import seats
from lambda_src.contract import http_api, limits, schema
from lambda_src.handlers import http_api as http_handler
from lambda_src.handlers import status, sweeper, welcome
from lambda_src.model.session import seat_shards_for, shares
from tests.support.helpers import DynamoDBRequests, body_of, http_event
from tests.unit.flows import (
    SESSION_ID,
    connect_with,
    create_session,
    drop,
    error_of,
    join,
    plain,
    send,
    welcome_of_row,
)

SHARDS = 3
CAP = 6  # two seats a shard


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seat shards of two seats above a one-shard cap of 2; the environment's cap is CAP (three shards)."""
    monkeypatch.setattr(limits, "ONE_SHARD_MAX_LISTENERS", 2)
    monkeypatch.setattr(limits, "SEATS_PER_SHARD", 2)
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", str(CAP))
    runtime.reset()


@pytest.fixture
def sharded(tables, small_shards) -> Any:
    """A live session with three seat shards (as its creation under CAP writes it)."""
    tables.put_session(sessionId=SESSION_ID, seatShards=SHARDS)
    return tables


@pytest.fixture
def lowest_shard_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every choice of a shard takes the lowest one offered (deterministic joins)."""
    monkeypatch.setattr(seats.random, "choice", min)


def seat(tables, shard: int, session_id: str = SESSION_ID) -> dict[str, Any]:
    """The seat item as stored (empty when no join has taken it)."""
    return tables.session(f"{session_id}#{shard}") or {}


def seat_counts(tables, session_id: str = SESSION_ID) -> list[int]:
    return [int(seat(tables, shard, session_id).get("listenerCount", 0)) for shard in range(1, SHARDS + 1)]


def listener_rows(tables, session_id: str = SESSION_ID) -> dict[str, str]:
    """Connection id -> the row's ``sessionId`` as stored, for the session's listener rows."""
    return {
        item["connectionId"]: item["sessionId"]
        for item in tables.connections_items()
        if item.get("role") == "listener" and item.get("sessionId", "").split("#")[0] == session_id
    }


def assert_count_is_the_rows(tables, session_id: str = SESSION_ID) -> None:
    rows = listener_rows(tables, session_id)
    for shard in range(1, SHARDS + 1):
        on_shard = sum(1 for key in rows.values() if key == f"{session_id}#{shard}")
        assert seat_counts(tables, session_id)[shard - 1] == on_shard, (shard, rows)
    assert tables.session(session_id)["listenerCount"] == 0  # the session item counts nobody


def join_in(language: str) -> str:
    return join(language=language)


# -- creation ---------------------------------------------------------------------------------------------------------
def test_the_number_of_shards_follows_the_cap() -> None:
    assert [seat_shards_for(cap) for cap in (1, 500, 501, 1000, 9_999, 10_000)] == [1, 1, 6, 10, 100, 100]
    assert shares(10_000, 100) == [100] * 100
    assert shares(501, 6) == [84, 84, 84, 83, 83, 83]
    assert sum(shares(60_000, 100)) == 60_000


def test_a_session_created_above_the_one_shard_cap_records_its_shards_and_makes_no_seat(tables, small_shards) -> None:
    with DynamoDBRequests() as requests:
        _speaker, response = connect_with({"action": "createSession", "sourceLanguage": "en"}, user_id="someone")
    assert response["statusCode"] == 200
    assert requests.by_operation == {"TransactWriteItems": 1}  # no seat is made by the creation
    (item,) = tables.sessions_items()
    assert item["seatShards"] == SHARDS


def test_a_session_of_one_shard_keeps_todays_item(tables) -> None:
    create_session()
    (item,) = tables.sessions_items()
    assert "seatShards" not in item


# -- joining ----------------------------------------------------------------------------------------------------------
def test_joins_fill_every_shard_and_the_count_is_the_rows(sharded, lowest_shard_first) -> None:
    listeners = [join() for _ in range(CAP)]
    assert seat_counts(sharded) == [2, 2, 2]
    assert sorted(listener_rows(sharded).values()) == sorted(f"{SESSION_ID}#{k}" for k in (1, 1, 2, 2, 3, 3))
    assert set(listener_rows(sharded)) == set(listeners)
    assert_count_is_the_rows(sharded)
    # Each seat is this session's, open, with its listeners by language, a TTL and no sweep time
    first = seat(sharded, 1)
    assert first["sessionCreatedAt"] == sharded.session(SESSION_ID)["createdAt"]
    assert first["listeners:es"] == 2
    assert first["expiresAt"] > time.time() + 3600
    assert "sweepAt" not in first and "seatClosed" not in first


def test_random_joins_spread_over_the_shards(sharded) -> None:
    for _ in range(CAP):
        join()
    assert seat_counts(sharded) == [2, 2, 2]


def test_a_full_shard_sends_the_join_to_another_after_one_read_of_the_seats(sharded, lowest_shard_first) -> None:
    join(), join()  # shard 1 is full
    with DynamoDBRequests() as requests:
        third = join()
    # Then it took shard 2: the refused attempt on shard 1, one read of every seat, the join on shard 2
    assert listener_rows(sharded)[third] == f"{SESSION_ID}#2"
    assert requests.by_operation == {"TransactWriteItems": 2, "BatchGetItem": 1}


def test_a_join_is_refused_full_only_when_every_seat_is_full_and_writes_nothing(sharded) -> None:
    for _ in range(CAP):
        join()
    before = (sharded.raw_sessions(), sharded.raw_connections(), sharded.raw_rate_limits())
    refused, response = connect_with({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "de"})
    assert error_of(response) == (503, "SESSION_FULL")
    assert (sharded.raw_sessions(), sharded.raw_connections(), sharded.raw_rate_limits()) == before
    assert sharded.connection(refused) is None


def test_a_conflict_sends_the_next_attempt_to_another_shard(sharded, lowest_shard_first, monkeypatch) -> None:
    # Given DynamoDB answering the first attempt of a join with a conflict on the seat
    client = dynamodb.client()
    real = client.transact_write_items
    attempts: list[str] = []

    def conflict_once(**arguments: Any) -> Any:
        attempts.append(arguments["TransactItems"][0]["Update"]["Key"]["sessionId"]["S"])
        if len(attempts) == 1:
            others = len(arguments["TransactItems"]) - 1
            reasons: list[Any] = [{"Code": "TransactionConflict"}] + [{"Code": "None"}] * others
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        return real(**arguments)

    monkeypatch.setattr(client, "transact_write_items", conflict_once)
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    listener = join()
    # Then the retry policy's next attempt was on another shard, which took the listener
    assert attempts == [f"{SESSION_ID}#1", f"{SESSION_ID}#2"]
    assert listener_rows(sharded)[listener] == f"{SESSION_ID}#2"
    assert seat_counts(sharded) == [0, 1, 0]


def test_each_shard_has_its_share_of_the_join_rate(sharded, lowest_shard_first, monkeypatch) -> None:
    # Given an allowance of three joins a minute: one per shard
    monkeypatch.setenv("JOINS_PER_SESSION_PER_MINUTE", "3")
    runtime.reset()
    for _ in range(3):
        join()
    assert seat_counts(sharded) == [1, 1, 1]
    _refused, response = connect_with({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"})
    assert error_of(response) == (429, "RATE_LIMIT_EXCEEDED")
    keys = sorted(item["limitKey"]["S"] for item in sharded.raw_rate_limits())
    assert [key.rsplit("#", 1)[0] for key in keys] == [f"joinsBySession#{SESSION_ID}#{k}" for k in (1, 2, 3)]


def test_a_seat_left_by_an_earlier_session_of_the_id_is_replaced(sharded) -> None:
    # Given a seat an earlier session of the same id left full and closed
    sharded.client.put_item(
        TableName=sharded.sessions,
        Item={
            "sessionId": {"S": f"{SESSION_ID}#1"},
            "listenerCount": {"N": "2"},
            "sessionCreatedAt": {"N": "1"},
            "seatClosed": {"BOOL": True},
        },
    )
    # When listeners join (the first on that shard)
    for _ in range(CAP):
        join()
    # Then the stale seat was replaced by this session's, and filled
    assert seat_counts(sharded) == [2, 2, 2]
    assert seat(sharded, 1)["sessionCreatedAt"] == sharded.session(SESSION_ID)["createdAt"]
    assert_count_is_the_rows(sharded)


def test_the_id_of_an_expired_session_with_seats_is_not_reused(tables, small_shards, monkeypatch) -> None:
    # Given every id drawn is that of an expired session with seat shards
    now_s = int(time.time())
    tables.put_session(sessionId=SESSION_ID, seatShards=SHARDS, expiresAt=now_s - 10, isActive=False)
    monkeypatch.setattr("lambda_src.app.connections.new_session_id", lambda _vocabulary: SESSION_ID)
    _speaker, response = connect_with({"action": "createSession", "sourceLanguage": "en"}, user_id="someone")
    assert response["statusCode"] == 503  # no free id: the old one stays taken until TTL deletes its item
    assert tables.session(SESSION_ID)["isActive"] is False


def test_a_join_as_a_message_is_told_the_seats_count(sharded, lowest_shard_first) -> None:
    join(), join()
    opened = plain()
    with DynamoDBRequests() as requests:
        joined = body_of(send({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"}, opened))
    assert joined["listenerCount"] == 3
    assert requests.by_operation == {"TransactWriteItems": 2, "BatchGetItem": 2}  # shard 1 full: read, then count


# -- departures and changes -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["leaveSession", "$disconnect"])
def test_a_departure_counts_out_of_the_rows_own_shard(sharded, lowest_shard_first, how) -> None:
    listeners = [join_in(language) for language in ("es", "es", "de", "fr")]
    leaving = listeners[2]  # on shard 2, in German
    with DynamoDBRequests() as requests:
        if how == "leaveSession":
            assert body_of(send({"action": "leaveSession"}, leaving))["type"] == "sessionLeft"
        else:
            drop(leaving)
    assert requests.by_operation == {"GetItem": 1, "TransactWriteItems": 1}
    assert seat_counts(sharded) == [2, 1, 0]
    assert seat(sharded, 2)["listeners:de"] == 0 and seat(sharded, 2)["listeners:fr"] == 1
    assert_count_is_the_rows(sharded)
    # A repeat counts nothing out
    drop(leaving)
    assert seat_counts(sharded) == [2, 1, 0]


def test_change_language_moves_the_shards_counters_in_one_transaction(sharded, lowest_shard_first) -> None:
    listener = join_in("es")
    with DynamoDBRequests() as requests:
        changed = body_of(send({"action": "changeLanguage", "targetLanguage": "de"}, listener))
    assert changed["type"] == "languageChanged"
    # The row's own update is refused (it holds a seat) and returns the row; then one transaction
    assert requests.by_operation == {"UpdateItem": 1, "TransactWriteItems": 1}
    assert seat(sharded, 1)["listeners:es"] == 0 and seat(sharded, 1)["listeners:de"] == 1
    assert sharded.connection(listener)["targetLanguage"] == "de"
    assert seat_counts(sharded) == [1, 0, 0]


def test_a_refresh_keeps_the_old_rows_shard_and_moves_its_language(sharded, lowest_shard_first) -> None:
    join_in("es"), join_in("es")  # shard 1 full
    third = join_in("es")  # on shard 2
    query = {
        "action": "refreshConnection",
        "sessionId": SESSION_ID,
        "role": "listener",
        "targetLanguage": "fr",
        "previousConnectionId": third,
    }
    with DynamoDBRequests() as requests:
        replaced, response = connect_with(query)
    assert response["statusCode"] == 200
    # The session read, the old row read (its shard), one transaction
    assert requests.by_operation == {"GetItem": 2, "TransactWriteItems": 1}
    assert sharded.connection(third) is None
    assert listener_rows(sharded)[replaced] == f"{SESSION_ID}#2"
    assert seat_counts(sharded) == [2, 1, 0]
    assert seat(sharded, 2)["listeners:es"] == 0 and seat(sharded, 2)["listeners:fr"] == 1
    assert_count_is_the_rows(sharded)


def test_a_refresh_on_a_closed_seat_is_refused_ended(sharded) -> None:
    listener = join()
    seats.close(SESSION_ID, runtime.sessions().seating(SESSION_ID, int(time.time())))
    query = {
        "action": "refreshConnection",
        "sessionId": SESSION_ID,
        "role": "listener",
        "targetLanguage": "es",
        "previousConnectionId": listener,
    }
    refused, response = connect_with(query)
    assert error_of(response) == (410, "SESSION_ENDED")
    assert sharded.connection(listener) is not None and sharded.connection(refused) is None


def test_the_count_is_the_rows_after_a_mixed_sequence(sharded) -> None:
    listeners = [join_in(language) for language in ("es", "de", "es", "fr", "es")]
    send({"action": "leaveSession"}, listeners[0])
    drop(listeners[1])
    send({"action": "changeLanguage", "targetLanguage": "it"}, listeners[2])
    drop(listeners[2])
    join_in("pt")
    assert_count_is_the_rows(sharded)
    assert seats.audience(runtime.sessions().get(SESSION_ID, None)).listener_count == 3  # type: ignore[arg-type]


# -- the count and the status -----------------------------------------------------------------------------------------
def test_the_speakers_status_counts_languages_from_the_seats_in_one_read(sharded, gateway) -> None:
    for language in ("es", "es", "de", "fr"):
        join_in(language)
    with DynamoDBRequests() as requests:
        status_reply = body_of(send({"action": "getSessionStatus", "sessionId": SESSION_ID}, "speaker-conn"))
    assert status_reply["listenerCount"] == 4
    assert status_reply["listenersByLanguage"] == {"de": 1, "es": 2, "fr": 1}
    assert requests.by_operation == {"GetItem": 1, "BatchGetItem": 1}  # no read of the listener index


def test_a_status_push_counts_from_the_seats(sharded, gateway) -> None:
    listener = join_in("es")
    row = runtime.connections().get(listener)
    assert row is not None
    records = [{"eventName": "INSERT", "dynamodb": {"NewImage": dynamodb.serialize(row.to_item())}}]
    with DynamoDBRequests() as requests:
        assert status.handler({"Records": records}, None) == {"pushed": 1}
    assert requests.by_operation == {"GetItem": 1, "BatchGetItem": 1, "UpdateItem": 1}
    ((_target, pushed),) = gateway.posts()
    assert (pushed["listenerCount"], pushed["listenersByLanguage"]) == (1, {"es": 1})


def test_the_welcome_function_fills_in_the_seats_count(sharded, gateway) -> None:
    listeners = [join() for _ in range(3)]
    records = []
    for connection_id in listeners:
        row = runtime.connections().get(connection_id)
        assert row is not None
        records.append({"eventName": "INSERT", "dynamodb": {"NewImage": dynamodb.serialize(row.to_item())}})
    runtime.reset()
    with DynamoDBRequests() as requests:
        welcome.handler({"Records": records}, None)
    assert {message["listenerCount"] for _target, message in gateway.posts()} == {3}
    assert requests.by_operation == {"BatchGetItem": 2}  # the sessions, then their seats


def test_the_http_api_reads_the_seats_count(sharded) -> None:
    for _ in range(4):
        join()
    runtime.reset()
    with DynamoDBRequests() as requests:
        response = http_handler.handler(http_event(http_api.GET_SESSION.key, user_id="x", session_id=SESSION_ID), None)
    assert body_of(response)["listenerCount"] == 4
    assert requests.by_operation == {"GetItem": 1, "BatchGetItem": 1}


def test_the_sweepers_gauges_count_the_seats(sharded, gateway, monkeypatch) -> None:
    from lambda_src.platform import metrics

    published: list[tuple[int, int]] = []
    monkeypatch.setattr(metrics, "gauges", lambda sessions, listeners: published.append((sessions, listeners)))
    sharded.client.update_item(
        TableName=sharded.sessions,
        Key={"sessionId": {"S": SESSION_ID}},
        UpdateExpression="SET sweepAt = :later",
        ExpressionAttributeValues={":later": {"N": str(int(time.time()) + 3600)}},
    )
    for _ in range(5):
        join()
    sweeper.handler({"source": "aws.events"}, None)
    assert published == [(1, 5)]


# -- the listener index -----------------------------------------------------------------------------------------------
def test_every_reader_of_the_index_reads_every_occupied_shard(sharded) -> None:
    listeners = {join_in(language): language for language in ("es", "de", "es", "fr", "de")}
    occupied = sum(count > 0 for count in seat_counts(sharded))
    runtime.reset()  # a process that has not seen the session
    with DynamoDBRequests() as first:
        by_language = downstream.listeners_by_language(SESSION_ID)
    assert {c: language for language, ids in by_language.items() for c in ids} == listeners
    # The session's own key (nobody there), the session read, its seats, then each occupied shard's key
    assert first.by_operation == {"Query": 1 + occupied, "GetItem": 1, "BatchGetItem": 1}
    with DynamoDBRequests() as later:
        downstream.listeners_by_language(SESSION_ID)
    assert later.by_operation == {"Query": occupied, "BatchGetItem": 1}
    report = downstream.broadcast(SESSION_ID, "de", {"type": "audioSegment", "sessionId": SESSION_ID})
    assert report.listeners == 2


def test_an_empty_shard_is_not_queried(sharded, lowest_shard_first) -> None:
    # Given listeners on the first shard only (the lowest shard is taken first)
    spanish = join_in("es")
    join_in("de")
    assert seat_counts(sharded)[0] == 2 and sum(seat_counts(sharded)) == 2
    # When the listeners are read, all of them or one language's
    with DynamoDBRequests() as everyone:
        assert [c for page in seats.listener_pages(SESSION_ID) for c, _ in page] != []
    with DynamoDBRequests() as french:
        assert [c for page in seats.listener_pages(SESSION_ID, "fr") for c, _ in page] == []
    with DynamoDBRequests() as spanish_read:
        assert [c for page in seats.listener_pages(SESSION_ID, "es") for c, _ in page] == [spanish]
    # Then the seats are read and only the shard that counts listeners (of that language) is queried
    assert everyone.by_operation == {"BatchGetItem": 1, "Query": 1}
    assert french.by_operation == {"BatchGetItem": 1}
    assert spanish_read.by_operation == {"BatchGetItem": 1, "Query": 1}


# -- ending -----------------------------------------------------------------------------------------------------------
def test_ending_closes_every_seat_and_dismisses_every_shards_listeners(sharded, gateway, lowest_shard_first) -> None:
    listeners = [join() for _ in range(3)]  # shards 1 and 2; shard 3 never taken
    runtime.reset()  # the speaker's message reaches a process that has not seen the session
    ended = body_of(send({"action": "endSession", "sessionId": SESSION_ID}, "speaker-conn"))
    assert ended["type"] == "sessionEnded"
    assert sorted(gateway.closed()) == sorted(listeners)
    assert all(seat(sharded, k)["seatClosed"] is True for k in range(1, SHARDS + 1))
    # A late join is refused, and writes nothing
    late, response = connect_with({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"})
    assert error_of(response) == (410, "SESSION_ENDED")
    assert sharded.connection(late) is None
    assert seat_counts(sharded) == [2, 1, 0]


def test_a_join_between_the_ending_and_the_closing_is_dismissed_by_the_revisit(sharded, gateway, monkeypatch) -> None:
    # Given an ending whose closing of the seats failed
    close, failing = seats.close, [True]
    monkeypatch.setattr(seats, "close", lambda session_id, seating: None if failing else close(session_id, seating))
    first = join()
    assert body_of(send({"action": "endSession", "sessionId": SESSION_ID}, "speaker-conn"))["type"] == "sessionEnded"
    failing.clear()
    # When a listener whose process still knows the session joins it (the seats are open)
    late = join()
    assert sharded.connection(late) is not None
    # Then the sweeper's revisit, once due, closes the seats and dismisses it
    sharded.client.update_item(
        TableName=sharded.sessions,
        Key={"sessionId": {"S": SESSION_ID}},
        UpdateExpression="SET sweepAt = :now",
        ExpressionAttributeValues={":now": {"N": str(int(time.time()) - 1)}},
    )
    sweeper.handler({"source": "aws.events"}, None)
    assert late in gateway.closed() and first in gateway.closed()
    assert all(seat(sharded, k)["seatClosed"] is True for k in range(1, SHARDS + 1))
    _refused, response = connect_with({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"})
    assert error_of(response) == (410, "SESSION_ENDED")


def test_the_http_apis_ending_closes_the_seats(sharded, gateway) -> None:
    join()
    response = http_handler.handler(
        http_event(http_api.DELETE_SESSION.key, user_id="user-1", session_id=SESSION_ID), None
    )
    assert response["statusCode"] == 204, response
    assert all(seat(sharded, k)["seatClosed"] is True for k in range(1, SHARDS + 1))


def test_an_index_key_is_the_shards(sharded, lowest_shard_first) -> None:
    listener = join()
    items = sharded.client.query(
        TableName=sharded.connections,
        IndexName=schema.CONNECTIONS_BY_SESSION_INDEX,
        KeyConditionExpression="sessionId = :s",
        ExpressionAttributeValues={":s": {"S": f"{SESSION_ID}#1"}},
    )["Items"]
    assert [item["connectionId"]["S"] for item in items] == [listener]
    assert welcome_of_row(listener)["sessionId"] == SESSION_ID  # what the client hears is the session's id
    row = runtime.connections().get(listener)
    assert row is not None and (row.session_id, row.shard) == (SESSION_ID, 1)


def test_a_join_whose_conflicts_outlast_the_retry_budget_over_full_seats_is_refused_for_the_cap(
    sharded, monkeypatch
) -> None:
    # Given every seat full, and DynamoDB answering every further transaction with a conflict
    for _ in range(CAP):
        join()
    client = dynamodb.client()

    def always_conflicting(**arguments: Any) -> Any:
        reasons: list[Any] = [{"Code": "TransactionConflict"}] + [{"Code": "None"}] * (
            len(arguments["TransactItems"]) - 1
        )
        raise ClientError(
            {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}, "CancellationReasons": reasons},
            "TransactWriteItems",
        )

    monkeypatch.setattr(client, "transact_write_items", always_conflicting)
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    # When a join gives up on the conflicts, then the seats' read finds them all full: refused for the cap
    _refused, response = connect_with({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"})
    assert error_of(response) == (503, "SESSION_FULL")


def test_a_join_that_reads_an_ended_sessions_item_is_refused_before_its_seats_are_closed(sharded) -> None:
    sharded.client.update_item(
        TableName=sharded.sessions,
        Key={"sessionId": {"S": SESSION_ID}},
        UpdateExpression="SET isActive = :false",
        ExpressionAttributeValues={":false": {"BOOL": False}},
    )
    refused, response = connect_with({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"})
    assert error_of(response) == (410, "SESSION_ENDED")
    assert sharded.connection(refused) is None and seat(sharded, 1) == {}
