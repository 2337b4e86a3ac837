"""Message routes (``createSession``, ``joinSession``, ``heartbeat``) and ``$default`` (moto-backed)."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from lambda_src import runtime
from lambda_src.adapters.repositories.sessions import SessionsRepository
from lambda_src.contract import limits
from lambda_src.handlers import connect, message
from tests.support.helpers import (
    SESSION_CREATED_KEYS,
    SESSION_JOINED_KEYS,
    body_of,
    connect_event,
    message_event,
    new_connection_id,
)
from tests.unit import flows

CREATE_NUMBERS = (
    '{"action":"createSession","sourceLanguage":"en","qualityTier":"standard","partialResults":true,'
    '"minStability":0.85,"maxBufferTimeout":5.0}'
)


def plain_connection(user_id: str | None = None) -> str:
    """Open a plain connection (``$connect`` without action) and return its id."""
    connection_id = new_connection_id()
    assert connect.handler(connect_event(None, connection_id=connection_id, user_id=user_id), None)["statusCode"] == 200
    return connection_id


def send(body, connection_id: str, route_key: str = "$default", user_id: str | None = None):
    return message.handler(message_event(body, connection_id=connection_id, route_key=route_key, user_id=user_id), None)


# --- createSession ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route_key", ["createSession", "$default"])
def test_create_session_message_with_json_numbers(tables, route_key):
    # Given a plain connection of an authenticated speaker
    connection_id = plain_connection("user-42")
    # When it sends createSession with JSON booleans and numbers
    response = send(CREATE_NUMBERS, connection_id, route_key, user_id="user-42")
    # Then the reply is sessionCreated with status 200, in the seed's shape
    assert response["statusCode"] == 200
    body = body_of(response)
    assert set(body) == SESSION_CREATED_KEYS
    assert body["type"] == "sessionCreated"
    assert body["connectionId"] == connection_id
    assert body["partialResultsEnabled"] is True
    assert body["minStabilityThreshold"] == 0.85
    assert body["maxBufferTimeout"] == 5.0
    assert '"minStabilityThreshold":0.85' in response["body"]
    assert '"maxBufferTimeout":5.0' in response["body"]
    # And the session is stored with exact numbers and the connection attached as its speaker
    item = tables.session(body["sessionId"])
    assert item["minStabilityThreshold"] == Decimal("0.85")
    assert tables.raw_sessions()[0]["minStabilityThreshold"] == {"N": "0.85"}
    assert item["maxBufferTimeout"] == Decimal("5.0")
    assert item["speakerConnectionId"] == connection_id
    assert item["speakerUserId"] == "user-42"
    row = tables.connection(connection_id)
    assert row["role"] == "speaker"
    assert row["sessionId"] == body["sessionId"]
    assert "welcome" not in row  # the reply is the route response, not a deferred post


def test_create_session_message_with_string_forms(tables):
    connection_id = plain_connection("user-42")
    body = {
        "action": "createSession",
        "sourceLanguage": "fr",
        "qualityTier": "premium",
        "partialResults": "FALSE",
        "minStability": "0.9",
        "maxBufferTimeout": "2",
    }
    response = send(body, connection_id, "createSession", user_id="user-42")
    assert response["statusCode"] == 200
    reply = body_of(response)
    assert (reply["sourceLanguage"], reply["qualityTier"]) == ("fr", "premium")
    assert reply["partialResultsEnabled"] is False
    assert reply["minStabilityThreshold"] == 0.9
    assert reply["maxBufferTimeout"] == 2.0
    item = tables.session(reply["sessionId"])
    assert (item["partialResultsEnabled"], item["minStabilityThreshold"], item["maxBufferTimeout"]) == (
        False,
        Decimal("0.9"),
        Decimal("2"),
    )


def test_create_session_message_without_speaker_identity_is_unauthorized(tables):
    connection_id = plain_connection()
    response = send(CREATE_NUMBERS, connection_id, "createSession")
    assert response["statusCode"] == 401
    assert body_of(response)["code"] == "UNAUTHORIZED"
    assert tables.raw_sessions() == []
    assert tables.connection(connection_id)["role"] == "none"


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("minStability", "0.99"),
        ("minStability", '"0.99"'),
        ("minStability", "1e999999"),
        ("minStability", "true"),
        ("minStability", "null"),
        ("minStability", "[0.85]"),
        ("maxBufferTimeout", "10.01"),
        ("maxBufferTimeout", '"inf"'),
        ("partialResults", "1"),
        ("partialResults", '"yes"'),
        ("partialResults", "null"),
    ],
)
def test_create_session_message_with_invalid_configuration_writes_nothing(tables, field, raw):
    connection_id = plain_connection("u")
    body = json.loads(CREATE_NUMBERS)
    text = json.dumps({key: value for key, value in body.items() if key != field})[:-1] + f', "{field}": {raw}}}'
    response = send(text, connection_id, "createSession", user_id="u")
    assert response["statusCode"] == 400
    assert body_of(response)["code"] == "INVALID_CONFIGURATION"
    assert body_of(response)["field"] == field
    assert tables.raw_sessions() == []
    assert tables.connection(connection_id)["role"] == "none"


def test_over_precise_json_number_is_not_an_internal_error(tables):
    connection_id = plain_connection("u")
    text = CREATE_NUMBERS.replace('"minStability":0.85', '"minStability":0.85' + "0" * 40)
    response = send(text, connection_id, "createSession", user_id="u")
    assert response["statusCode"] in (200, 400), response
    if response["statusCode"] == 400:
        assert body_of(response)["code"] == "INVALID_CONFIGURATION"
        assert tables.raw_sessions() == []


def test_create_session_twice_on_one_connection_creates_one_session(tables):
    # Given a connection that already created a session
    connection_id = plain_connection("u")
    first = body_of(send(CREATE_NUMBERS, connection_id, "createSession", user_id="u"))
    # When it asks for a second one
    response = send(CREATE_NUMBERS, connection_id, "createSession", user_id="u")
    # Then it is refused and the first session stays the connection's only one
    assert response["statusCode"] == 403
    assert body_of(response)["code"] == "FORBIDDEN"
    assert [item["sessionId"] for item in tables.sessions_items()] == [first["sessionId"]]
    assert tables.connection(connection_id)["sessionId"] == first["sessionId"]


def test_create_session_on_an_unregistered_connection_writes_nothing(tables):
    # Given a connection whose $connect row does not exist
    response = send(CREATE_NUMBERS, new_connection_id(), "createSession", user_id="u")
    # Then the request is refused and no session is written
    assert response["statusCode"] >= 400
    assert body_of(response)["type"] == "error"
    assert tables.raw_sessions() == []
    assert tables.raw_connections() == []


# --- joinSession --------------------------------------------------------------------------------------


def test_join_session_by_query_and_by_message_each_count_once(tables):
    # Given a live session created by a speaker
    tables.put_session(sessionId="golden-eagle-427", sourceLanguage="en")
    # When one listener joins via the query string
    by_query = new_connection_id()
    response = connect.handler(
        connect_event(
            {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}, connection_id=by_query
        ),
        None,
    )
    assert response["statusCode"] == 200
    assert tables.session("golden-eagle-427")["listenerCount"] == 1
    # And another joins by message
    by_message = plain_connection()
    response = send(
        {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "de"}, by_message, "joinSession"
    )
    # Then the reply is sessionJoined and the count rose by one more
    assert response["statusCode"] == 200
    body = body_of(response)
    assert set(body) == SESSION_JOINED_KEYS
    assert body["type"] == "sessionJoined"
    assert (body["sessionId"], body["sourceLanguage"], body["targetLanguage"], body["connectionId"]) == (
        "golden-eagle-427",
        "en",
        "de",
        by_message,
    )
    assert abs(body["timestamp"] - time.time() * 1000) < 10_000
    assert tables.session("golden-eagle-427")["listenerCount"] == 2
    row = tables.connection(by_message)
    assert (row["role"], row["sessionId"], row["targetLanguage"]) == ("listener", "golden-eagle-427", "de")


def test_join_twice_from_one_connection_counts_once(tables):
    tables.put_session(sessionId="golden-eagle-427")
    connection_id = plain_connection()
    join = {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}
    assert send(join, connection_id, "joinSession")["statusCode"] == 200
    second = send(join, connection_id, "joinSession")
    assert second["statusCode"] >= 400
    assert tables.session("golden-eagle-427")["listenerCount"] == 1


def test_join_unknown_session_by_message(tables):
    connection_id = plain_connection()
    response = send(
        {"action": "joinSession", "sessionId": "brave-otter-321", "targetLanguage": "es"}, connection_id, "joinSession"
    )
    assert response["statusCode"] == 404
    assert body_of(response)["code"] == "SESSION_NOT_FOUND"
    assert tables.raw_sessions() == []
    assert tables.connection(connection_id)["role"] == "none"


@pytest.mark.parametrize("seconds_ago", [0, 1, 3600])
def test_join_session_expired_by_expires_at(tables, seconds_ago):
    # Given a session whose expiresAt is now or in the past (TTL has not deleted it yet)
    tables.put_session(sessionId="golden-eagle-427", expiresAt=int(time.time()) - seconds_ago)
    connection_id = plain_connection()
    # When a listener joins
    response = send(
        {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}, connection_id, "joinSession"
    )
    # Then it is not found and nothing changes
    assert response["statusCode"] == 404
    assert body_of(response)["code"] == "SESSION_NOT_FOUND"
    assert tables.session("golden-eagle-427")["listenerCount"] == 0
    assert tables.connection(connection_id)["role"] == "none"


def test_join_full_session_by_message(tables, monkeypatch):
    # Given a listener cap of 2 and a session at the cap
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", "2")
    runtime.reset()
    tables.put_session(sessionId="golden-eagle-427", listenerCount=2)
    connection_id = plain_connection()
    # When one more listener joins
    response = send(
        {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}, connection_id, "joinSession"
    )
    # Then it is refused 503 SESSION_FULL and nothing is written
    assert response["statusCode"] == 503
    assert body_of(response)["code"] == "SESSION_FULL"
    assert tables.session("golden-eagle-427")["listenerCount"] == 2
    row = tables.connection(connection_id)
    assert row["role"] == "none" and "sessionId" not in row


def test_joins_fill_up_to_the_cap_and_no_further(tables, monkeypatch):
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", "2")
    runtime.reset()
    tables.put_session(sessionId="golden-eagle-427")
    join = {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}
    statuses = [send(join, plain_connection(), "joinSession")["statusCode"] for _ in range(3)]
    assert statuses == [200, 200, 503]
    assert tables.session("golden-eagle-427")["listenerCount"] == 2


# --- malformed frames and actions ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "{",
        "[1, 2]",
        '"createSession"',
        "42",
        "null",
        "",
        '{"action": "heartbeat", "x": NaN}',
        '{"action": "heartbeat", "x": Infinity}',
        '{"action": "heartbeat", "pad": "' + "x" * (limits.MAX_FRAME_BYTES + 1) + '"}',
        '{"action": "heartbeat", "pad": "' + "\u00e9" * (limits.MAX_FRAME_BYTES // 2 + 1) + '"}',
    ],
    ids=[
        "text",
        "truncated",
        "array",
        "string",
        "number",
        "null",
        "empty",
        "NaN",
        "Infinity",
        "over-128KB",
        "over-128KB-in-utf8",
    ],
)
def test_frames_that_are_not_a_json_object_are_invalid_message(tables, body):
    response = send(body, plain_connection(), "$default")
    assert response["statusCode"] == 400
    reply = body_of(response)
    assert reply["type"] == "error"
    assert reply["code"] == "INVALID_MESSAGE"
    assert len(response["body"]) < 1000  # the frame is not echoed back


@pytest.mark.parametrize(
    "body", [{"action": "nope"}, {}, {"action": 5}, {"action": None}, {"action": "HEARTBEAT"}], ids=repr
)
def test_unknown_actions(tables, body):
    response = send(body, plain_connection(), "$default")
    assert response["statusCode"] == 400
    assert body_of(response)["code"] == "UNKNOWN_ACTION"
    assert body_of(response)["field"] == "action"


def test_heartbeat_is_acknowledged(tables):
    before = time.time_ns() // 1_000_000
    response = send({"action": "heartbeat"}, plain_connection(), "heartbeat")
    assert response["statusCode"] == 200
    body = body_of(response)
    assert body["type"] == "heartbeatAck"
    assert before <= body["timestamp"] <= time.time_ns() // 1_000_000


def test_unexpected_exception_is_internal_error_without_details(tables, monkeypatch):
    # Given a repository that fails unexpectedly
    tables.put_session(sessionId="golden-eagle-427")

    def explode(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(SessionsRepository, "get", explode)
    event = message_event(
        {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"},
        connection_id=plain_connection(),
        route_key="joinSession",
    )
    # When a message reaches it
    response = message.handler(event, None)
    # Then the client gets 500 INTERNAL_ERROR with a correlation id and no internals
    assert response["statusCode"] == 500
    body = body_of(response)
    assert body["code"] == "INTERNAL_ERROR"
    assert "Traceback" not in response["body"]
    assert "boom" not in response["body"]
    assert "RuntimeError" not in response["body"]
    assert event["requestContext"]["requestId"] in body["message"]


@pytest.mark.parametrize(
    "frame",
    ['{"action":"joinSession","action":"heartbeat"}', '{"action":"heartbeat","x":{"a":1,"a":2}}'],
)
def test_a_frame_that_repeats_a_key_is_refused_as_ambiguous(tables, frame):
    # Given a plain connection
    connection_id = new_connection_id()
    assert connect.handler(connect_event(None, connection_id=connection_id), None)["statusCode"] == 200
    # When it sends a frame naming a key twice (at any depth)
    reply = body_of(send(frame, connection_id))
    # Then it is refused as an invalid message, not read one way or the other
    assert (reply["type"], reply["code"]) == ("error", "INVALID_MESSAGE")
    assert "repeat" in reply["message"]


def test_an_error_names_the_action_it_refuses_when_it_answers_a_message(tables) -> None:
    connection = flows.plain()
    # A message route's refusal names its route, the original app's names included
    refused = body_of(
        flows.send({"action": "joinSession", "sessionId": "no-such-101", "targetLanguage": "es"}, connection)
    )
    assert (refused["code"], refused["action"]) == ("SESSION_NOT_FOUND", "joinSession")
    assert body_of(flows.send({"action": "switchLanguage", "targetLanguage": "xx-nope"}, connection))["action"] == (
        "switchLanguage"
    )
    # A frame naming no action the service routes (API Gateway sends it to $default), and a refused handshake,
    # name none
    for unrouted in ("not json", {"action": "dance"}, {"type": "joinSession"}):
        assert "action" not in body_of(flows.send(unrouted, connection, "$default")), unrouted
    _, handshake = flows.connect_with({"action": "joinSession", "sessionId": "x", "targetLanguage": "es"})
    assert handshake["statusCode"] == 400 and "action" not in body_of(handshake)
