"""The original apps' WebSocket URLs, without ``action``, through the local gateway: the speaker app's
``?token&sessionId`` is its session's speaker connection, the listener app's ``?token&sessionId&targetLanguage``
joins with its ``joinSession`` message and is counted once."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.integration.conftest import RunningService
from tests.integration.test_lifecycle import ask, attribute, eventually, receive, receive_type, speaker

pytestmark = pytest.mark.integration


def speaker_app_socket(service: RunningService, session_id: str, token: str) -> ClientConnection:
    return connect(f"{service.url}?token={token}&sessionId={session_id}", open_timeout=10)


def listener_app_socket(service: RunningService, session_id: str, language: str = "es") -> ClientConnection:
    token = service.token(user_id="listener-app-user")
    return connect(f"{service.url}?token={token}&sessionId={session_id}&targetLanguage={language}", open_timeout=10)


def test_the_speaker_apps_url_is_its_sessions_speaker_and_the_listener_apps_join_counts_once(
    service: RunningService,
) -> None:
    # Given a session its owner created (on a socket it then closes)
    creating_ws, created = speaker(service, user_id="speaker-app-user")
    session_id = created["sessionId"]
    # And a listener that opened the listener app's URL and then sent joinSession
    with listener_app_socket(service, session_id) as listener_ws:
        joined = ask(listener_ws, action="joinSession", sessionId=session_id, targetLanguage="es")
        assert (joined["type"], joined["sessionId"], joined["targetLanguage"]) == ("sessionJoined", session_id, "es")
        assert joined["listenerCount"] == 1
        assert attribute(service, session_id, "listenerCount") == "1"
        assert service.listener_rows(session_id) == 1
        creating_ws.close()
        receive_type(listener_ws, "speakerDisconnected")
        # When another user, and a token that does not verify, open the speaker app's URL for it
        for token, refused_with in ((service.token(user_id="someone-else"), 403), ("not-a-token", 401)):
            with pytest.raises(InvalidStatus) as refused:
                speaker_app_socket(service, session_id, token)
            assert refused.value.response.status_code == refused_with
        # And the owner opens it
        with speaker_app_socket(service, session_id, service.token(user_id="speaker-app-user")) as speaker_ws:
            # Then the owner's socket is the speaker: sessionResumed, then the broadcast state
            resumed = receive(speaker_ws)
            assert (resumed["type"], resumed["sessionId"]) == ("sessionResumed", session_id)
            assert receive_type(speaker_ws, "stateRestored")["isPaused"] is False
            assert attribute(service, session_id, "speakerConnectionId") == resumed["connectionId"]
            assert receive_type(listener_ws, "speakerReconnected")["sessionId"] == session_id
            # And the speaker app's controls work on it
            paused = ask(speaker_ws, action="pauseBroadcast", timestamp=int(time.time() * 1000))
            assert (paused["type"], paused["isPaused"]) == ("broadcastState", True)
            assert receive_type(listener_ws, "broadcastPaused")["sessionId"] == session_id
            status = ask(speaker_ws, action="getSessionStatus")
            assert (status["type"], status["listenerCount"]) == ("sessionStatus", 1)
            assert status["languageDistribution"] == [{"languageCode": "es", "count": 1}]
            ended = ask(speaker_ws, action="endSession", sessionId=session_id, reason="user_ended")
            assert (ended["type"], ended["sessionId"]) == ("sessionEnded", session_id)
            assert receive_type(listener_ws, "sessionEnded")["sessionId"] == session_id
    assert attribute(service, session_id, "isActive") is False
    assert eventually(lambda: service.listener_rows(session_id) == 0)
    # And the ended session's speaker URL is refused as ended
    with pytest.raises(InvalidStatus) as refused:
        speaker_app_socket(service, session_id, service.token(user_id="speaker-app-user"))
    assert refused.value.response.status_code == 410
