"""``$connect``: sessions created and joined straight from the query string (moto-backed tables)."""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal

import pytest

from lambda_src import runtime
from lambda_src.adapters.repositories.sessions import SessionsRepository
from lambda_src.app import connections
from lambda_src.contract import limits, schema
from lambda_src.handlers import connect
from tests.support.helpers import SESSION_CREATED_KEYS, SESSION_JOINED_KEYS, body_of, connect_event, new_connection_id

SEED_QUERY = {
    "action": "createSession",
    "sourceLanguage": "en",
    "qualityTier": "standard",
    "partialResults": "true",
    "minStability": "0.85",
    "maxBufferTimeout": "5.0",
    "token": "JWT",
}
SESSION_ATTRIBUTES = {
    "sessionId": "S",
    "speakerConnectionId": "S",
    "speakerUserId": "S",
    "sourceLanguage": "S",
    "qualityTier": "S",
    "createdAt": "N",
    "isActive": "BOOL",
    "listenerCount": "N",
    "expiresAt": "N",
    "partialResultsEnabled": "BOOL",
    "minStabilityThreshold": "N",
    "maxBufferTimeout": "N",
    # Beyond the contract's schema: the key of the sweeper's sparse index of active sessions (= expiresAt).
    "sweepAt": "N",
}
# As stored on the row: the welcome function adds listenerCount when it delivers it.
STORED_SESSION_JOINED_KEYS = SESSION_JOINED_KEYS - {"listenerCount"}


def call(event):
    return connect.handler(event, None)


def assert_nothing_written(tables, sessions_before=0):
    assert len(tables.raw_sessions()) == sessions_before
    assert tables.raw_connections() == []


# --- createSession -------------------------------------------------------------------------------------


def test_seed_query_creates_exactly_one_session_with_the_contract_schema(tables):
    # Given the seed's documented query string and a token the authorizer accepted
    connection_id = new_connection_id()
    before_ms = time.time_ns() // 1_000_000
    # When the client connects
    response = call(connect_event(SEED_QUERY, connection_id=connection_id, user_id="user-42"))
    after_ms = time.time_ns() // 1_000_000
    # Then the handshake is accepted
    assert response["statusCode"] == 200
    # And exactly one Sessions item exists, with exactly the contract's attributes and types
    raw_items = tables.raw_sessions()
    assert len(raw_items) == 1
    raw = raw_items[0]
    assert {name: next(iter(value)) for name, value in raw.items()} == SESSION_ATTRIBUTES
    assert raw["minStabilityThreshold"] == {"N": "0.85"}
    assert raw["sweepAt"] == raw["expiresAt"]
    assert Decimal(raw["maxBufferTimeout"]["N"]) == Decimal("5.0")
    item = tables.sessions_items()[0]
    assert item["minStabilityThreshold"] == Decimal("0.85")
    assert item["maxBufferTimeout"] == Decimal("5.0")
    assert item["partialResultsEnabled"] is True
    assert item["isActive"] is True
    assert item["listenerCount"] == 0
    assert item["speakerUserId"] == "user-42"
    assert item["speakerConnectionId"] == connection_id
    assert item["sourceLanguage"] == "en"
    assert item["qualityTier"] == "standard"
    # createdAt in milliseconds, expiresAt (TTL) in epoch seconds three hours later
    assert before_ms <= item["createdAt"] <= after_ms
    assert abs(int(item["expiresAt"]) - (before_ms // 1000 + 3 * 3600)) <= 5
    assert item["expiresAt"] < 10**11  # seconds, not milliseconds


def test_seed_query_writes_the_speaker_row_carrying_session_created(tables):
    # Given the seed's query string from an authenticated speaker
    connection_id = new_connection_id()
    # When the client connects
    assert call(connect_event(SEED_QUERY, connection_id=connection_id, user_id="user-42"))["statusCode"] == 200
    session_id = tables.sessions_items()[0]["sessionId"]
    # Then the speaker's connection row links it to the session
    row = tables.connection(connection_id)
    assert row is not None
    assert row["role"] == "speaker"
    assert row["sessionId"] == session_id
    assert row["userId"] == "user-42"
    assert "targetLanguage" not in row  # speakers stay out of the listeners index
    # And carries the sessionCreated message, in the seed's exact shape, for delivery after the handshake
    welcome = json.loads(row["welcome"])
    assert set(welcome) == SESSION_CREATED_KEYS
    assert welcome["type"] == "sessionCreated"
    assert welcome["sessionId"] == session_id
    assert welcome["sourceLanguage"] == "en"
    assert welcome["qualityTier"] == "standard"
    assert welcome["partialResultsEnabled"] is True
    assert welcome["minStabilityThreshold"] == 0.85
    assert welcome["maxBufferTimeout"] == 5.0
    assert welcome["connectionId"] == connection_id
    assert isinstance(welcome["timestamp"], int) and welcome["timestamp"] > 10**12  # milliseconds
    # Numbers are JSON numbers (0.85, 5.0), not strings
    assert '"minStabilityThreshold":0.85' in row["welcome"].replace(" ", "")
    assert '"maxBufferTimeout":5.0' in row["welcome"].replace(" ", "")


def test_create_with_custom_configuration_is_stored_exactly(tables):
    query = {
        **SEED_QUERY,
        "qualityTier": "premium",
        "partialResults": "FALSE",
        "minStability": "0.7",
        "maxBufferTimeout": "10",
    }
    assert call(connect_event(query, user_id="u"))["statusCode"] == 200
    item = tables.sessions_items()[0]
    assert item["qualityTier"] == "premium"
    assert item["partialResultsEnabled"] is False
    assert item["minStabilityThreshold"] == Decimal("0.7")
    assert item["maxBufferTimeout"] == Decimal("10")


def test_create_uses_defaults_for_absent_configuration(tables):
    assert call(connect_event({"action": "createSession", "sourceLanguage": "de"}, user_id="u"))["statusCode"] == 200
    item = tables.sessions_items()[0]
    assert (item["partialResultsEnabled"], item["minStabilityThreshold"], item["maxBufferTimeout"]) == (
        True,
        Decimal("0.85"),
        Decimal("5.0"),
    )
    assert item["qualityTier"] == "standard"


def test_session_lifetime_comes_from_the_environment(tables, monkeypatch):
    monkeypatch.setenv("SESSION_LIFETIME_HOURS", "1")
    runtime.reset()
    now_s = int(time.time())
    assert call(connect_event(SEED_QUERY, user_id="u"))["statusCode"] == 200
    assert abs(int(tables.sessions_items()[0]["expiresAt"]) - (now_s + 3600)) <= 5


@pytest.mark.parametrize("authorizer", [None, {}, {"userId": ""}, {"userId": None}], ids=repr)
def test_create_without_a_speaker_identity_is_refused_and_writes_nothing(tables, authorizer):
    # Given the seed's query string but no user id from the authorizer
    event = connect_event(SEED_QUERY)
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    # When the client connects
    response = call(event)
    # Then the handshake is refused with 401 UNAUTHORIZED
    assert response["statusCode"] == 401
    assert body_of(response)["code"] == "UNAUTHORIZED"
    assert body_of(response)["type"] == "error"
    # And nothing is written to either table
    assert_nothing_written(tables)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("minStability", "0.69"),
        ("minStability", "0.951"),
        ("minStability", "0.96"),
        ("minStability", "NaN"),
        ("minStability", "Infinity"),
        ("minStability", ""),
        ("minStability", "0x1"),
        ("minStability", "1e999999"),
        ("minStability", "abc"),
        ("maxBufferTimeout", "1.99"),
        ("maxBufferTimeout", "10.01"),
        ("maxBufferTimeout", "-inf"),
        ("maxBufferTimeout", " 5"),
        ("partialResults", "yes"),
        ("partialResults", "1"),
        ("partialResults", ""),
        ("minStability", "9" * 300),
    ],
)
def test_invalid_configuration_refuses_the_handshake_and_writes_nothing(tables, field, value):
    # Given the seed's query string with one bad partial-result parameter
    response = call(connect_event({**SEED_QUERY, field: value}, user_id="user-42"))
    # Then the handshake is refused with 400 INVALID_CONFIGURATION naming the field
    assert response["statusCode"] == 400
    body = body_of(response)
    assert body["code"] == "INVALID_CONFIGURATION"
    assert body["field"] == field
    assert field in body["message"]
    assert isinstance(body["timestamp"], int)
    # And nothing is written
    assert_nothing_written(tables)


def test_out_of_range_message_is_the_contracts(tables):
    response = call(connect_event({**SEED_QUERY, "minStability": "0.99"}, user_id="u"))
    assert body_of(response)["message"] == "minStability must be between 0.70 and 0.95, got 0.99"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sourceLanguage", "xx"),
        ("sourceLanguage", "EN"),
        ("qualityTier", "gold"),
        ("qualityTier", "Standard"),
        ("sourceLanguage", "e" * 257),
    ],
)
def test_invalid_parameters_refuse_the_handshake_and_write_nothing(tables, field, value):
    response = call(connect_event({**SEED_QUERY, field: value}, user_id="u"))
    assert response["statusCode"] == 400
    assert body_of(response)["code"] == "INVALID_PARAMETERS"
    assert body_of(response)["field"] == field
    assert_nothing_written(tables)


def test_missing_source_language_is_refused(tables):
    query = {key: value for key, value in SEED_QUERY.items() if key != "sourceLanguage"}
    response = call(connect_event(query, user_id="u"))
    assert response["statusCode"] == 400
    assert body_of(response)["field"] == "sourceLanguage"
    assert_nothing_written(tables)


@pytest.mark.parametrize("action", ["nope", "CreateSession", "", "heartbeat"])
def test_unknown_action_refuses_the_handshake(tables, action):
    response = call(connect_event({**SEED_QUERY, "action": action}, user_id="u"))
    assert response["statusCode"] == 400
    assert body_of(response)["code"] == "UNKNOWN_ACTION"
    assert body_of(response)["field"] == "action"
    assert_nothing_written(tables)


def _fake_jwt() -> str:
    """A token shaped like a Cognito RS256 JWT (its signature alone is 342 characters)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"kid": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG=", "alg": "RS256"}).encode())
    claims = {
        "sub": "3f1c1f5e-1111-2222-3333-444455556666",
        "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEfGhI",
        "client_id": "1example23456789abcdefghij",
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": 1700000000,
        "exp": 1700003600,
        "iat": 1700000000,
        "jti": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "username": "speaker@example.com",
    }
    return ".".join([header, part(json.dumps(claims).encode()), part(b"\x01" * 256)])


def test_seed_query_with_a_real_length_jwt_is_accepted(tables):
    # Given the seed's query string carrying a token of a real JWT's length (the authorizer accepted it)
    token = _fake_jwt()
    assert len(token) > limits.MAX_FIELD_LENGTH
    # When the client connects
    response = call(connect_event({**SEED_QUERY, "token": token}, user_id="user-42"))
    # Then the session is created
    assert response["statusCode"] == 200, response
    assert len(tables.raw_sessions()) == 1


def test_an_absurdly_long_token_is_refused_before_parsing(tables):
    # Given a token over the token size bound (the one query value allowed past 256 characters)
    response = call(connect_event({**SEED_QUERY, "token": "a" * (limits.MAX_TOKEN_LENGTH + 1)}, user_id="u"))
    # Then the handshake is refused, naming the field, and nothing is written
    assert response["statusCode"] == 400
    assert body_of(response)["code"] == "INVALID_PARAMETERS"
    assert body_of(response)["field"] == "token"
    assert_nothing_written(tables)


def test_over_precise_min_stability_is_not_an_internal_error(tables):
    response = call(connect_event({**SEED_QUERY, "minStability": "0.85" + "0" * 40}, user_id="u"))
    assert response["statusCode"] in (200, 400), response
    if response["statusCode"] == 400:
        assert body_of(response)["code"] == "INVALID_CONFIGURATION"
        assert_nothing_written(tables)


# --- session id collisions -------------------------------------------------------------------------


def test_session_id_collision_is_retried_with_a_fresh_id(tables, monkeypatch):
    # Given a live session holding the id the generator draws first
    existing = tables.put_session(sessionId="golden-eagle-427", speakerUserId="owner", listenerCount=3)
    before = tables.raw_sessions()[0]
    draws = iter(["golden-eagle-427", "brave-otter-321"])
    monkeypatch.setattr(connections, "new_session_id", lambda _vocabulary: next(draws))
    connection_id = new_connection_id()
    # When a speaker creates a session
    response = call(connect_event(SEED_QUERY, connection_id=connection_id, user_id="user-42"))
    # Then the second id is used
    assert response["statusCode"] == 200
    fresh = tables.session("brave-otter-321")
    assert fresh is not None and fresh["speakerUserId"] == "user-42"
    row = tables.connection(connection_id)
    assert row["sessionId"] == "brave-otter-321"
    assert json.loads(row["welcome"])["sessionId"] == "brave-otter-321"
    # And the existing session is untouched
    assert (
        tables.client.get_item(TableName=tables.sessions, Key={"sessionId": {"S": "golden-eagle-427"}})["Item"]
        == before
    )
    assert existing["speakerUserId"] == "owner"
    assert len(tables.raw_sessions()) == 2


def test_every_attempt_colliding_is_service_unavailable_and_writes_nothing(tables, monkeypatch):
    # Given a live session whose id the generator always draws
    tables.put_session(sessionId="golden-eagle-427")
    before = tables.raw_sessions()
    calls = []

    def new_session_id(_vocabulary):
        calls.append(1)
        return "golden-eagle-427"

    monkeypatch.setattr(connections, "new_session_id", new_session_id)
    # When a speaker creates a session
    response = call(connect_event(SEED_QUERY, user_id="user-42"))
    # Then the handshake is refused 503 SERVICE_UNAVAILABLE with retryAfter, after a bounded number of draws
    assert response["statusCode"] == 503
    body = body_of(response)
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert isinstance(body["retryAfter"], int) and body["retryAfter"] > 0
    assert len(calls) == limits.SESSION_ID_ATTEMPTS
    # And nothing is written
    assert tables.raw_sessions() == before
    assert tables.raw_connections() == []


def test_an_expired_session_id_may_be_reused(tables, monkeypatch):
    # Given an expired session that TTL has not deleted yet
    tables.put_session(sessionId="golden-eagle-427", expiresAt=int(time.time()) - 10, speakerUserId="old")
    monkeypatch.setattr(connections, "new_session_id", lambda _vocabulary: "golden-eagle-427")
    # When a speaker creates a session and draws that id
    response = call(connect_event(SEED_QUERY, user_id="new"))
    # Then the id is reused by the new live session
    assert response["statusCode"] == 200
    item = tables.session("golden-eagle-427")
    assert item["speakerUserId"] == "new"
    assert item["expiresAt"] > time.time()


def test_an_expired_session_id_with_listeners_still_attached_is_not_reused(tables, monkeypatch):
    # (Regression: the new session replaced the expired item, and its listeners silently became listeners
    # of the new session, whose count then drifted from its rows.)
    # Given a session with a listener, which then expired (TTL has not deleted it yet; the listener is still
    # attached and counted)
    tables.put_session(sessionId="golden-eagle-427", speakerUserId="old")
    listener = new_connection_id()
    joining = {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}
    assert call(connect_event(joining, connection_id=listener))["statusCode"] == 200
    tables.client.update_item(
        TableName=tables.sessions,
        Key={"sessionId": {"S": "golden-eagle-427"}},
        UpdateExpression="SET expiresAt = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 10)}},
    )
    before = tables.session("golden-eagle-427")
    # When a speaker creates a session and the generator draws that id first
    draws = iter(["golden-eagle-427", "brave-otter-321"])
    monkeypatch.setattr(connections, "new_session_id", lambda _vocabulary: next(draws))
    connection_id = new_connection_id()
    response = call(connect_event(SEED_QUERY, connection_id=connection_id, user_id="new"))
    # Then the new session gets another id, and the expired one (with its listener) is left as it was
    assert response["statusCode"] == 200
    assert tables.connection(connection_id)["sessionId"] == "brave-otter-321"
    assert tables.session("brave-otter-321")["speakerUserId"] == "new"
    assert tables.session("golden-eagle-427") == before
    assert before["listenerCount"] == 1 and tables.connection(listener)["sessionId"] == "golden-eagle-427"


def test_a_connection_id_already_registered_cannot_create(tables):
    # Given a connection id that already has a row (a duplicate $connect delivery)
    connection_id = new_connection_id()
    assert call(connect_event(SEED_QUERY, connection_id=connection_id, user_id="u"))["statusCode"] == 200
    # When the same connection id connects with createSession again
    response = call(connect_event(SEED_QUERY, connection_id=connection_id, user_id="u"))
    # Then it is refused and no second session is written
    assert response["statusCode"] >= 400
    assert len(tables.raw_sessions()) == 1


# --- joinSession -------------------------------------------------------------------------------------


def test_join_from_the_query_string(tables):
    # Given a live session
    tables.put_session(sessionId="golden-eagle-427", sourceLanguage="en", listenerCount=0)
    connection_id = new_connection_id()
    # When a listener connects with joinSession
    response = call(
        connect_event(
            {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"},
            connection_id=connection_id,
        )
    )
    # Then the handshake is accepted and the count rises by one
    assert response["statusCode"] == 200
    assert tables.session("golden-eagle-427")["listenerCount"] == 1
    # And the listener row carries the sessionJoined message
    row = tables.connection(connection_id)
    assert row["role"] == "listener"
    assert row["sessionId"] == "golden-eagle-427"
    assert row["targetLanguage"] == "es"
    welcome = json.loads(row["welcome"])
    assert set(welcome) == STORED_SESSION_JOINED_KEYS
    assert welcome == {
        "type": "sessionJoined",
        "sessionId": "golden-eagle-427",
        "sourceLanguage": "en",
        "targetLanguage": "es",
        "qualityTier": "standard",
        "connectionId": connection_id,
        "timestamp": welcome["timestamp"],
    }
    # And downstream finds the listener through the index
    found = tables.client.query(
        TableName=tables.connections,
        IndexName=schema.CONNECTIONS_BY_SESSION_INDEX,
        KeyConditionExpression="sessionId = :s AND targetLanguage = :l",
        ExpressionAttributeValues={":s": {"S": "golden-eagle-427"}, ":l": {"S": "es"}},
    )["Items"]
    assert [item["connectionId"]["S"] for item in found] == [connection_id]


def test_join_unknown_session_is_not_found(tables):
    response = call(connect_event({"action": "joinSession", "sessionId": "brave-otter-321", "targetLanguage": "es"}))
    assert response["statusCode"] == 404
    assert body_of(response)["code"] == "SESSION_NOT_FOUND"
    assert_nothing_written(tables)


def test_join_expired_session_is_not_found(tables):
    tables.put_session(sessionId="golden-eagle-427", expiresAt=int(time.time()) - 1)
    response = call(connect_event({"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}))
    assert response["statusCode"] == 404
    assert body_of(response)["code"] == "SESSION_NOT_FOUND"
    assert tables.session("golden-eagle-427")["listenerCount"] == 0
    assert tables.raw_connections() == []


def test_join_full_session_is_refused(tables, monkeypatch):
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", "2")
    runtime.reset()
    tables.put_session(sessionId="golden-eagle-427", listenerCount=2)
    response = call(connect_event({"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}))
    assert response["statusCode"] == 503
    assert body_of(response)["code"] == "SESSION_FULL"
    assert tables.session("golden-eagle-427")["listenerCount"] == 2
    assert tables.raw_connections() == []


def test_join_ended_session_is_gone(tables):
    tables.put_session(sessionId="golden-eagle-427", isActive=False)
    response = call(connect_event({"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}))
    assert response["statusCode"] == 410
    assert body_of(response)["code"] == "SESSION_ENDED"
    assert tables.raw_connections() == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"sessionId": "Golden-Eagle-427", "targetLanguage": "es"}, "sessionId"),
        ({"targetLanguage": "es"}, "sessionId"),
        ({"sessionId": "golden-eagle-427", "targetLanguage": "xx"}, "targetLanguage"),
        ({"sessionId": "golden-eagle-427"}, "targetLanguage"),
    ],
)
def test_join_with_invalid_parameters_is_refused(tables, query, field):
    tables.put_session(sessionId="golden-eagle-427")
    response = call(connect_event({"action": "joinSession", **query}))
    assert response["statusCode"] == 400
    assert body_of(response)["code"] == "INVALID_PARAMETERS"
    assert body_of(response)["field"] == field
    assert tables.session("golden-eagle-427")["listenerCount"] == 0
    assert tables.raw_connections() == []


# --- plain connections and failures ----------------------------------------------------------------


def test_plain_connection_registers_a_row(tables):
    connection_id = new_connection_id()
    response = call(connect_event(None, connection_id=connection_id, user_id="user-9"))
    assert response["statusCode"] == 200
    row = tables.connection(connection_id)
    assert row["role"] == "none"
    assert row["userId"] == "user-9"
    assert "sessionId" not in row and "welcome" not in row
    assert tables.raw_sessions() == []


def test_unexpected_exception_is_internal_error_without_details(tables, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(SessionsRepository, "create_item", explode)
    event = connect_event(SEED_QUERY, user_id="u")
    response = call(event)
    assert response["statusCode"] == 500
    body = body_of(response)
    assert body["code"] == "INTERNAL_ERROR"
    assert "Traceback" not in response["body"] and "boom" not in response["body"]
    assert event["requestContext"]["requestId"] in body["message"]  # the correlation id to quote
    assert tables.raw_sessions() == []
