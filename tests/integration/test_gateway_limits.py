"""API Gateway's limits through the local run, end to end, with real connections: a run of its own whose connections'
clocks run TIME_SCALE times faster (``GATEWAY_TIME_SCALE``: the gateway's idle timeout and lifetime, and the
functions' refresh notice, all as many times sooner), so that

- a listener that heartbeats outlives the idle timeout; one that sends nothing is closed (1001) and counted out;
- a speaker and a listener that follow ``connectionRefreshRequired`` (the client library does) outlive the
  connection lifetime with their session intact, while a connection that ignores it is closed at its end;
- a message over 128 KB closes its connection with 1009;
- with a ``@connections`` rate set, posts beyond it are answered 429 and the fan-out still delivers (it retries),
  counting nobody out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from lambda_src.contract import limits
from session_client import ListenerClient, SpeakerClient, messages
from tests.integration.conftest import SPEAKER_GRACE_SECONDS, RunningService, _running

pytestmark = pytest.mark.integration

# 300 times faster: 2 s of idle timeout, 24 s of lifetime, the refresh asked for at 20 s.
TIME_SCALE = 300
IDLE_SECONDS = limits.IDLE_TIMEOUT_MINUTES * 60 / TIME_SCALE
LIFETIME_SECONDS = limits.CONNECTION_LIMIT_MINUTES * 60 / TIME_SCALE
# The clients' heartbeat: well inside the idle timeout, even with a slow reply now and then.
HEARTBEAT_SECONDS = 0.4
T = TypeVar("T")


@pytest.fixture(scope="module")
def scaled_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The local run with TIME_SCALE, and the sweeper at its own rate (once a minute: its probes and periodic
    pushes would take the post rate's tokens)."""
    yield from _running(
        tmp_path_factory,
        {"speakerGraceSeconds": str(SPEAKER_GRACE_SECONDS)},
        time_scale=TIME_SCALE,
        schedule_interval=None,
    )


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


async def speaker_of(service: RunningService, user_id: str) -> SpeakerClient:
    return await SpeakerClient.create(
        service.url, token=service.token(user_id=user_id), heartbeat_interval=HEARTBEAT_SECONDS
    )


async def listener_of(service: RunningService, session_id: str, language: str = "es") -> ListenerClient:
    return await ListenerClient.join(
        service.url, session_id=session_id, language=language, heartbeat_interval=HEARTBEAT_SECONDS
    )


async def raw_listener(service: RunningService, session_id: str) -> ClientConnection:
    """A listener's connection without the client library (nothing sent after the join, nothing reopened)."""
    ws = await connect(f"{service.url}?action=joinSession&sessionId={session_id}&targetLanguage=de")
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first["type"] == "sessionJoined", first
    return ws


async def until_closed(ws: ClientConnection, heartbeat_every: float | None = None) -> tuple[float, int | None]:
    """Read ``ws`` (and heartbeat on it every ``heartbeat_every`` seconds, if given) until the server closes it:
    when (``time.monotonic``) and with which code."""

    async def heartbeats() -> None:
        assert heartbeat_every is not None
        while True:
            await ws.send(json.dumps({"action": "heartbeat"}))
            await asyncio.sleep(heartbeat_every)

    beating = asyncio.create_task(heartbeats()) if heartbeat_every is not None else None
    try:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), LIFETIME_SECONDS * 2)
    finally:
        if beating is not None:
            beating.cancel()
    received = closed.value.rcvd
    return time.monotonic(), received.code if received else None


async def listener_count_becomes(speaker: SpeakerClient, count: int, timeout: float = 10) -> int:
    """The session's listener count as the speaker's ``getSessionStatus`` reads it, once it is ``count`` (or the
    last one read, after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        status = await speaker.status()
        if status.listener_count == count or time.monotonic() > deadline:
            return status.listener_count
        await asyncio.sleep(0.2)


def test_a_listener_that_heartbeats_outlives_the_idle_timeout_and_a_silent_one_is_closed_and_counted_out(
    scaled_service: RunningService,
) -> None:
    async def scenario() -> None:
        # Given a session with two listeners: one heartbeats (the client library), the other sends nothing
        speaker = await speaker_of(scaled_service, "idle-speaker")
        assert speaker.session_id is not None
        talking = await listener_of(scaled_service, speaker.session_id)
        silent = await raw_listener(scaled_service, speaker.session_id)
        joined_at = time.monotonic()
        assert await listener_count_becomes(speaker, 2) == 2
        # When the idle timeout passes
        closed_at, code = await until_closed(silent)
        # Then the silent one is closed with 1001 once it has been idle that long, and counted out
        assert code == 1001
        assert closed_at - joined_at >= IDLE_SECONDS * 0.9
        assert await listener_count_becomes(speaker, 1) == 1
        # And the one that heartbeats is still there, well past the idle timeout, on its first connection
        await asyncio.sleep(IDLE_SECONDS)
        assert talking.is_open and talking.failure is None
        assert (await talking.heartbeat()).type == "heartbeatAck"
        assert await listener_count_becomes(speaker, 1) == 1
        await talking.close()
        await speaker.end()
        await speaker.close()

    run(scenario)


def test_a_speaker_and_a_listener_that_refresh_outlive_the_connection_lifetime_with_their_session_intact(
    scaled_service: RunningService,
) -> None:
    async def scenario() -> None:
        # Given a session with a speaker and a listener of the client library (which refresh when asked), and a
        # listener that heartbeats but ignores the refresh request
        speaker = await speaker_of(scaled_service, "lifetime-speaker")
        assert speaker.session_id is not None
        listener = await listener_of(scaled_service, speaker.session_id)
        stubborn = await raw_listener(scaled_service, speaker.session_id)
        stubborn_opened = time.monotonic()
        first = (speaker.connection_id, listener.connection_id)
        joined = listener.joined
        assert await listener_count_becomes(speaker, 2) == 2
        # When the connection lifetime passes (and a little more)
        closed_at, code = await until_closed(stubborn, heartbeat_every=HEARTBEAT_SECONDS)
        # Then the one that ignored the request is closed with 1001 at the end of its lifetime, and counted out
        assert code == 1001
        assert LIFETIME_SECONDS * 0.9 <= closed_at - stubborn_opened <= LIFETIME_SECONDS + 3
        assert await listener_count_becomes(speaker, 1) == 1
        # And the speaker and the listener were asked to refresh and moved to new connections, each still open
        assert speaker.connection_id != first[0] and listener.connection_id != first[1]
        assert speaker.is_open and listener.is_open and (speaker.failure, listener.failure) == (None, None)
        # by refreshing (the listener never joined again, the speaker never dropped)
        assert listener.joined is joined
        heard = [message.type for message in listener.received()]
        assert messages.ConnectionRefreshRequired.TYPE in heard
        assert messages.SpeakerDisconnected.TYPE not in heard and messages.SessionEnded.TYPE not in heard
        # And the session is intact: live, its speaker the refreshed connection, its count unchanged
        status = await speaker.status()
        assert (status.is_active, status.speaker_connected, status.listener_count) == (True, True, 1)
        item = scaled_service.session(speaker.session_id) or {}
        assert item["speakerConnectionId"]["S"] == speaker.connection_id
        assert scaled_service.listener_rows(speaker.session_id) == 1
        # And what the speaker does still reaches the listener on its new connection
        await speaker.pause_broadcast()
        paused = await listener.next_message(messages.BroadcastPaused.TYPE, timeout=10)
        assert paused.session_id == speaker.session_id  # type: ignore[attr-defined]
        await listener.close()
        await speaker.end()
        await speaker.close()

    run(scenario)


def test_a_message_over_128_kb_closes_its_connection_with_1009(scaled_service: RunningService) -> None:
    async def scenario() -> None:
        async with connect(scaled_service.url, compression=None) as ws:
            # When a client sends a heartbeat padded past 128 KB, in frames of 32 KB (each within the frame limit)
            message = json.dumps({"action": "heartbeat", "pad": "x" * limits.MAX_FRAME_BYTES})
            frame = limits.MAX_WEBSOCKET_FRAME_BYTES
            await ws.send([message[start : start + frame] for start in range(0, len(message), frame)])
            # Then the gateway closes the connection with 1009, as API Gateway does
            _closed_at, code = await until_closed(ws)
            assert code == 1009

    run(scenario)


def test_posts_beyond_the_post_rate_are_throttled_and_the_fan_out_still_delivers_without_counting_anyone_out(
    scaled_service: RunningService,
) -> None:
    gateway = scaled_service.run.gateway
    assert gateway is not None
    audience = 6

    async def scenario() -> None:
        # Given a session with six listeners, and its speaker told of them (the status pushes are over)
        speaker = await speaker_of(scaled_service, "throttled-speaker")
        assert speaker.session_id is not None
        listeners = [await listener_of(scaled_service, speaker.session_id) for _ in range(audience)]
        await _pushed_status_with(speaker, audience)
        # And @connections limited to 4 requests a second from now on
        throttled_before = gateway.throttled_requests
        scaled_service.loop.call_soon_threadsafe(gateway.set_post_rate, 4)
        await asyncio.sleep(0.1)
        try:
            # When the speaker pauses (the fan-out posts to all six at once)
            await speaker.pause_broadcast()
            # Then posts were refused 429, and every listener got the notice all the same (retried)
            for listener in listeners:
                paused = await listener.next_message(messages.BroadcastPaused.TYPE, timeout=10)
                assert paused.session_id == speaker.session_id  # type: ignore[attr-defined]
            assert gateway.throttled_requests > throttled_before
        finally:
            scaled_service.loop.call_soon_threadsafe(gateway.set_post_rate, None)
        # And nobody was counted out
        assert await listener_count_becomes(speaker, audience) == audience
        assert scaled_service.listener_rows(speaker.session_id) == audience
        for listener in listeners:
            assert listener.is_open
            await listener.close()
        await speaker.end()
        await speaker.close()

    run(scenario)


async def _pushed_status_with(speaker: SpeakerClient, count: int, timeout: float = 10) -> None:
    """Wait for the pushed ``sessionStatus`` that counts ``count`` listeners (the last of the joins' pushes)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no pushed sessionStatus with {count} listeners"
        status = await speaker.next_message(messages.SessionStatus.TYPE, timeout=left)
        assert isinstance(status, messages.SessionStatus)
        if status.listener_count == count:
            return
