"""The original apps' WebSocket URLs, which carry no ``action``.

The speaker app opens ``?token=…&sessionId=…`` once its session exists: from the session's owner that is its
speaker connection, taken over exactly as ``resumeSession`` takes it (decision 34), and refused as a resume is
refused. The listener app opens ``?token=…&sessionId=…&targetLanguage=…`` and then sends ``joinSession``: the URL
is a plain connection, the message joins, and the listener is counted once.
"""

from __future__ import annotations

import json
import time

import pytest

from lambda_src import runtime
from tests.support.helpers import body_of
from tests.unit.flows import (
    OWNER,
    SESSION_ID,
    Clock,
    connect_with,
    create_session,
    drop,
    error_of,
    join,
    send,
)

LISTENER_USER = "listener-user"  # the listener app logs in too: its URL carries a token


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock.install(monkeypatch)


def speakers_socket(session_id: str, user_id: str | None = OWNER) -> tuple[str, dict]:
    """The speaker app's URL: ``sessionId`` (and the token, read by the authorizer), no action."""
    return connect_with({"sessionId": session_id, "token": "id-token"}, user_id=user_id)


def first_messages(connection_id: str) -> list[dict]:
    """What the welcome function posts to a new connection, in order (from its row)."""
    row = runtime.connections().get(connection_id)
    assert row is not None and row.welcome is not None, row
    return [json.loads(message) for message in (row.welcome, *row.welcome_then)]


def test_the_owners_socket_by_session_id_becomes_the_speaker_of_a_session_whose_speaker_dropped(tables, gateway, clock):
    # Given a session whose speaker dropped, with a listener
    session_id, old = create_session(qualityTier="premium")
    listener = join(session_id, "es")
    drop(old)
    expires_at = tables.session(session_id)["expiresAt"]
    # When the owner opens the speaker app's URL, without an action
    clock.advance(10)
    new, response = speakers_socket(session_id)
    # Then the handshake is accepted and the connection is the session's speaker, its window closed
    assert response["statusCode"] == 200
    item = tables.session(session_id)
    assert item["speakerConnectionId"] == new
    assert "speakerGraceEndsAt" not in item
    assert item["expiresAt"] == expires_at + 10
    row = tables.connection(new)
    assert (row["role"], row["sessionId"], row["userId"]) == ("speaker", session_id, OWNER)
    # And its first messages are a resume's: sessionResumed, then stateRestored
    resumed, restored = first_messages(new)
    assert (resumed["type"], resumed["sessionId"], resumed["connectionId"]) == ("sessionResumed", session_id, new)
    assert resumed["qualityTier"] == "premium"
    assert (restored["type"], restored["sessionId"]) == ("stateRestored", session_id)
    # And the listener hears the speaker is back
    assert gateway.types_to(listener) == ["speakerDisconnected", "speakerReconnected"]


def test_the_owners_socket_controls_the_session(tables, gateway, clock):
    # Given the owner's socket opened by session id, and a listener
    session_id, old = create_session()
    listener = join(session_id, "de")
    drop(old)
    new, _ = speakers_socket(session_id)
    # When it sends the speaker app's controls
    paused = send({"action": "pauseBroadcast", "timestamp": clock.now_ms}, new)
    status = send({"action": "getSessionStatus"}, new)
    ended = send({"action": "endSession", "sessionId": session_id, "reason": "done"}, new)
    # Then each is answered as the speaker's (none is "this connection has no session")
    assert (paused["statusCode"], body_of(paused)["type"], body_of(paused)["isPaused"]) == (200, "broadcastState", True)
    assert (body_of(status)["type"], body_of(status)["listenerCount"]) == ("sessionStatus", 1)
    assert body_of(ended)["type"] == "sessionEnded"
    assert tables.session(session_id)["isActive"] is False
    assert gateway.types_to(listener)[-2:] == ["broadcastPaused", "sessionEnded"]


def test_the_owners_socket_takes_over_from_a_speaker_still_connected(tables, gateway, clock):
    # Given a session whose speaker is still connected, with a listener
    session_id, old = create_session()
    listener = join(session_id, "es")
    # When the owner opens the speaker app's URL on another socket
    new, response = speakers_socket(session_id)
    # Then the new socket is the speaker, and the listener is told nothing (the speaker never left)
    assert response["statusCode"] == 200
    assert tables.session(session_id)["speakerConnectionId"] == new
    assert gateway.messages_to(listener) == []
    # And the old socket, told nothing, may no longer act as the speaker
    assert gateway.messages_to(old) == []
    assert error_of(send({"action": "getSessionStatus"}, old)) == (403, "FORBIDDEN")
    # And its close is not a drop
    drop(old)
    item = tables.session(session_id)
    assert item["isActive"] is True and "speakerGraceEndsAt" not in item
    assert gateway.messages_to(listener) == []
    assert send({"action": "getSessionStatus"}, new)["statusCode"] == 200


@pytest.mark.parametrize(
    ("user_id", "overrides", "expected"),
    [
        ("user-2", {}, (403, "FORBIDDEN")),
        (None, {}, (401, "UNAUTHORIZED")),
        (OWNER, {"isActive": False, "endReason": "endedBySpeaker"}, (410, "SESSION_ENDED")),
        (OWNER, {"sessionId": "brave-otter-321"}, (404, "SESSION_NOT_FOUND")),
        (OWNER, {"expiresAt": int(time.time()) - 1}, (404, "SESSION_NOT_FOUND")),
    ],
    ids=["another-user", "no-token", "ended", "missing", "expired"],
)
def test_the_speakers_socket_from_anyone_but_the_owner_of_a_live_session_is_refused_and_writes_nothing(
    tables, gateway, user_id, overrides, expected
):
    # Given a session whose speaker dropped (window open), with a listener when it is live
    now_s = int(time.time())
    tables.put_session(
        **{
            "sessionId": SESSION_ID,
            "speakerConnectionId": "gone-speaker",
            "speakerUserId": OWNER,
            "speakerGraceEndsAt": now_s + 60,
            "sweepAt": now_s + 60,
            **overrides,
        }
    )
    listener = join() if not overrides else None
    sessions_before, connections_before = tables.raw_sessions(), tables.raw_connections()
    # When the speaker app's URL names it
    new, response = speakers_socket(SESSION_ID, user_id)
    # Then the handshake is refused as resumeSession refuses it
    assert error_of(response) == expected
    # And nothing is written and nobody is told
    assert tables.connection(new) is None
    assert tables.raw_sessions() == sessions_before
    assert tables.raw_connections() == connections_before
    if listener is not None:
        assert gateway.messages_to(listener) == []


def test_the_speakers_socket_without_a_token_says_it_needs_one(tables, gateway):
    # Given a live session, when its URL is opened without a token
    tables.put_session()
    _, response = connect_with({"sessionId": SESSION_ID})
    # Then the refusal says what the token is needed for
    assert error_of(response) == (401, "UNAUTHORIZED")
    assert "sessionId without targetLanguage" in body_of(response)["message"]


def test_a_malformed_session_id_on_the_speakers_socket_names_the_field(tables, gateway):
    new, response = speakers_socket("Golden-Eagle-427")
    assert error_of(response) == (400, "INVALID_PARAMETERS")
    assert body_of(response)["field"] == "sessionId"
    assert tables.raw_connections() == []


def test_a_url_with_target_language_is_not_the_speaker_even_from_the_owner(tables, gateway):
    # Given a session with its speaker connected
    session_id, speaker = create_session()
    # When its owner opens a listener's URL (sessionId and targetLanguage, no action)
    connection_id, response = connect_with(
        {"token": "id-token", "sessionId": session_id, "targetLanguage": "es"}, user_id=OWNER
    )
    # Then it is a plain connection: the speaker is unchanged, nobody is counted in
    assert response["statusCode"] == 200
    row = tables.connection(connection_id)
    assert row["role"] == "none" and "sessionId" not in row and "welcome" not in row
    item = tables.session(session_id)
    assert (item["speakerConnectionId"], item["listenerCount"]) == (speaker, 0)


def test_the_listener_apps_url_then_its_join_message_counts_the_listener_once(tables, gateway, clock):
    # Given a live session
    session_id, _speaker = create_session()
    # When the listener app opens its URL (no action) and then sends joinSession
    listener, response = connect_with(
        {"token": "id-token", "sessionId": session_id, "targetLanguage": "es"}, user_id=LISTENER_USER
    )
    assert response["statusCode"] == 200
    assert tables.session(session_id)["listenerCount"] == 0
    joined = send({"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}, listener)
    # Then it hears sessionJoined with itself counted, once
    assert body_of(joined) == {
        "type": "sessionJoined",
        "sessionId": session_id,
        "sourceLanguage": "en",
        "targetLanguage": "es",
        "qualityTier": "standard",
        "connectionId": listener,
        "listenerCount": 1,
        "timestamp": clock.now_ms,
    }
    assert tables.session(session_id)["listenerCount"] == 1
    row = tables.connection(listener)
    assert (row["role"], row["sessionId"], row["targetLanguage"]) == ("listener", session_id, "es")
    # And its close counts it out once
    drop(listener)
    assert tables.session(session_id)["listenerCount"] == 0


def test_a_join_on_the_url_and_again_by_message_counts_the_listener_once(tables, gateway):
    # Given a listener that joined on its URL (action=joinSession)
    session_id, _speaker = create_session()
    listener = join(session_id, "es")
    # When it sends joinSession as well
    again = send({"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}, listener)
    # Then the second join is refused (the connection is in the session already) and counts nobody
    assert error_of(again) == (403, "FORBIDDEN")
    assert tables.session(session_id)["listenerCount"] == 1
