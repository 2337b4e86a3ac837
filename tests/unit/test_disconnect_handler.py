"""``$disconnect``: a listener's departure is counted exactly once, and never resurrects a session."""

from __future__ import annotations

import json

from lambda_src.handlers import connect, disconnect
from tests.support.helpers import connect_event, disconnect_event, new_connection_id

JOIN = {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}


def join(tables) -> str:
    connection_id = new_connection_id()
    assert connect.handler(connect_event(JOIN, connection_id=connection_id), None)["statusCode"] == 200
    return connection_id


def drop(connection_id: str) -> dict:
    return disconnect.handler(disconnect_event(connection_id), None)


def test_listener_disconnect_decrements_once(tables):
    # Given a session with two listeners
    tables.put_session(sessionId="golden-eagle-427")
    first, second = join(tables), join(tables)
    assert tables.session("golden-eagle-427")["listenerCount"] == 2
    # When one disconnects
    assert drop(first)["statusCode"] == 200
    # Then the count falls by one and its row is gone
    assert tables.session("golden-eagle-427")["listenerCount"] == 1
    assert tables.connection(first) is None
    assert tables.connection(second) is not None


def test_a_repeated_disconnect_does_not_decrement_again(tables):
    tables.put_session(sessionId="golden-eagle-427")
    first, _second = join(tables), join(tables)
    assert drop(first)["statusCode"] == 200
    # When the same disconnect is delivered again
    assert drop(first)["statusCode"] == 200
    # Then the count is unchanged
    assert tables.session("golden-eagle-427")["listenerCount"] == 1


def test_disconnect_after_the_session_was_deleted_does_not_recreate_it(tables):
    # Given a listener of a session that TTL (or an end) has since deleted
    tables.put_session(sessionId="golden-eagle-427")
    listener = join(tables)
    tables.client.delete_item(TableName=tables.sessions, Key={"sessionId": {"S": "golden-eagle-427"}})
    # When the listener disconnects
    assert drop(listener)["statusCode"] == 200
    # Then no session item appears and the listener row is removed
    assert tables.raw_sessions() == []
    assert tables.connection(listener) is None


def test_listener_count_never_goes_negative(tables):
    # Given a listener row whose session's count is already 0 (e.g. an inconsistent earlier state)
    tables.put_session(sessionId="golden-eagle-427")
    listener = join(tables)
    tables.client.update_item(
        TableName=tables.sessions,
        Key={"sessionId": {"S": "golden-eagle-427"}},
        UpdateExpression="SET listenerCount = :zero",
        ExpressionAttributeValues={":zero": {"N": "0"}},
    )
    # When it disconnects
    assert drop(listener)["statusCode"] == 200
    # Then the count stays at 0 and the row is removed
    assert tables.session("golden-eagle-427")["listenerCount"] == 0
    assert tables.connection(listener) is None


def test_every_listener_leaving_returns_the_count_to_zero(tables):
    tables.put_session(sessionId="golden-eagle-427")
    listeners = [join(tables) for _ in range(4)]
    for listener in listeners + listeners:  # each disconnect delivered twice
        drop(listener)
    assert tables.session("golden-eagle-427")["listenerCount"] == 0
    assert tables.raw_connections() == []


def test_speaker_disconnect_removes_its_row_without_touching_the_count(tables):
    tables.put_session(sessionId="golden-eagle-427", listenerCount=0)
    join(tables)
    speaker = new_connection_id()
    query = {"action": "createSession", "sourceLanguage": "en"}
    assert connect.handler(connect_event(query, connection_id=speaker, user_id="u"), None)["statusCode"] == 200
    assert drop(speaker)["statusCode"] == 200
    assert tables.connection(speaker) is None
    assert tables.session("golden-eagle-427")["listenerCount"] == 1


def test_unknown_connection_disconnect_is_harmless(tables):
    tables.put_session(sessionId="golden-eagle-427", listenerCount=1)
    before = tables.raw_sessions()
    response = drop(new_connection_id())
    assert response["statusCode"] == 200
    assert "body" not in response or json.loads(response["body"])["type"] != "error"
    assert tables.raw_sessions() == before
