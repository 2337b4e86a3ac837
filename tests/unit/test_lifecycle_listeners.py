"""Listeners over their lifetime: join, leave, disconnect and refresh, and the listener-count invariant
(``listenerCount`` equals the session's listener rows, never goes negative, never re-creates a session)."""

from __future__ import annotations

import json
import time

import pytest

from lambda_src import runtime
from lambda_src.adapters.repositories.connections import ConnectionsRepository
from lambda_src.adapters.repositories.sessions import SessionsRepository
from lambda_src.contract import schema
from tests.support.helpers import body_of, new_connection_id
from tests.unit.flows import (
    OWNER,
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

LEAVE = {"action": "leaveSession"}
REFRESH_COMPLETE_KEYS = {"type", "sessionId", "role", "targetLanguage", "sourceLanguage", "connectionId", "timestamp"}


def count(tables, session_id: str = SESSION_ID) -> int:
    return tables.session(session_id)["listenerCount"]


def listener_rows(tables, session_id: str = SESSION_ID) -> list[str]:
    """Connection ids of the session's listener rows (the table, not the counter)."""
    return sorted(
        item["connectionId"]
        for item in tables.connections_items()
        if item.get("sessionId") == session_id and item.get("role") == "listener"
    )


def indexed_listeners(tables, session_id: str = SESSION_ID) -> list[str]:
    """Connection ids the fan-out index returns for the session."""
    items = tables.client.query(
        TableName=tables.connections,
        IndexName=schema.CONNECTIONS_BY_SESSION_INDEX,
        KeyConditionExpression="sessionId = :s",
        ExpressionAttributeValues={":s": {"S": session_id}},
    )["Items"]
    return sorted(item["connectionId"]["S"] for item in items)


def refresh(previous: str | None = None, language: str = "es", session_id: str = SESSION_ID) -> tuple[str, dict]:
    query = {"action": "refreshConnection", "sessionId": session_id, "role": "listener", "targetLanguage": language}
    if previous is not None:
        query["previousConnectionId"] = previous
    return connect_with(query)


def set_cap(monkeypatch, cap: int) -> None:
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", str(cap))
    runtime.reset()


def end_in_table(tables, session_id: str = SESSION_ID) -> None:
    """Mark the session ended as the end write does (inactive; the count is left to the listeners' own
    departures, whose rows stay until their connections close)."""
    tables.client.update_item(
        TableName=tables.sessions,
        Key={"sessionId": {"S": session_id}},
        UpdateExpression="SET isActive = :false, endReason = :reason REMOVE sweepAt",
        ExpressionAttributeValues={":false": {"BOOL": False}, ":reason": {"S": "endedBySpeaker"}},
    )


def delete_session(tables, session_id: str = SESSION_ID) -> None:
    tables.client.delete_item(TableName=tables.sessions, Key={"sessionId": {"S": session_id}})


# --- joinSession -------------------------------------------------------------------------------------


def test_listeners_joined_by_query_and_by_message_are_rows_in_the_fanout_index(tables):
    # Given a live session
    tables.put_session(sessionId=SESSION_ID)
    # When one listener joins on $connect and another by message from a plain connection
    by_query = join(language="es")
    by_message = plain()
    response = send({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "de"}, by_message)
    # Then both are counted, both rows are listeners, and the fan-out index finds both
    assert response["statusCode"] == 200
    assert body_of(response)["type"] == "sessionJoined"
    assert count(tables) == 2
    assert listener_rows(tables) == sorted([by_query, by_message])
    assert indexed_listeners(tables) == sorted([by_query, by_message])


def test_a_listener_that_left_may_join_again_and_is_counted_once(tables):
    # Given a listener that joined by message and then left, keeping its connection
    tables.put_session(sessionId=SESSION_ID)
    listener = plain()
    join_body = {"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"}
    assert send(join_body, listener)["statusCode"] == 200
    assert send(LEAVE, listener)["statusCode"] == 200
    assert count(tables) == 0
    # When it joins again on the same connection, with another language
    response = send({**join_body, "targetLanguage": "fr"}, listener)
    # Then it is counted once more and its row is a listener for the new language
    assert response["statusCode"] == 200
    assert count(tables) == 1
    row = tables.connection(listener)
    assert (row["role"], row["sessionId"], row["targetLanguage"]) == ("listener", SESSION_ID, "fr")
    # And its disconnect brings the count back to zero
    drop(listener)
    assert count(tables) == 0


# --- leaveSession ------------------------------------------------------------------------------------


def test_leave_replies_session_left_and_counts_out_once(tables):
    # Given a session with two listeners
    tables.put_session(sessionId=SESSION_ID)
    leaving, staying = join(language="es"), join(language="de")
    # When one of them leaves
    response = send(LEAVE, leaving)
    # Then it gets sessionLeft and the count falls by exactly one
    assert response["statusCode"] == 200
    reply = body_of(response)
    assert reply["type"] == "sessionLeft"
    assert reply["sessionId"] == SESSION_ID
    assert isinstance(reply["timestamp"], int)
    assert count(tables) == 1
    # And its connection stays registered but is no longer a listener of the session
    row = tables.connection(leaving)
    assert row["role"] == "none"
    assert "sessionId" not in row and "targetLanguage" not in row
    assert indexed_listeners(tables) == [staying]


def test_leave_twice_counts_out_once(tables):
    # Given a listener that already left
    tables.put_session(sessionId=SESSION_ID)
    leaving, _other = join(), join()
    assert send(LEAVE, leaving)["statusCode"] == 200
    # When it sends leaveSession again
    response = send(LEAVE, leaving)
    # Then it is told it is in no session and the count is unchanged
    assert error_of(response) == (404, "SESSION_NOT_FOUND")
    assert count(tables) == 1


def test_leave_followed_by_disconnect_counts_out_once(tables):
    # Given two listeners, one of which leaves
    tables.put_session(sessionId=SESSION_ID)
    leaving, _other = join(), join()
    assert send(LEAVE, leaving)["statusCode"] == 200
    # When the one that left then disconnects (twice, as API Gateway may redeliver)
    drop(leaving)
    drop(leaving)
    # Then the count fell only once and its row is gone
    assert count(tables) == 1
    assert tables.connection(leaving) is None


def test_a_speaker_cannot_leave_its_session(tables):
    # Given a speaker's session with a listener
    session_id, speaker = create_session()
    join(session_id)
    # When the speaker sends leaveSession
    response = send(LEAVE, speaker)
    # Then it is refused and nothing changes
    assert error_of(response) == (403, "FORBIDDEN")
    assert count(tables, session_id) == 1
    assert tables.connection(speaker)["role"] == "speaker"
    assert tables.session(session_id)["isActive"] is True


def test_leave_from_a_connection_in_no_session(tables):
    # Given a session with one listener, when a plain connection sends leaveSession
    tables.put_session(sessionId=SESSION_ID, listenerCount=1)
    response = send(LEAVE, plain())
    # Then it is told it is in no session and nobody is counted out
    assert error_of(response) == (404, "SESSION_NOT_FOUND")
    assert count(tables) == 1


def test_leave_after_the_session_was_deleted_does_not_recreate_it(tables):
    # Given a listener whose session TTL has since deleted
    tables.put_session(sessionId=SESSION_ID)
    listener = join()
    delete_session(tables)
    # When it leaves
    response = send(LEAVE, listener)
    # Then no session item appears and the connection is detached
    assert response["statusCode"] == 200
    assert tables.raw_sessions() == []
    assert tables.connection(listener)["role"] == "none"


def test_leave_after_the_session_ended_counts_out_once_and_keeps_it_ended(tables):
    # Given a listener of a session that has just ended (its connection not yet closed)
    tables.put_session(sessionId=SESSION_ID)
    listener = join()
    end_in_table(tables)
    # When it leaves, and then its connection closes
    assert send(LEAVE, listener)["statusCode"] == 200
    drop(listener)
    # Then it was counted out once, the count is 0 (never negative) and the session stays ended
    item = tables.session(SESSION_ID)
    assert item["listenerCount"] == 0
    assert item["isActive"] is False
    assert tables.connection(listener) is None


# --- $disconnect -------------------------------------------------------------------------------------


def test_duplicate_disconnect_of_a_listener_joined_by_message_counts_out_once(tables):
    # Given two listeners that joined by message
    tables.put_session(sessionId=SESSION_ID)
    first, second = plain(), plain()
    for listener in (first, second):
        send({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"}, listener)
    assert count(tables) == 2
    # When one disconnect is delivered three times
    for _ in range(3):
        assert drop(first)["statusCode"] == 200
    # Then the count fell once and matches the rows left
    assert count(tables) == 1
    assert listener_rows(tables) == [second]


def test_disconnect_after_the_session_ended_counts_out_once_and_never_reopens_it(tables):
    # Given a listener of a session that has ended (its connection not yet closed)
    tables.put_session(sessionId=SESSION_ID)
    listener = join()
    end_in_table(tables)
    # When its $disconnect arrives, twice
    drop(listener)
    drop(listener)
    # Then the row is gone, the count fell once to 0 and the session stays ended
    assert tables.connection(listener) is None
    item = tables.session(SESSION_ID)
    assert item["listenerCount"] == 0
    assert item["isActive"] is False


def test_end_session_then_the_closed_listeners_disconnects_bring_the_count_to_zero(tables, gateway):
    # Given a session with two listeners that its speaker ended (which closed their connections)
    session_id, speaker = create_session()
    listeners = [join(session_id), join(session_id)]
    assert send({"action": "endSession"}, speaker)["statusCode"] == 200
    assert sorted(gateway.closed()) == sorted(listeners)
    assert count(tables, session_id) == len(listener_rows(tables, session_id)) == 2
    # When API Gateway delivers their $disconnects, one of them twice
    for listener in listeners + listeners[:1]:
        assert drop(listener)["statusCode"] == 200
    # Then every row is gone, the count is exactly 0, and the session stays ended
    assert listener_rows(tables, session_id) == []
    item = tables.session(session_id)
    assert item["listenerCount"] == 0
    assert item["isActive"] is False and item["endReason"] == "endedBySpeaker"


@pytest.mark.parametrize("step", ["disconnect", "leave then disconnect", "disconnect twice"])
def test_listener_departure_after_the_session_was_deleted_never_recreates_it(tables, step):
    # Given a listener whose session was deleted (TTL, or an operator)
    tables.put_session(sessionId=SESSION_ID)
    listener = join()
    delete_session(tables)
    # When it departs in any order
    if step.startswith("leave"):
        send(LEAVE, listener)
    drop(listener)
    if step.endswith("twice"):
        drop(listener)
    # Then no session item is written back and the row is gone
    assert tables.raw_sessions() == []
    assert tables.connection(listener) is None


def test_count_matches_the_rows_after_a_mixed_sequence(tables):
    # Given a session and a mix of joins, leaves, repeated disconnects and refreshes
    tables.put_session(sessionId=SESSION_ID)
    a, b, c, d = join(language="es"), join(language="de"), join(language="fr"), join(language="es")
    send(LEAVE, a)
    drop(a)
    drop(b)
    drop(b)
    new_c, response = refresh(previous=c, language="fr")
    assert response["statusCode"] == 200
    new_d, response = refresh(language="es")  # an older client: no previousConnectionId
    assert response["statusCode"] == 200
    drop(c)  # already replaced
    drop(d)  # the old connection of the refresh without previousConnectionId
    # Then the counter equals the listener rows, which are exactly the live listeners
    assert listener_rows(tables) == sorted([new_c, new_d])
    assert count(tables) == 2


# --- refreshConnection (listener) -------------------------------------------------------------------


def test_listener_refresh_with_previous_connection_replaces_the_row_and_keeps_the_count(tables):
    # Given a session with two listeners
    tables.put_session(sessionId=SESSION_ID, sourceLanguage="en")
    old, other = join(language="es"), join(language="de")
    # When one opens a new connection with refreshConnection naming its old one
    new, response = refresh(previous=old, language="es")
    # Then the handshake is accepted and the count does not move
    assert response["statusCode"] == 200
    assert count(tables) == 2
    # And the old row is gone, the new one is a listener of the session
    assert tables.connection(old) is None
    assert listener_rows(tables) == sorted([new, other])
    row = tables.connection(new)
    assert (row["role"], row["sessionId"], row["targetLanguage"]) == ("listener", SESSION_ID, "es")
    # And its first message is connectionRefreshComplete
    complete = welcome_of_row(new)
    assert set(complete) == REFRESH_COMPLETE_KEYS
    assert (
        complete["type"],
        complete["sessionId"],
        complete["role"],
        complete["targetLanguage"],
        complete["sourceLanguage"],
        complete["connectionId"],
    ) == (
        "connectionRefreshComplete",
        SESSION_ID,
        "listener",
        "es",
        "en",
        new,
    )
    # And the old connection's later $disconnect counts nothing
    drop(old)
    assert count(tables) == 2


def test_listener_refresh_without_previous_connection_counts_in_until_the_old_one_closes(tables):
    # Given a session with one listener
    tables.put_session(sessionId=SESSION_ID)
    old = join()
    # When it refreshes without naming its old connection (an older client)
    new, response = refresh()
    # Then the count rises by one while both connections are open
    assert response["statusCode"] == 200
    assert count(tables) == 2
    assert listener_rows(tables) == sorted([old, new])
    # And it is exact again once the old connection closes
    drop(old)
    assert count(tables) == 1
    assert listener_rows(tables) == [new]


def test_listener_refresh_whose_old_connection_already_closed_is_counted_in(tables):
    # Given a listener whose old connection closed before its refresh arrived
    tables.put_session(sessionId=SESSION_ID)
    old = join()
    drop(old)
    assert count(tables) == 0
    # When the refresh names that old connection
    new, response = refresh(previous=old)
    # Then the new connection is counted in, and the count is exact
    assert response["statusCode"] == 200
    assert count(tables) == 1
    assert listener_rows(tables) == [new]


def test_listener_refresh_cannot_remove_a_row_of_another_session(tables):
    # Given a listener of another session
    tables.put_session(sessionId=SESSION_ID)
    tables.put_session(sessionId="brave-otter-321")
    stranger = join("brave-otter-321")
    # When a refresh for this session names it as its previous connection
    new, response = refresh(previous=stranger)
    # Then the stranger's row and count are untouched, and the new listener is counted in here
    assert response["statusCode"] == 200
    assert tables.connection(stranger)["sessionId"] == "brave-otter-321"
    assert count(tables, "brave-otter-321") == 1
    assert count(tables) == 1
    assert listener_rows(tables) == [new]


def test_listener_refresh_may_exceed_the_cap_by_the_refreshing_listener_only(tables, monkeypatch):
    # Given a cap of 2 and a full session
    set_cap(monkeypatch, 2)
    tables.put_session(sessionId=SESSION_ID)
    first, second = join(), join()
    # When a listener refreshes with previousConnectionId at the cap
    replaced, response = refresh(previous=first)
    # Then it is accepted and the count stays at the cap
    assert response["statusCode"] == 200
    assert count(tables) == 2
    # When another refreshes without previousConnectionId
    extra, response = refresh()
    # Then it is accepted one over the cap
    assert response["statusCode"] == 200
    assert count(tables) == 3
    # But a second refresh without previousConnectionId is refused, and so is a plain join
    refused, response = refresh()
    assert error_of(response) == (503, "SESSION_FULL")
    assert tables.connection(refused) is None
    joiner, response = connect_with({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"})
    assert error_of(response) == (503, "SESSION_FULL")
    assert tables.connection(joiner) is None
    assert count(tables) == 3
    # And once the refreshed listener's old connection closes, the count is back at the cap
    drop(second)
    assert count(tables) == 2
    assert listener_rows(tables) == sorted([replaced, extra])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"isActive": False}, (410, "SESSION_ENDED")),
        ({"sessionId": "brave-otter-321"}, (404, "SESSION_NOT_FOUND")),
    ],
    ids=["ended", "unknown"],
)
def test_listener_refresh_of_an_ended_or_unknown_session_writes_nothing(tables, overrides, expected):
    # Given a listener of a session that ended (or a session id that does not exist)
    tables.put_session(**{"sessionId": SESSION_ID, "listenerCount": 0, **overrides})
    before = tables.raw_sessions()
    # When it refreshes
    new, response = refresh(previous=new_connection_id())
    # Then the handshake is refused with the contract's status and nothing is written
    assert error_of(response) == expected
    assert tables.connection(new) is None
    assert tables.raw_sessions() == before


def test_listener_refresh_of_an_expired_session_is_not_found(tables):
    # Given a session whose expiresAt has passed (TTL has not deleted it yet)
    tables.put_session(sessionId=SESSION_ID, expiresAt=int(time.time()) - 1)
    old = new_connection_id()
    # When a listener refreshes into it
    new, response = refresh(previous=old)
    # Then it is not found and nothing is written
    assert error_of(response) == (404, "SESSION_NOT_FOUND")
    assert tables.raw_connections() == []
    assert count(tables) == 0


@pytest.mark.parametrize("role", ["listener", "speaker"])
def test_a_refresh_naming_its_own_connection_as_previous_is_invalid_parameters_and_writes_nothing(tables, role):
    # (Regression: a listener refresh whose previousConnectionId was its own connection id wrote its row and
    # removed it in one transaction, which DynamoDB rejects: INTERNAL_ERROR.)
    # Given a live session with a listener
    tables.put_session(sessionId=SESSION_ID)
    join()
    before = (tables.raw_sessions(), tables.raw_connections())
    # When a new connection refreshes naming itself as the connection it replaces
    own = new_connection_id()
    query = {
        "action": "refreshConnection",
        "sessionId": SESSION_ID,
        "role": role,
        "targetLanguage": "es",
        "previousConnectionId": own,
    }
    _connection, response = connect_with(query, connection_id=own, user_id=OWNER if role == "speaker" else None)
    # Then the handshake is refused naming the field, what was expected and what came; nothing is written
    assert error_of(response) == (400, "INVALID_PARAMETERS")
    body = json.loads(response["body"])
    assert body["field"] == "previousConnectionId"
    assert "another connection" in body["message"] and own in body["message"]
    assert (tables.raw_sessions(), tables.raw_connections()) == before


def test_listener_refresh_needs_a_target_language(tables):
    # Given a live session, when a listener refreshes without its target language
    tables.put_session(sessionId=SESSION_ID)
    new, response = connect_with({"action": "refreshConnection", "sessionId": SESSION_ID, "role": "listener"})
    # Then the handshake is refused naming the field, and nothing is written
    assert error_of(response) == (400, "INVALID_PARAMETERS")
    assert json.loads(response["body"])["field"] == "targetLanguage"
    assert tables.raw_connections() == []
    assert count(tables) == 0


# --- interleavings: another request lands between a request's read and its write ----------------------


def run_once_after(monkeypatch, owner: type, method: str, interloper) -> list[bool]:
    """Make ``owner.method`` run ``interloper`` once, right after its first call returns (after the read,
    before the write that depends on it); the returned list is non-empty once it ran."""
    original = getattr(owner, method)
    fired: list[bool] = []

    def wrapped(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if not fired:
            fired.append(True)
            interloper()
        return result

    monkeypatch.setattr(owner, method, wrapped)
    return fired


def test_disconnect_landing_inside_a_leave_counts_out_once(tables, monkeypatch):
    # Given two listeners; the first one's $disconnect will land after its leave read its row
    tables.put_session(sessionId=SESSION_ID)
    leaving, _other = join(), join()
    fired = run_once_after(monkeypatch, ConnectionsRepository, "get", lambda: drop(leaving))
    # When it leaves
    response = send(LEAVE, leaving)
    # Then the departure was counted once, by whichever came first, and the row is gone
    assert fired
    assert response["statusCode"] == 200
    assert count(tables) == 1
    assert tables.connection(leaving) is None


def test_concurrent_duplicate_disconnects_count_out_once(tables, monkeypatch):
    # Given two listeners; a duplicate $disconnect of the first lands after the first delivery read the row
    tables.put_session(sessionId=SESSION_ID)
    first, _second = join(), join()
    fired = run_once_after(monkeypatch, ConnectionsRepository, "get", lambda: drop(first))
    # When the first delivery completes
    drop(first)
    # Then the count fell once
    assert fired
    assert count(tables) == 1
    assert tables.connection(first) is None


def test_count_zeroed_inside_a_disconnect_never_goes_negative(tables, monkeypatch):
    # Given a listener whose session's count is zeroed (e.g. an earlier inconsistency) after its read
    tables.put_session(sessionId=SESSION_ID)
    listener = join()

    def zero_count():
        tables.client.update_item(
            TableName=tables.sessions,
            Key={"sessionId": {"S": SESSION_ID}},
            UpdateExpression="SET listenerCount = :zero",
            ExpressionAttributeValues={":zero": {"N": "0"}},
        )

    fired = run_once_after(monkeypatch, ConnectionsRepository, "get", zero_count)
    # When the $disconnect completes
    assert drop(listener)["statusCode"] == 200
    # Then the count stays at 0, not -1, and the row is removed all the same
    assert fired
    assert count(tables) == 0
    assert tables.connection(listener) is None


def test_session_ending_inside_a_disconnect_counts_out_once(tables, monkeypatch):
    # Given a listener whose session ends right after its $disconnect read its row
    tables.put_session(sessionId=SESSION_ID)
    listener = join()
    fired = run_once_after(monkeypatch, ConnectionsRepository, "get", lambda: end_in_table(tables))
    # When the $disconnect completes
    assert drop(listener)["statusCode"] == 200
    # Then the listener was counted out once and its row is gone
    assert fired
    assert count(tables) == 0
    assert tables.connection(listener) is None


def test_session_ending_inside_a_join_refuses_it_with_410(tables, monkeypatch):
    # Given a session that ends right after a joining listener read it
    tables.put_session(sessionId=SESSION_ID)
    fired = run_once_after(monkeypatch, SessionsRepository, "facts", lambda: end_in_table(tables))
    # When the join's write comes
    listener, response = connect_with({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"})
    # Then it is refused as ended and nothing is counted or written
    assert fired
    assert error_of(response) == (410, "SESSION_ENDED")
    assert count(tables) == 0
    assert tables.connection(listener) is None


def test_old_connection_closing_inside_a_refresh_keeps_the_count_exact(tables, monkeypatch):
    # Given a listener whose old connection closes right after its refresh read the session
    tables.put_session(sessionId=SESSION_ID)
    old, other = join(), join()
    fired = run_once_after(monkeypatch, SessionsRepository, "get", lambda: drop(old))
    # When the refresh naming the old connection completes
    new, response = refresh(previous=old)
    # Then the new connection is counted in once the old one was counted out: exact
    assert fired
    assert response["statusCode"] == 200
    assert listener_rows(tables) == sorted([new, other])
    assert count(tables) == 2
