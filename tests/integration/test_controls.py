"""The speaker's broadcast state and the listeners' controls through the local gateway with real WebSocket
clients: each listener hears each change once, a language change moves the counts, and a refreshed speaker gets
its state back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.integration.conftest import RunningService
from tests.integration.test_lifecycle import ask, listener, receive, speaker

pytestmark = pytest.mark.integration


def notices_until_heartbeat(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every message the connection received before the answer to a heartbeat sent now (the gateway delivers a
    connection's messages in order, so nothing told earlier can arrive after it)."""
    ws.send(json.dumps({"action": "heartbeat"}))
    received = []
    while (message := receive(ws))["type"] != "heartbeatAck":
        received.append(message)
    return received


def test_two_listeners_in_different_languages_hear_each_broadcast_change_once(service: RunningService) -> None:
    # Given a session with a Spanish and a French listener
    speaker_ws, created = speaker(service, user_id="broadcaster")
    session_id = created["sessionId"]
    spanish, _ = listener(service, session_id, "es")
    french, _ = listener(service, session_id, "fr")
    with speaker_ws, spanish, french:
        # When the speaker pauses twice, mutes, sets a volume twice, and changes the whole state
        answers = [
            ask(speaker_ws, action="pauseBroadcast"),
            ask(speaker_ws, action="pauseBroadcast"),
            ask(speaker_ws, action="muteBroadcast", sessionId=session_id),
            ask(speaker_ws, action="setVolume", volumeLevel=0.4),
            ask(speaker_ws, action="setVolume", volumeLevel="0.40"),
            ask(speaker_ws, action="speakerStateChange", state={"isPaused": False, "isMuted": False, "volume": 1}),
        ]
        # Then the speaker gets the whole state each time
        assert [answer["type"] for answer in answers] == ["broadcastState"] * 6
        assert {k: answers[-1][k] for k in ("isPaused", "isMuted", "volume")} == {
            "isPaused": False,
            "isMuted": False,
            "volume": 1.0,
        }
        # And each listener hears each change once, and nothing of the repeats
        for ws in (spanish, french):
            notices = notices_until_heartbeat(ws)
            assert [notice["type"] for notice in notices] == [
                "broadcastPaused",
                "broadcastMuted",
                "volumeChanged",
                "speakerStateChanged",
            ]
            assert notices[2]["volumeLevel"] == 0.4
            assert {notice["sessionId"] for notice in notices} == {session_id}
        # And the status reports the state
        assert ask(speaker_ws, action="getSessionStatus")["broadcastState"] == {
            "isPaused": False,
            "isMuted": False,
            "volume": 1.0,
        }


def test_a_language_change_moves_the_status_counts(service: RunningService) -> None:
    speaker_ws, created = speaker(service, user_id="linguist")
    session_id = created["sessionId"]
    first, _ = listener(service, session_id, "es")
    second, _ = listener(service, session_id, "es")
    with speaker_ws, first, second:
        assert ask(speaker_ws, action="getSessionStatus")["listenersByLanguage"] == {"es": 2}
        changed = ask(first, action="switchLanguage", targetLanguage="ja")
        assert (changed["type"], changed["sessionId"], changed["targetLanguage"]) == (
            "languageChanged",
            session_id,
            "ja",
        )
        status = ask(speaker_ws, action="getSessionStatus")
        assert (status["listenerCount"], status["listenersByLanguage"]) == (2, {"es": 1, "ja": 1})
        # And a playback pause is the listener's alone
        assert ask(second, action="pausePlayback")["type"] == "playbackPaused"
        assert ask(speaker_ws, action="getSessionStatus")["broadcastState"]["isPaused"] is False
        assert notices_until_heartbeat(first) == []


def test_a_refreshed_speaker_gets_its_paused_state_back(service: RunningService) -> None:
    old_ws, created = speaker(service, user_id="pauser")
    session_id = created["sessionId"]
    with old_ws:
        assert ask(old_ws, action="speakerStateChange", state={"isPaused": True, "volume": 0.3})["isPaused"] is True
        with connect(
            f"{service.url}?action=refreshConnection&sessionId={session_id}&role=speaker"
            f"&token={service.token(user_id='pauser')}",
            open_timeout=10,
        ) as new_ws:
            assert receive(new_ws)["type"] == "connectionRefreshComplete"
            restored = receive(new_ws)
            assert (restored["type"], restored["sessionId"]) == ("stateRestored", session_id)
            assert {k: restored[k] for k in ("isPaused", "isMuted", "volume")} == {
                "isPaused": True,
                "isMuted": False,
                "volume": 0.3,
            }
            # And the new connection is the speaker: it resumes the broadcast
            assert ask(new_ws, action="resumeBroadcast")["isPaused"] is False
