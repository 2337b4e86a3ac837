"""Seat shards on the real DynamoDB engine (DynamoDB Local, decision record 0040): many simultaneous joins of one
session with seat shards and a small cap, through the unchanged connect handler in threads (each standing for a
function instance). Exactly the cap is admitted, every other join is refused for the cap, and the count (the sum of
the seats) equals the listener rows, as it does after the listeners leave.

The handlers run in this process (so the shards can be made small: three of four seats); DynamoDB Local applies
concurrent transactions one after the other, so what is exercised is the seats filling while joins read them and
move on, not the conflict rule (``make bench`` section 7 emulates that).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from lambda_src import runtime
from lambda_src.adapters import connections_api
from lambda_src.contract import function_settings, limits, schema
from lambda_src.handlers import connect, disconnect
from local_run.dynamodb_local import DynamoDBLocal, endpoint_environment
from tests.support.fakes import CALLBACK_URL, FakeConnectionsApi
from tests.support.helpers import body_of, connect_event, disconnect_event, new_connection_id

pytestmark = pytest.mark.integration

CAP = 12  # three shards of four seats
JOINS = 40


@pytest.fixture(scope="module")
def database() -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal() as running:
        yield running


@pytest.fixture
def local_tables(database: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch) -> Any:
    client = database.client()
    prefix = f"seats-{new_connection_id().strip('=')}"
    names = {}
    for definition in schema.TABLES:
        name = f"{prefix}-{definition.construct_id.lower()}"
        client.create_table(**definition.create_table_request(name))
        names[definition.construct_id] = name
    for variable, value in endpoint_environment(database.endpoint).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv(function_settings.ENV_SESSIONS_TABLE, names[schema.SESSIONS.construct_id])
    monkeypatch.setenv(function_settings.ENV_CONNECTIONS_TABLE, names[schema.CONNECTIONS.construct_id])
    monkeypatch.setenv(function_settings.ENV_RATE_LIMITS_TABLE, names[schema.RATE_LIMITS.construct_id])
    monkeypatch.setenv(function_settings.ENV_CALLBACK_URL, CALLBACK_URL)
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", str(CAP))
    monkeypatch.setattr(limits, "ONE_SHARD_MAX_LISTENERS", 4)
    monkeypatch.setattr(limits, "SEATS_PER_SHARD", 4)
    fake = FakeConnectionsApi()
    monkeypatch.setattr(connections_api, "client", lambda: fake)
    runtime.reset()
    yield client, names
    runtime.reset()


def _rows(client: Any, table: str, session_id: str) -> int:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return sum(
        1
        for item in items
        if item.get("sessionId", {}).get("S", "").split("#")[0] == session_id
        and item.get("role", {}).get("S") == schema.ROLE_LISTENER
    )


def test_simultaneous_joins_admit_exactly_the_cap_and_the_count_is_the_rows(local_tables) -> None:
    client, names = local_tables
    speaker = new_connection_id()
    created = connect.handler(
        connect_event({"action": "createSession", "sourceLanguage": "en"}, connection_id=speaker, user_id="u"), None
    )
    assert created["statusCode"] == 200
    session_id = runtime.connections().session_of(speaker)
    assert session_id is not None
    session = runtime.sessions().get(session_id, None)
    assert session is not None and session.seat_shards == 3
    # When JOINS listeners join at one moment, each on a thread of its own (a function instance of its own)
    answers: Counter[str] = Counter()
    admitted: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(JOINS)

    def join() -> None:
        connection_id = new_connection_id()
        event = connect_event(
            {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}, connection_id=connection_id
        )
        start.wait()
        response = connect.handler(event, None)
        code = "admitted" if response["statusCode"] == 200 else body_of(response)["code"]
        with lock:
            answers[code] += 1
            if code == "admitted":
                admitted.append(connection_id)

    threads = [threading.Thread(target=join) for _ in range(JOINS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly the cap is admitted, the others refused for the cap only, and the count is the rows
    assert answers == {"admitted": CAP, "SESSION_FULL": JOINS - CAP}
    audience = runtime.sessions().audiences({session_id: session.seating})[session_id]
    assert audience.listener_count == CAP == _rows(client, names[schema.CONNECTIONS.construct_id], session_id)
    assert audience.by_language == {"es": CAP}
    # And once they all left, at the same moment, the count is zero with no row left
    leave = threading.Barrier(CAP)

    def drop(connection_id: str) -> None:
        leave.wait()
        assert disconnect.handler(disconnect_event(connection_id), None)["statusCode"] == 200

    leaving = [threading.Thread(target=drop, args=(connection_id,)) for connection_id in admitted]
    for thread in leaving:
        thread.start()
    for thread in leaving:
        thread.join()
    audience = runtime.sessions().audiences({session_id: session.seating})[session_id]
    assert audience.listener_count == 0 == _rows(client, names[schema.CONNECTIONS.construct_id], session_id)
