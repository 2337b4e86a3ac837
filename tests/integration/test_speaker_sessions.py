"""A speaker's sessions through the local gateway with real WebSocket clients: the limit of active sessions per
speaker (refused with the active ids, exact when two creations race, freed by ending one), and a session whose
speaker refreshes living past its lifetime while one without a refresh expires."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from lambda_src.contract import limits
from tests.integration.conftest import ACTIVE_SESSIONS_PER_SPEAKER, RunningService
from tests.integration.test_lifecycle import CREATE, ask, attribute, listener, receive, receive_type

pytestmark = pytest.mark.integration

LIMIT = ACTIVE_SESSIONS_PER_SPEAKER  # (the service fixture's, by its context key)
LIFETIME_SECONDS = limits.DEFAULT_SESSION_LIFETIME_HOURS * 3600


def speaker(service: RunningService, user_id: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = connect(f"{service.url}?{CREATE}&token={service.token(user_id=user_id)}", open_timeout=10, legacy=True)
    return ws, receive(ws)


def create_on_connect_status(service: RunningService, user_id: str) -> int:
    """The handshake status of a createSession on ``$connect`` (the connection is closed again when opened)."""
    try:
        with connect(f"{service.url}?{CREATE}&token={service.token(user_id=user_id)}", open_timeout=15, legacy=True):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def test_a_speaker_at_its_limit_is_refused_with_its_active_ids_and_creates_again_after_ending_one(
    service: RunningService,
) -> None:
    # Given a speaker with as many active sessions as the limit allows
    user_id = "speaker-at-its-limit"
    speakers = [speaker(service, user_id) for _ in range(LIMIT)]
    active = sorted(created["sessionId"] for _ws, created in speakers)
    try:
        # When it creates another, by message on a connection opened with its token, and on $connect
        with connect(f"{service.url}?token={service.token(user_id=user_id)}", open_timeout=10) as ws:
            refused = ask(ws, action="createSession", sourceLanguage="en")
            # Then it is refused, told its active sessions (to resume one instead)
            assert refused["type"] == "error" and refused["code"] == "ACTIVE_SESSION_LIMIT", refused
            assert refused["activeSessions"] == active
            assert create_on_connect_status(service, user_id) == 409
            # And, once it ended one of them, creating succeeds
            first_ws, first = speakers[0]
            assert ask(first_ws, action="endSession")["type"] == "sessionEnded"
            created = ask(ws, action="createSession", sourceLanguage="en")
            assert created["type"] == "sessionCreated", created
            assert created["sessionId"] not in active
    finally:
        for ws, _created in speakers:
            ws.close()


def test_two_creations_racing_for_the_last_place_cannot_both_pass(service: RunningService) -> None:
    # Given a speaker one session short of its limit
    user_id = "speaker-racing-itself"
    speakers = [speaker(service, user_id) for _ in range(LIMIT - 1)]
    try:
        # When two creations arrive at once
        with ThreadPoolExecutor(max_workers=2) as pool:
            statuses = sorted(pool.map(lambda _i: create_on_connect_status(service, user_id), range(2)))
        # Then exactly one of them was admitted
        assert statuses == [101, 409]
    finally:
        for ws, _created in speakers:
            ws.close()


def _near_its_end(service: RunningService, session_id: str, seconds_left: int) -> None:
    """Make the session one created ``LIFETIME - seconds_left`` seconds ago (as if it had run almost its whole
    lifetime): its creation, expiry and sweep time moved back together."""
    now_s = int(time.time())
    expires_s = now_s + seconds_left
    service.db.update_item(
        TableName=service.sessions_table,
        Key={"sessionId": {"S": session_id}},
        UpdateExpression="SET createdAt = :created, expiresAt = :expires, sweepAt = :expires",
        ExpressionAttributeValues={
            ":created": {"N": str((expires_s - LIFETIME_SECONDS) * 1000)},
            ":expires": {"N": str(expires_s)},
        },
    )


def test_a_speaker_that_refreshes_keeps_its_session_past_the_default_lifetime(service: RunningService) -> None:
    # Given two sessions at the end of their lifetime, each with a listener
    user_id = "speaker-refreshing"
    kept_ws, kept = speaker(service, user_id)
    lapsed_ws, lapsed = speaker(service, user_id)
    kept_listener, _ = listener(service, kept["sessionId"])
    lapsed_listener, _ = listener(service, lapsed["sessionId"])
    seconds_left = 3
    old_expiry_s = int(time.time()) + seconds_left
    for created in (kept, lapsed):
        _near_its_end(service, created["sessionId"], seconds_left)
    try:
        # When the first one's speaker refreshes its connection (and closes the old one)
        query = f"action=refreshConnection&sessionId={kept['sessionId']}&role=speaker"
        refreshed = connect(f"{service.url}?{query}&token={service.token(user_id=user_id)}", open_timeout=10)
        with refreshed:
            assert receive(refreshed)["type"] == "connectionRefreshComplete"
            assert receive(refreshed)["type"] == "stateRestored"  # the broadcast state, right after
            kept_ws.close()
            # Then the session that was not refreshed expires: its listener is told and it ends
            assert receive_type(lapsed_listener, "sessionEnded")["reason"] == "expired"
            assert attribute(service, lapsed["sessionId"], "isActive") is False
            # While the refreshed one lives on past its old expiry, its listener still in it
            assert time.time() > old_expiry_s
            assert attribute(service, kept["sessionId"], "isActive") is True
            assert attribute(service, kept["sessionId"], "listenerCount") == "1"
            status = ask(refreshed, action="getSessionStatus")
            assert status["type"] == "sessionStatus" and status["isActive"] is True
            assert status["expiresAt"] / 1000 > time.time() + LIFETIME_SECONDS - 60  # milliseconds
            # And nothing told its listener the session ended (all it heard before its heartbeat's ack)
            kept_listener.send(json.dumps({"action": "heartbeat"}))
            heard = [receive(kept_listener)]
            while heard[-1]["type"] != "heartbeatAck":
                heard.append(receive(kept_listener))
            assert "sessionEnded" not in [message["type"] for message in heard], heard
    finally:
        for ws in (kept_ws, lapsed_ws, kept_listener, lapsed_listener):
            ws.close()
