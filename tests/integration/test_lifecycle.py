"""The session lifecycle through the local gateway with real WebSocket clients: leave, refresh, speaker drop
and resume, end, live configuration, and the listener count under concurrency."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import connect as connect_async
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.integration.conftest import LISTENER_CAP, SPEAKER_GRACE_SECONDS, RunningService

pytestmark = pytest.mark.integration

CREATE = "action=createSession&sourceLanguage=en"
T = TypeVar("T")


def receive(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def receive_type(ws: ClientConnection, message_type: str, timeout: float = 15) -> dict[str, Any]:
    """The next message of ``message_type``, skipping others (e.g. status notices)."""
    deadline = time.monotonic() + timeout
    while True:
        message = receive(ws, max(0.1, deadline - time.monotonic()))
        if message["type"] == message_type:
            return message


# What the service pushes without being asked, any time: skipped by ``ask`` (a requested sessionStatus is a reply).
PUSHED = {"sessionStatus", "transcript", "caption"}


def ask(ws: ClientConnection, **message: Any) -> dict[str, Any]:
    """Send ``message``; the reply (what is pushed meanwhile, ``PUSHED``, is skipped)."""
    ws.send(json.dumps(message))
    while True:
        reply = receive(ws)
        if reply["type"] not in PUSHED or reply.get("updateReason") == "requested":
            return reply


def speaker(service: RunningService, user_id: str = "speaker-1") -> tuple[ClientConnection, dict[str, Any]]:
    ws = connect(f"{service.url}?{CREATE}&token={service.token(user_id=user_id)}", open_timeout=10, legacy=True)
    return ws, receive(ws)


def listener(service: RunningService, session_id: str, language: str = "es") -> tuple[ClientConnection, dict[str, Any]]:
    ws = connect(
        f"{service.url}?action=joinSession&sessionId={session_id}&targetLanguage={language}",
        open_timeout=10,
        legacy=True,
    )
    return ws, receive(ws)


def attribute(service: RunningService, session_id: str, name: str) -> Any:
    item = service.session(session_id) or {}
    value = item.get(name)
    return None if value is None else next(iter(value.values()))


def eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_leave_session_by_message_counts_out_once_and_keeps_the_connection(service: RunningService) -> None:
    # Given a session and a listener that joined by message on a plain connection
    speaker_ws, created = speaker(service)
    session_id = created["sessionId"]
    with speaker_ws, connect(service.url, open_timeout=10) as ws:
        joined = ask(ws, action="joinSession", sessionId=session_id, targetLanguage="fr")
        assert joined["type"] == "sessionJoined"
        assert attribute(service, session_id, "listenerCount") == "1"
        # When it leaves, then leaves again
        left = ask(ws, action="leaveSession")
        again = ask(ws, action="leaveSession")
        # Then it is counted out once, and the connection still works
        assert (left["type"], left["sessionId"]) == ("sessionLeft", session_id)
        assert again["code"] == "SESSION_NOT_FOUND"
        assert attribute(service, session_id, "listenerCount") == "0"
        assert ask(ws, action="heartbeat")["type"] == "heartbeatAck"
    # And its later close does not count it out a second time
    time.sleep(0.5)
    assert attribute(service, session_id, "listenerCount") == "0"


def test_dropped_speaker_past_the_window_ends_the_session_and_listeners_are_told(service: RunningService) -> None:
    # Given a session with a listener
    speaker_ws, created = speaker(service)
    session_id = created["sessionId"]
    listener_ws, _ = listener(service, session_id)
    with listener_ws:
        # When the speaker's connection drops and nobody resumes
        speaker_ws.close()
        disconnected = receive_type(listener_ws, "speakerDisconnected")
        # Then the listener hears of the drop at once, and of the end after the window
        assert disconnected["sessionId"] == session_id
        assert disconnected["graceSeconds"] == SPEAKER_GRACE_SECONDS
        ended = receive_type(listener_ws, "sessionEnded", timeout=SPEAKER_GRACE_SECONDS + 10)
        assert (ended["sessionId"], ended["reason"]) == (session_id, "speakerTimeout")
        # And the listener's connection is closed by the service
        with pytest.raises(ConnectionClosed):
            listener_ws.recv(timeout=10)
    assert attribute(service, session_id, "isActive") is False
    assert attribute(service, session_id, "endReason") == "speakerTimeout"
    assert eventually(lambda: service.listener_rows(session_id) == 0)
    # And joining it now is refused as ended
    with pytest.raises(InvalidStatus) as refused:
        listener(service, session_id)
    assert refused.value.response.status_code == 410


def test_owner_resumes_within_the_window_and_the_session_lives_on(service: RunningService) -> None:
    # Given a session whose speaker dropped, with a listener waiting
    speaker_ws, created = speaker(service, user_id="resumer")
    session_id = created["sessionId"]
    listener_ws, _ = listener(service, session_id, "de")
    with listener_ws:
        speaker_ws.close()
        receive_type(listener_ws, "speakerDisconnected")
        # When another user tries to resume it, and then the owner does
        with pytest.raises(InvalidStatus) as refused:
            connect(
                f"{service.url}?action=resumeSession&sessionId={session_id}&token={service.token(user_id='intruder')}",
                open_timeout=10,
            )
        resumed_ws = connect(
            f"{service.url}?action=resumeSession&sessionId={session_id}&token={service.token(user_id='resumer')}",
            open_timeout=10,
        )
        with resumed_ws:
            resumed = receive(resumed_ws)
            # Then the intruder got 403, the owner sessionResumed with the session's settings
            assert refused.value.response.status_code == 403
            assert resumed["type"] == "sessionResumed"
            assert (resumed["sessionId"], resumed["sourceLanguage"]) == (session_id, "en")
            assert resumed["minStabilityThreshold"] == 0.85
            # And the listener hears the speaker is back, and the session outlives the window
            assert receive_type(listener_ws, "speakerReconnected")["sessionId"] == session_id
            time.sleep(SPEAKER_GRACE_SECONDS + 1.5)
            assert attribute(service, session_id, "isActive") is True
            assert attribute(service, session_id, "speakerConnectionId") == resumed["connectionId"]
            assert attribute(service, session_id, "speakerGraceEndsAt") is None


def test_refreshed_speakers_old_socket_closing_leaves_the_session_active(service: RunningService) -> None:
    # Given a session with a listener
    old_ws, created = speaker(service, user_id="refresher")
    session_id = created["sessionId"]
    listener_ws, _ = listener(service, session_id)
    with listener_ws:
        # When the speaker opens a refreshed connection and then closes the old one
        new_ws = connect(
            f"{service.url}?action=refreshConnection&sessionId={session_id}&role=speaker"
            f"&token={service.token(user_id='refresher')}",
            open_timeout=10,
        )
        with new_ws:
            complete = receive(new_ws)
            assert (complete["type"], complete.get("role")) == ("connectionRefreshComplete", "speaker"), complete
            assert receive(new_ws)["type"] == "stateRestored"  # the broadcast state follows the first message
            old_ws.close()
            time.sleep(SPEAKER_GRACE_SECONDS + 1.5)
            # Then the session is still active with the new speaker connection, and nobody was told of a drop
            assert attribute(service, session_id, "isActive") is True
            assert attribute(service, session_id, "speakerConnectionId") == complete["connectionId"]
            with pytest.raises(TimeoutError):
                listener_ws.recv(timeout=0.2)
            # And the new connection acts as the speaker
            status = ask(new_ws, action="getSessionStatus")
            assert (status["type"], status["listenerCount"], status["listenersByLanguage"]) == (
                "sessionStatus",
                1,
                {"es": 1},
            )


def test_listener_refresh_with_previous_connection_keeps_the_count(service: RunningService) -> None:
    speaker_ws, created = speaker(service)
    session_id = created["sessionId"]
    old_ws, joined = listener(service, session_id, "it")
    with speaker_ws:
        # When the listener refreshes, naming its old connection, and then closes the old one
        new_ws = connect(
            f"{service.url}?action=refreshConnection&sessionId={session_id}&role=listener&targetLanguage=it"
            f"&previousConnectionId={joined['connectionId']}",
            open_timeout=10,
        )
        with new_ws:
            complete = receive(new_ws)
            assert attribute(service, session_id, "listenerCount") == "1"
            old_ws.close()
            time.sleep(0.5)
            # Then the count never moved and exactly one listener row remains
            assert complete["type"] == "connectionRefreshComplete"
            assert complete["targetLanguage"] == "it"
            assert attribute(service, session_id, "listenerCount") == "1"
            assert service.listener_rows(session_id) == 1


def test_end_session_tells_every_listener_closes_them_and_refuses_later_joins(service: RunningService) -> None:
    speaker_ws, created = speaker(service)
    session_id = created["sessionId"]
    listeners = [listener(service, session_id, language)[0] for language in ("es", "fr", "de")[:LISTENER_CAP]]
    with speaker_ws:
        # When a listener tries to end it, and then the speaker does
        forbidden = ask(listeners[0], action="endSession")
        ended = ask(speaker_ws, action="endSession")
        # Then only the speaker could; every listener is told and closed; the rows are gone
        assert forbidden["code"] == "FORBIDDEN"
        assert (ended["type"], ended.get("reason")) == ("sessionEnded", "endedBySpeaker"), ended
        for ws in listeners:
            assert receive_type(ws, "sessionEnded")["reason"] == "endedBySpeaker"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
        assert attribute(service, session_id, "isActive") is False
        # (each closed listener's $disconnect removes its row and counts it out)
        assert eventually(lambda: attribute(service, session_id, "listenerCount") == "0")
        assert service.listener_rows(session_id) == 0
        # And the session stays ended: no join, no config change
        with pytest.raises(InvalidStatus) as refused:
            listener(service, session_id)
        assert refused.value.response.status_code == 410
        assert ask(speaker_ws, action="endSession")["type"] == "sessionEnded"  # a repeat is idempotent
        assert ask(speaker_ws, action="updateSessionConfig", minStability=0.9)["code"] == "SESSION_ENDED"


def test_live_configuration_update_reaches_the_downstream_reader(service: RunningService) -> None:
    speaker_ws, created = speaker(service)
    session_id = created["sessionId"]
    listener_ws, _ = listener(service, session_id)
    with speaker_ws, listener_ws:
        # When the speaker changes two settings, sends a bad one, and a listener tries
        updated = ask(speaker_ws, action="updateSessionConfig", minStability="0.9", partialResults=False)
        invalid = ask(speaker_ws, action="updateSessionConfig", maxBufferTimeout=11)
        forbidden = ask(listener_ws, action="updateSessionConfig", minStability=0.8)
        # Then the reply carries the full new config; the bad value and the listener are refused
        assert updated == {
            **updated,
            "type": "sessionConfigUpdated",
            "sessionId": session_id,
            "partialResultsEnabled": False,
            "minStabilityThreshold": 0.9,
            "maxBufferTimeout": 5.0,
        }
        assert (invalid["code"], invalid["field"]) == ("INVALID_CONFIGURATION", "maxBufferTimeout")
        assert forbidden["code"] == "FORBIDDEN"
        # And the stored item holds exact numbers
        item = service.session(session_id)
        assert item is not None
        assert item["minStabilityThreshold"] == {"N": "0.9"}
        assert item["partialResultsEnabled"] == {"BOOL": False}


# -- concurrency -------------------------------------------------------------------------------------


# The concurrency tests below are bounded by progress, not by the clock: a step may take as long as a loaded machine
# needs, and a scenario fails only when none of its steps finished for STALL_SECONDS (a stall, not a slow machine).
# How fast joins go is make bench's measure (sections load and contention).
STALL_SECONDS = 60.0


async def all_progressing(steps: Iterable[Awaitable[T]]) -> list[T]:
    """Every step's result, in order, run concurrently; an AssertionError when none finished for STALL_SECONDS."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, timeout=STALL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            assert done, f"{len(pending)} of {len(tasks)} steps made no progress for {STALL_SECONDS} s"
    finally:
        for task in pending:
            task.cancel()
    return [task.result() for task in tasks]


def settles(read: Callable[[], Any], expected: Any) -> bool:
    """Whether ``read()`` reaches ``expected``, waiting while it keeps changing (at most STALL_SECONDS unchanged)."""
    last, since = read(), time.monotonic()
    while last != expected:
        if time.monotonic() - since > STALL_SECONDS:
            return False
        time.sleep(0.05)
        value = read()
        if value != last:
            last, since = value, time.monotonic()
    return True


async def _join(url: str) -> tuple[Any, dict[str, Any] | int]:
    """A listener's join: its open socket and first message, or the refused handshake's status (no time limit of
    its own: ``all_progressing`` bounds the scenario)."""
    try:
        ws = await connect_async(url, open_timeout=None)
    except InvalidStatus as refused:
        return None, refused.response.status_code
    return ws, json.loads(await ws.recv())


def test_cap_of_n_admits_exactly_n_of_n_plus_20_concurrent_joins(service: RunningService) -> None:
    speaker_ws, created = speaker(service)
    url = f"{service.url}?action=joinSession&sessionId={created['sessionId']}&targetLanguage=es"

    async def scenario() -> list[tuple[Any, Any]]:
        results = await all_progressing(_join(url) for _ in range(LISTENER_CAP + 20))
        for ws, _ in results:
            if ws is not None:
                await ws.close()
        return results

    with speaker_ws:
        # When N + 20 listeners join at once
        results = asyncio.run(scenario())
    # Then exactly N are admitted and the others are told the session is full
    admitted = [first for ws, first in results if ws is not None]
    refused = [status for ws, status in results if ws is None]
    assert len(admitted) == LISTENER_CAP
    assert all(message["type"] == "sessionJoined" for message in admitted)
    assert refused == [503] * 20


def test_200_listeners_joining_and_leaving_concurrently_keep_the_count_exact(roomy_service: RunningService) -> None:
    service = roomy_service
    speaker_ws, created = speaker(service)
    session_id = created["sessionId"]
    url = f"{service.url}?action=joinSession&sessionId={session_id}&targetLanguage="
    rng = random.Random(7)

    async def one_listener(index: int) -> Any:
        """Join; then a third leave by message, a third close, a third stay connected."""
        ws, first = await _join(url + rng.choice(["es", "fr", "de", "ja"]))
        assert ws is not None and isinstance(first, dict) and first["type"] == "sessionJoined", first
        await asyncio.sleep(rng.uniform(0, 0.5))
        if index % 3 == 0:
            await ws.send(json.dumps({"action": "leaveSession"}))
            assert json.loads(await ws.recv())["type"] == "sessionLeft"
        elif index % 3 == 1:
            await ws.close()
            return None
        return ws

    async def scenario() -> int:
        sockets = await all_progressing(one_listener(i) for i in range(200))
        still_listening = sum(1 for i, ws in enumerate(sockets) if ws is not None and i % 3 == 2)
        for ws in sockets:
            if ws is not None:
                await ws.close()
        return still_listening

    with speaker_ws:
        # When 200 listeners join, and leave or drop, all at once
        still_listening = asyncio.run(scenario())
        # Then (after every socket closed) the count equals the listener rows, and both reach zero
        assert still_listening == len([i for i in range(200) if i % 3 == 2])
        assert settles(lambda: attribute(service, session_id, "listenerCount"), "0")
        assert service.listener_rows(session_id) == 0


def test_count_equals_live_rows_while_listeners_stay(roomy_service: RunningService) -> None:
    service = roomy_service
    speaker_ws, created = speaker(service)
    session_id = created["sessionId"]
    url = f"{service.url}?action=joinSession&sessionId={session_id}&targetLanguage=es"

    async def scenario() -> tuple[int, int]:
        joined = await all_progressing(_join(url) for _ in range(200))
        sockets = [ws for ws, _ in joined]
        # half of them leave at once, by closing, while the rest stay
        await all_progressing(ws.close() for ws in sockets[::2])
        await asyncio.to_thread(settles, lambda: attribute(service, session_id, "listenerCount"), "100")
        observed = int(attribute(service, session_id, "listenerCount")), service.listener_rows(session_id)
        await all_progressing(ws.close() for ws in sockets[1::2])
        return observed

    with speaker_ws:
        count, rows = asyncio.run(scenario())
    assert (count, rows) == (100, 100)


def test_the_speaker_is_pushed_a_handful_of_statuses_while_thirty_listeners_join(roomy_service: RunningService) -> None:
    # Given a speaker
    speaker_ws, created = speaker(roomy_service, user_id="status-speaker")
    session_id = created["sessionId"]
    assert created["expiresAt"] > created["timestamp"] > 10**12  # epoch milliseconds
    # When 30 listeners join in two waves, the second bringing a new language
    listeners = []
    for index in range(30):
        ws, joined = listener(roomy_service, session_id, "es" if index < 15 else "de")
        assert joined["type"] == "sessionJoined" and joined["listenerCount"] >= 1
        listeners.append(ws)
        if index == 14:
            time.sleep(4)  # beyond the status function's batching window
    # Then the speaker hears more than one change push, far fewer than 30, each with its reason (beside the
    # periodic ones this run's fast sweeper sends)
    pushed = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            message = receive(speaker_ws, max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        if message["type"] == "sessionStatus":
            pushed.append(message)
    changes = [message for message in pushed if message["updateReason"] != "periodic"]
    reasons = [message["updateReason"] for message in changes]
    assert 1 < len(changes) <= 10, reasons
    assert set(reasons) <= {"newLanguage", "listenerCountChange"} and "newLanguage" in reasons
    # (the last change push is within 10 % of the final count: a smaller change waits for the periodic push)
    assert changes[-1]["listenerCount"] * 110 >= 30 * 100
    assert set(changes[-1]["listenersByLanguage"]) == {"de", "es"}
    for ws in [speaker_ws, *listeners]:
        ws.close()
