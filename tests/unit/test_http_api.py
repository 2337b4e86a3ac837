"""The HTTP session API's handler, with API Gateway's payload-format-2.0 events (decision record 37).

``POST /sessions`` is ``createSession``'s creation with no connection: the session starts with its speaker away,
its window open, so the owner's socket by session id takes it over as a resume does, and the sweeper ends it when
nobody came. ``GET``, ``PATCH`` and ``DELETE /sessions/{sessionId}`` read it, change its settings and end it as its
owner; ``GET /health`` answers without a token. Errors are the catalogue's, without ``type``, with the code's status.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
import webvtt

from lambda_src import runtime
from lambda_src.app import sessions_http
from lambda_src.contract import function_settings, http_api, limits
from lambda_src.handlers import http_api as handler_module
from lambda_src.handlers import sweeper
from tests.support.helpers import body_of, http_event
from tests.unit.flows import OWNER, Clock, connect_with, create_session, deliver_disconnects, error_of, join, send
from tests.unit.test_transcripts import spoken_session

OTHER = "user-2"
CREATE = {"sourceLanguage": "en", "qualityTier": "standard"}
GRACE = limits.DEFAULT_SPEAKER_GRACE_SECONDS
UNKNOWN = "golden-eagle-427"  # well formed; no test creates it (created sessions draw their ids)
METADATA_KEYS = {
    "sessionId",
    "speakerId",
    "sourceLanguage",
    "qualityTier",
    "status",
    "listenerCount",
    "createdAt",
    "updatedAt",
    "partialResultsEnabled",
    "minStabilityThreshold",
    "maxBufferTimeout",
}


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock.install(monkeypatch)


def call(route: http_api.HttpRoute, body=None, *, user_id: str | None = OWNER, session_id=None, **kwargs) -> dict:
    """The handler's answer to one request on ``route``."""
    return handler_module.handler(http_event(route.key, body, user_id=user_id, session_id=session_id, **kwargs), None)


def created(body=None, user_id: str = OWNER) -> dict:
    """``POST /sessions``'s SessionMetadata (it must answer 201)."""
    response = call(http_api.CREATE_SESSION, CREATE if body is None else body, user_id=user_id)
    assert response["statusCode"] == 201, response
    return body_of(response)


def refusal(response: dict) -> tuple[int, str, str | None]:
    """(status, code, field) of an error answer, checking its one shape: the catalogue error without ``type``."""
    body = body_of(response)
    assert "type" not in body and "timestamp" not in body, body
    assert isinstance(body["message"], str) and body["message"], body
    assert response["headers"]["content-type"] == "application/json"
    return response["statusCode"], body["code"], body.get("field")


def speakers_socket(session_id: str, user_id: str = OWNER) -> tuple[str, dict]:
    """The speaker app's URL: ``?token&sessionId``, no action."""
    return connect_with({"sessionId": session_id, "token": "id-token"}, user_id=user_id)


def run_sweeper() -> dict:
    return sweeper.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)


# --- POST /sessions ---------------------------------------------------------------------------------


def test_a_created_session_answers_201_with_its_metadata_its_speaker_away(tables, clock):
    # When the speaker app creates its session over HTTP
    metadata = created()

    # Then it gets the session's metadata: active, owned by the token's user, nobody listening yet
    assert set(metadata) == METADATA_KEYS
    assert metadata["speakerId"] == OWNER
    assert (metadata["sourceLanguage"], metadata["qualityTier"], metadata["status"]) == ("en", "standard", "active")
    assert metadata["listenerCount"] == 0
    assert metadata["createdAt"] == metadata["updatedAt"] == clock.now_ms
    assert metadata["partialResultsEnabled"] is limits.DEFAULT_PARTIAL_RESULTS_ENABLED
    # And the session is stored with no speaker connection, its speaker's window open (the sweeper's due time)
    item = tables.session(metadata["sessionId"])
    assert item is not None and item["isActive"] is True
    assert "speakerConnectionId" not in item
    assert item["speakerUserId"] == OWNER
    assert item["speakerGraceEndsAt"] == item["sweepAt"] == clock.now_s + GRACE


def test_a_created_session_keeps_the_partial_result_settings_it_was_given(tables, clock):
    # When the speaker app sends partial-result settings with the creation
    metadata = created({**CREATE, "partialResults": False, "minStability": 0.9, "maxBufferTimeout": 3})

    # Then the session has them, as createSession would set them
    assert metadata["partialResultsEnabled"] is False
    assert metadata["minStabilityThreshold"] == 0.9
    assert metadata["maxBufferTimeout"] == 3
    item = tables.session(metadata["sessionId"])
    assert item["partialResultsEnabled"] is False


def test_a_base64_body_is_read_as_its_text(tables, clock):
    # When API Gateway passes the body base64-encoded
    response = call(http_api.CREATE_SESSION, CREATE, base64_body=True)

    # Then it is read as the JSON it encodes
    assert response["statusCode"] == 201
    assert body_of(response)["sourceLanguage"] == "en"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", (400, "INVALID_MESSAGE", None)),
        ("[1, 2]", (400, "INVALID_MESSAGE", None)),
        (None, (400, "INVALID_MESSAGE", None)),
        ({**CREATE, "targetLanguage": "es"}, (400, "INVALID_PARAMETERS", "targetLanguage")),
        ({**CREATE, "partialResult": True}, (400, "INVALID_PARAMETERS", "partialResult")),
        ({"sourceLanguage": 5}, (400, "INVALID_PARAMETERS", "sourceLanguage")),
        ({"sourceLanguage": "en", "qualityTier": "gold"}, (400, "INVALID_PARAMETERS", "qualityTier")),
        ({"qualityTier": "standard"}, (400, "INVALID_PARAMETERS", "sourceLanguage")),
        ({**CREATE, "minStability": "high"}, (400, "INVALID_CONFIGURATION", "minStability")),
        ({**CREATE, "maxBufferTimeout": 99}, (400, "INVALID_CONFIGURATION", "maxBufferTimeout")),
    ],
)
def test_a_bad_creation_is_refused_400_naming_the_field_and_writes_nothing(tables, clock, body, expected):
    # When the body is not JSON, holds a field creation does not take, or a value of the wrong type or range
    response = call(http_api.CREATE_SESSION, body)

    # Then it is refused with 400 naming the field, and nothing is written
    assert refusal(response) == expected
    assert tables.sessions_items() == []
    assert tables.raw_rate_limits() == []


def test_a_request_without_the_authorizers_claims_is_refused_401_and_writes_nothing(tables, clock):
    # When a request reaches a guarded route without a verified token's claims (a route left unguarded by mistake)
    for route in (http_api.CREATE_SESSION, http_api.GET_SESSION, http_api.UPDATE_SESSION, http_api.DELETE_SESSION):
        response = call(route, CREATE, user_id=None, session_id="golden-eagle-427")

        # Then it is refused 401, never served anonymously
        assert refusal(response) == (401, "UNAUTHORIZED", None), route.key
    assert tables.sessions_items() == []


def test_http_and_websocket_creations_share_the_active_session_limit(tables, gateway, clock, monkeypatch):
    # Given a speaker allowed one active session, which it created over HTTP
    monkeypatch.setenv(function_settings.ENV_MAX_ACTIVE_SESSIONS_PER_SPEAKER, "1")
    runtime.reset()
    first = created()["sessionId"]

    # When it creates another, over HTTP or over the WebSocket
    over_http = call(http_api.CREATE_SESSION, CREATE)
    _connection, over_websocket = connect_with({"action": "createSession", "sourceLanguage": "en"}, user_id=OWNER)

    # Then both are refused with the live session to resume, over HTTP in the HTTP error shape
    assert refusal(over_http) == (409, "ACTIVE_SESSION_LIMIT", None)
    assert body_of(over_http)["activeSessions"] == [first]
    assert error_of(over_websocket) == (409, "ACTIVE_SESSION_LIMIT")
    # And another speaker is not held by it
    created(user_id=OTHER)


def test_http_creations_count_against_the_speakers_creation_rate(tables, gateway, clock, monkeypatch):
    # Given a speaker allowed one creation an hour, spent over the WebSocket
    monkeypatch.setenv("SESSIONS_PER_USER_PER_HOUR", "1")
    runtime.reset()
    create_session(OWNER)

    # When it creates one over HTTP
    response = call(http_api.CREATE_SESSION, CREATE)

    # Then it is refused 429 with when to retry
    assert refusal(response) == (429, "RATE_LIMIT_EXCEEDED", None)
    assert body_of(response)["retryAfter"] > 0


# --- the owner's socket and the sweeper -------------------------------------------------------------


def test_an_http_created_session_is_taken_over_by_the_owners_socket(tables, gateway, clock):
    # Given a session created over HTTP, and a listener who joined before the speaker arrived
    session_id = created()["sessionId"]
    listener = join(session_id, "es")

    # When the speaker app opens its socket with the session id
    clock.advance(5)
    speaker, response = speakers_socket(session_id)

    # Then the connection is the session's speaker, its window closed and its lifetime counted from now
    assert response["statusCode"] == 200
    item = tables.session(session_id)
    assert item["speakerConnectionId"] == speaker
    assert "speakerGraceEndsAt" not in item
    assert item["sweepAt"] == item["expiresAt"] > clock.now_s + GRACE
    # And the listener heard that the speaker is there
    assert [message["type"] for message in gateway.messages_to(listener)] == ["speakerReconnected"]
    # And the speaker's controls work on it
    status = body_of(send({"action": "getSessionStatus", "sessionId": session_id}, speaker))
    assert status["type"] == "sessionStatus" and status["listenerCount"] == 1
    # And the metadata says when the speaker came
    metadata = body_of(call(http_api.GET_SESSION, session_id=session_id))
    assert metadata["updatedAt"] == clock.now_ms > metadata["createdAt"]


def test_another_users_socket_cannot_take_an_http_created_session(tables, gateway, clock):
    # Given a session created over HTTP
    session_id = created()["sessionId"]

    # When another user opens the speaker app's URL with its id
    _connection, response = speakers_socket(session_id, user_id=OTHER)

    # Then it is refused and the session still waits for its owner
    assert error_of(response) == (403, "FORBIDDEN")
    assert "speakerConnectionId" not in tables.session(session_id)


def test_a_never_connected_session_is_ended_by_the_sweeper_after_the_window(tables, gateway, clock, monkeypatch):
    # Given a speaker allowed one active session, created over HTTP, whose socket never came
    monkeypatch.setenv(function_settings.ENV_MAX_ACTIVE_SESSIONS_PER_SPEAKER, "1")
    runtime.reset()
    session_id = created()["sessionId"]
    listener = join(session_id, "es")
    gateway.clear()

    # When the sweeper runs within the window, then after it
    clock.advance(GRACE - 1)
    within = run_sweeper()
    assert tables.session(session_id)["isActive"] is True
    clock.advance(2)
    after = run_sweeper()

    # Then it left it alone, then ended it for the speaker's timeout, telling and closing its listener
    assert within == {"ended": 0} and after == {"ended": 1}
    item = tables.session(session_id)
    assert item["isActive"] is False and item["endReason"] == "speakerTimeout"
    assert [message["type"] for message in gateway.messages_to(listener)] == ["sessionEnded"]
    assert gateway.closed() == [listener]
    # And its place under the active-session limit is free again
    created()
    # And its metadata says ended
    assert body_of(call(http_api.GET_SESSION, session_id=session_id))["status"] == "ended"


# --- GET /sessions/{sessionId} ----------------------------------------------------------------------


def test_get_answers_the_sessions_metadata_and_404_for_none(tables, gateway, clock):
    # Given a session created over HTTP with a listener
    metadata = created()
    join(metadata["sessionId"], "es")

    # When it is read, by its owner or another signed-in user
    mine = call(http_api.GET_SESSION, session_id=metadata["sessionId"])
    theirs = call(http_api.GET_SESSION, session_id=metadata["sessionId"], user_id=OTHER)

    # Then both see its public status, the listener counted
    assert mine["statusCode"] == theirs["statusCode"] == 200
    assert body_of(mine) == body_of(theirs) == {**metadata, "listenerCount": 1}
    # And an unknown or malformed id is answered 404 / 400
    assert refusal(call(http_api.GET_SESSION, session_id=UNKNOWN)) == (
        404,
        "SESSION_NOT_FOUND",
        "sessionId",
    )
    assert refusal(call(http_api.GET_SESSION, session_id="../x"))[:2] == (400, "INVALID_PARAMETERS")


def test_a_paused_broadcast_reads_as_paused(tables, gateway, clock):
    # Given a session whose speaker paused its broadcast
    session_id, speaker = create_session(OWNER)
    assert body_of(send({"action": "pauseBroadcast", "sessionId": session_id}, speaker))["type"] == "broadcastState"

    # Then its metadata's status is paused
    assert body_of(call(http_api.GET_SESSION, session_id=session_id))["status"] == "paused"


# --- PATCH /sessions/{sessionId} --------------------------------------------------------------------


def test_the_owner_changes_the_settings_and_gets_the_session_as_it_now_is(tables, clock):
    # Given a session created over HTTP
    session_id = created()["sessionId"]

    # When its owner changes a partial-result setting
    response = call(http_api.UPDATE_SESSION, {"minStability": 0.7}, session_id=session_id)

    # Then it answers 200 with the session as it now is, and the session has it
    assert response["statusCode"] == 200
    assert body_of(response)["minStabilityThreshold"] == 0.7
    assert tables.session(session_id)["minStabilityThreshold"] == Decimal("0.7")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, (400, "INVALID_CONFIGURATION", None)),
        ({"minStability": 2}, (400, "INVALID_CONFIGURATION", "minStability")),
        ({"partialResults": "yes"}, (400, "INVALID_CONFIGURATION", "partialResults")),
        ({"sourceLanguage": "de"}, (400, "INVALID_PARAMETERS", "sourceLanguage")),
        ("{", (400, "INVALID_MESSAGE", None)),
    ],
)
def test_a_bad_update_is_refused_naming_the_field_and_changes_nothing(tables, clock, body, expected):
    # Given a session created over HTTP
    session_id = created()["sessionId"]
    before = tables.session(session_id)

    # When the update is empty, out of range, of the wrong type or names what cannot change
    response = call(http_api.UPDATE_SESSION, body, session_id=session_id)

    # Then it is refused naming the field, and the session is unchanged
    assert refusal(response) == expected
    assert tables.session(session_id) == before


def test_an_update_of_another_speakers_unknown_or_ended_session_is_refused(tables, gateway, clock):
    # Given a live session, and an ended one, of the owner
    live = created()["sessionId"]
    ended = created()["sessionId"]
    assert call(http_api.DELETE_SESSION, session_id=ended)["statusCode"] == 204
    before = tables.session(live)

    # When another user updates the live one, or the owner an unknown or the ended one
    # Then 403, 404 and 410, and nothing changed
    update = {"partialResults": False}
    assert refusal(call(http_api.UPDATE_SESSION, update, session_id=live, user_id=OTHER)) == (
        403,
        "FORBIDDEN",
        "sessionId",
    )
    assert tables.session(live) == before
    assert refusal(call(http_api.UPDATE_SESSION, update, session_id=UNKNOWN))[:2] == (
        404,
        "SESSION_NOT_FOUND",
    )
    assert refusal(call(http_api.UPDATE_SESSION, update, session_id=ended))[:2] == (410, "SESSION_ENDED")


# --- DELETE /sessions/{sessionId} -------------------------------------------------------------------


def test_the_owner_ends_its_session_listeners_told_and_disconnected(tables, gateway, clock, monkeypatch):
    # Given a speaker allowed one active session: created over HTTP, taken by its socket, with two listeners
    monkeypatch.setenv(function_settings.ENV_MAX_ACTIVE_SESSIONS_PER_SPEAKER, "1")
    runtime.reset()
    session_id = created()["sessionId"]
    speaker, _response = speakers_socket(session_id)
    listeners = [join(session_id, "es"), join(session_id, "de")]
    gateway.clear()

    # When the owner deletes it
    response = call(http_api.DELETE_SESSION, session_id=session_id)

    # Then it answers 204 without a body, and the session ended as endSession ends it
    assert response["statusCode"] == 204 and "body" not in response
    item = tables.session(session_id)
    assert item["isActive"] is False and item["endReason"] == "endedBySpeaker"
    # And every listener and the speaker were told, and the listeners closed
    ended = {"type": "sessionEnded", "sessionId": session_id, "reason": "endedBySpeaker", "timestamp": clock.now_ms}
    for connection in (*listeners, speaker):
        assert gateway.messages_to(connection) == [ended], connection
    assert sorted(gateway.closed()) == sorted(listeners)
    deliver_disconnects(gateway.closed())
    assert tables.session(session_id)["listenerCount"] == 0
    # And its place under the active-session limit is free
    created()


def test_deleting_is_safe_to_repeat_and_refused_for_another_speaker_or_an_unknown_session(tables, gateway, clock):
    # Given a session created over HTTP
    session_id = created()["sessionId"]

    # When another user deletes it, then an unknown one is deleted
    # Then 403 (the session stays live) and 404
    assert refusal(call(http_api.DELETE_SESSION, session_id=session_id, user_id=OTHER)) == (
        403,
        "FORBIDDEN",
        "sessionId",
    )
    assert tables.session(session_id)["isActive"] is True
    assert refusal(call(http_api.DELETE_SESSION, session_id=UNKNOWN))[:2] == (404, "SESSION_NOT_FOUND")
    # And the owner's delete, repeated (a retry after a lost answer), answers 204 both times
    assert call(http_api.DELETE_SESSION, session_id=session_id)["statusCode"] == 204
    assert call(http_api.DELETE_SESSION, session_id=session_id)["statusCode"] == 204
    assert tables.session(session_id)["isActive"] is False


# --- GET /health, and what no route may do ----------------------------------------------------------


def test_health_answers_without_a_token_and_reads_nothing(clock):
    # When the health check is called without a token (no tables exist here: nothing is read)
    response = call(http_api.HEALTH, user_id=None)

    # Then it answers 200 with its constant
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "ok"}


def test_an_unexpected_failure_is_answered_500_without_details(tables, clock, monkeypatch):
    # Given a use case that fails unexpectedly
    def broken(*_args: object) -> None:
        raise RuntimeError("table is on fire")

    monkeypatch.setattr(sessions_http, "read", broken)

    # When a request reaches it
    response = call(http_api.GET_SESSION, session_id="golden-eagle-427")

    # Then the answer is INTERNAL_ERROR in the one error shape, without the exception's text
    assert refusal(response)[:2] == (500, "INTERNAL_ERROR")
    assert "fire" not in json.dumps(body_of(response))


def test_every_route_of_the_contract_is_answered(tables, clock):
    # Given every route the stack declares
    # Then the handler answers each (none falls through to the unknown-route refusal)
    assert set(handler_module.ROUTES) == set(http_api.ROUTE_KEYS)
    unknown = handler_module.handler(http_event("PUT /sessions", CREATE, user_id=OWNER), None)
    assert refusal(unknown)[:2] == (400, "UNKNOWN_ACTION")


@pytest.mark.parametrize("body", ["not base64!", "//79"])
def test_a_base64_body_that_is_not_utf8_json_text_is_refused(tables, clock, body):
    # When API Gateway passes a body flagged base64 that does not decode to UTF-8 text
    event = http_event(http_api.CREATE_SESSION.key, user_id=OWNER)
    event.update(body=body, isBase64Encoded=True)
    response = handler_module.handler(event, None)

    # Then it is refused 400 and nothing is written
    assert refusal(response)[:2] == (400, "INVALID_MESSAGE")
    assert tables.sessions_items() == []


# --- GET / DELETE /sessions/{sessionId}/transcript -------------------------------------------------------------


def test_the_owner_downloads_its_transcript_as_a_document_to_save(tables, gateway, monkeypatch):
    # Given a session whose Spanish listener was captioned one final segment
    session_id = spoken_session()
    # When its owner asks for the Spanish WebVTT over HTTP
    response = call(
        http_api.GET_TRANSCRIPT, session_id=session_id, query={"language": "es", "format": "vtt"}, user_id=OWNER
    )
    # Then it is the document itself, to save under the session's and language's name
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "text/vtt; charset=utf-8"
    assert response["headers"]["content-disposition"] == f'attachment; filename="{session_id}.es.vtt"'
    assert [cue.text for cue in webvtt.from_buffer(io.StringIO(response["body"])).captions] == ["[es] Hello there."]


def test_a_transcript_request_is_refused_in_the_one_error_shape(tables, gateway, monkeypatch):
    session_id = spoken_session()
    bad_format = call(http_api.GET_TRANSCRIPT, session_id=session_id, query={"language": "es", "format": "pdf"})
    other = call(
        http_api.GET_TRANSCRIPT, session_id=session_id, query={"language": "es", "format": "vtt"}, user_id=OTHER
    )
    unknown = call(http_api.GET_TRANSCRIPT, session_id=UNKNOWN, query={"language": "es", "format": "vtt"})
    anonymous = call(http_api.DELETE_TRANSCRIPT, session_id=session_id, user_id=None)
    assert refusal(bad_format) == (400, "INVALID_PARAMETERS", "format")
    assert refusal(other) == (403, "FORBIDDEN", "sessionId")
    assert refusal(unknown) == (404, "SESSION_NOT_FOUND", "sessionId")
    assert refusal(anonymous)[:2] == (401, "UNAUTHORIZED")
    assert len(tables.transcripts_items()) == 1


def test_the_owner_deletes_its_transcript_at_once(tables, gateway, monkeypatch):
    session_id = spoken_session()
    # When another speaker tries, then the owner deletes it
    assert refusal(call(http_api.DELETE_TRANSCRIPT, session_id=session_id, user_id=OTHER))[:2] == (403, "FORBIDDEN")
    deleted = call(http_api.DELETE_TRANSCRIPT, session_id=session_id)
    # Then it answers 204 and nothing of it is left
    assert (deleted["statusCode"], deleted.get("body")) == (204, None)
    assert tables.transcripts_items() == []
    empty = call(http_api.GET_TRANSCRIPT, session_id=session_id, query={"language": "es", "format": "txt"})
    assert (empty["statusCode"], empty["body"]) == (200, "")
