"""The local gateway's API Gateway limits, on a gateway whose routes run recording stand-ins: a connection whose
client sends nothing for the idle timeout, and any connection at the end of its lifetime, is closed with 1001 and
goes through ``$disconnect``; a frame over 32 KB or a message over 128 KB closes with 1009; a ``@connections`` post
over 128 KB is refused 413, and with a post rate, requests beyond it are refused 429, as botocore sees them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from lambda_src.contract import function_settings, limits
from lambda_src.platform import aws
from local_run import assembly as cloud_assembly
from local_run.assembly import RouteDefinition
from local_run.dynamodb_local import free_port
from local_run.gateway import LocalGateway
from local_run.gateway_limits import GatewayLimits, TokenBucket

T = TypeVar("T")
KB = 1024


class Recorder:
    """A function that records each event it is invoked with (and returns nothing: ``$connect`` accepts)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.definition = type("Definition", (), {"name": "recorder"})()

    async def invoke(self, event: Any) -> Any:
        self.events.append(event)
        return None

    async def close(self) -> None:
        pass


class Gateway:
    def __init__(self, gateway: LocalGateway, disconnects: Recorder, messages: Recorder) -> None:
        self.gateway, self.disconnects, self.messages = gateway, disconnects, messages

    @property
    def url(self) -> str:
        return self.gateway.url

    def disconnect_codes(self) -> dict[str, int]:
        return {
            event["requestContext"]["connectionId"]: event["requestContext"]["disconnectStatusCode"]
            for event in self.disconnects.events
        }

    async def connection_id(self, ws: ClientConnection) -> str:
        """The id the gateway gave the connection (what ``$default`` sees on its first message)."""
        await ws.send('{"action":"whoami"}')
        await _eventually(lambda: bool(self.messages.events))
        return str(self.messages.events[-1]["requestContext"]["connectionId"])


@asynccontextmanager
async def running(limits: GatewayLimits) -> AsyncIterator[Gateway]:
    routes = {
        key: RouteDefinition(key, function, returns_response=False)
        for key, function in (("$connect", "Connect"), ("$disconnect", "Disconnect"), ("$default", "Default"))
    }
    assembly = cloud_assembly.Assembly(
        stack_name="Demo-dev",
        stage="dev",
        route_selection_expression="$request.body.action",
        routes=routes,
        functions={},
        tables={},
        triggers=[],
    )
    gateway = LocalGateway(assembly, websocket_port=free_port(), http_port=free_port(), base_env={}, limits=limits)
    await gateway.start()
    disconnects, messages = Recorder(), Recorder()
    gateway.runtimes = {"Connect": Recorder(), "Disconnect": disconnects, "Default": messages}  # type: ignore[dict-item]
    try:
        yield Gateway(gateway, disconnects, messages)
    finally:
        await gateway.stop()


async def _eventually(check: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def closed_after(ws: ClientConnection) -> tuple[float, int | None, str | None]:
    """Seconds until the server closed ``ws`` (reading everything meanwhile), with the close code and reason."""
    started = time.monotonic()
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 20)
    received = closed.value.rcvd
    return time.monotonic() - started, received.code if received else None, received.reason if received else None


async def keep_talking(ws: ClientConnection, every: float) -> None:
    """What a client that heartbeats does: a message every ``every`` seconds, until its connection closes."""
    with pytest.raises(ConnectionClosed):
        while True:
            await ws.send('{"action":"heartbeat"}')
            await asyncio.sleep(every)


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


# -- the idle timeout and the lifetime ------------------------------------------------------------------------------


def test_a_silent_connection_is_closed_going_away_at_the_idle_timeout_and_a_talking_one_is_not() -> None:
    # Given a run whose clocks are 600 times faster: 1 s of idle timeout, 12 s of lifetime
    limits_ = GatewayLimits(time_scale=600)
    assert (limits_.idle_timeout_seconds, limits_.lifetime_seconds) == (1, 12)

    async def scenario() -> None:
        async with running(limits_) as gateway, connect(gateway.url) as silent, connect(gateway.url) as talking:
            silent_id = await gateway.connection_id(silent)
            talker = asyncio.create_task(keep_talking(talking, every=0.25))
            # When one connection sends nothing more, and the other a message every 0.25 s
            elapsed, code, reason = await closed_after(silent)
            # Then the silent one is closed with 1001 "Going away" about 1 s after its last message
            assert (code, reason) == (1001, "Going away")
            assert 0.8 <= elapsed <= 3, elapsed
            # And its $disconnect runs with that code, while the talking one is still open
            await _eventually(lambda: silent_id in gateway.disconnect_codes())
            assert gateway.disconnect_codes() == {silent_id: 1001}
            assert not talker.done()
            talker.cancel()

    run(scenario)


def test_every_connection_is_closed_going_away_at_the_end_of_its_lifetime() -> None:
    # Given a run whose clocks are 2400 times faster: 0.25 s of idle timeout, 3 s of lifetime
    limits_ = GatewayLimits(time_scale=2400)

    async def scenario() -> None:
        async with running(limits_) as gateway, connect(gateway.url) as ws:
            # When its client keeps talking, well within the idle timeout
            connection_id = await gateway.connection_id(ws)
            talker = asyncio.create_task(keep_talking(ws, every=0.05))
            elapsed, code, reason = await closed_after(ws)
            # Then it is closed with 1001 all the same, 3 s after it opened
            assert (code, reason) == (1001, "Going away")
            assert 2.5 <= elapsed <= 4.5, elapsed
            await _eventually(lambda: connection_id in gateway.disconnect_codes())
            assert gateway.disconnect_codes()[connection_id] == 1001
            await talker

    run(scenario)


# -- frames and messages -------------------------------------------------------------------------------------------


def _text(size: int) -> str:
    """A JSON message of exactly ``size`` bytes (routed to ``$default``)."""
    head = '{"action":"pad","pad":"'
    return head + "x" * (size - len(head) - 2) + '"}'


def _fragments(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


@pytest.mark.parametrize(
    ("what", "message", "fragment", "closed"),
    [
        ("a 32 KB frame", _text(32 * KB), None, False),
        ("a frame over 32 KB", _text(32 * KB + 1), None, True),
        ("a 128 KB message in 32 KB frames", _text(128 * KB), 32 * KB, False),
        ("a message over 128 KB in 32 KB frames", _text(128 * KB + 1), 32 * KB, True),
    ],
)
def test_frames_over_32_kb_and_messages_over_128_kb_close_the_connection_with_1009(
    what: str, message: str, fragment: int | None, closed: bool
) -> None:
    async def scenario() -> None:
        async with running(GatewayLimits()) as gateway, connect(gateway.url, compression=None) as ws:
            # When the client sends it (in frames of ``fragment`` bytes, or in one)
            await ws.send(_fragments(message, fragment) if fragment else message)
            if closed:
                # Then its connection is closed with 1009 (message too big), and the message goes nowhere
                _elapsed, code, _reason = await closed_after(ws)
                assert code == 1009, what
                assert gateway.messages.events == []
            else:
                # Then it reaches its route whole
                await _eventually(lambda: bool(gateway.messages.events))
                assert gateway.messages.events[0]["body"] == message, what

    run(scenario)


# -- @connections ---------------------------------------------------------------------------------------------------


def _management_client(gateway: Gateway) -> Any:
    """botocore's ``apigatewaymanagementapi`` client for the run's ``@connections`` (what the functions use; the
    suite's fake credentials sign it), which does not retry, so each answer is seen as it came."""
    return aws.create_client(
        "apigatewaymanagementapi",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{gateway.gateway.http_port}/dev",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def _post(client: Any, connection_id: str, size: int) -> None:
    client.post_to_connection(ConnectionId=connection_id, Data=_text(size).encode())


def test_a_post_over_128_kb_is_refused_413_as_api_gateway_refuses_it() -> None:
    async def scenario() -> None:
        async with running(GatewayLimits()) as gateway, connect(gateway.url) as ws:
            connection_id = await gateway.connection_id(ws)
            client = _management_client(gateway)
            # When a function posts 128 KB, then one byte more
            await asyncio.to_thread(_post, client, connection_id, limits.MAX_FRAME_BYTES)
            received = await asyncio.wait_for(ws.recv(), 5)
            with pytest.raises(ClientError) as refused:
                await asyncio.to_thread(_post, client, connection_id, limits.MAX_FRAME_BYTES + 1)
        # Then the first arrives whole, and botocore raises PayloadTooLargeException (413) for the second
        assert len(received) == limits.MAX_FRAME_BYTES
        error = refused.value.response
        assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
            "PayloadTooLargeException",
            413,
        )

    run(scenario)


def test_requests_beyond_the_post_rate_are_refused_429_limit_exceeded() -> None:
    async def scenario() -> None:
        async with running(GatewayLimits()) as gateway, connect(gateway.url) as ws:
            connection_id = await gateway.connection_id(ws)
            client = _management_client(gateway)
            # Given a post rate of one request a second (a bucket of one)
            gateway.gateway.set_post_rate(1)
            # When two posts come at once
            await asyncio.to_thread(_post, client, connection_id, 10)
            with pytest.raises(ClientError) as refused:
                await asyncio.to_thread(_post, client, connection_id, 10)
            # Then the second is refused as API Gateway refuses requests over the account's rate
            error = refused.value.response
            assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
                "LimitExceededException",
                429,
            )
            assert gateway.gateway.throttled_requests == 1
            # And a second later the bucket has a token again
            await asyncio.sleep(1.05)
            await asyncio.to_thread(_post, client, connection_id, 10)
            # And without a rate, nothing is refused
            gateway.gateway.set_post_rate(None)
            for _ in range(5):
                await asyncio.to_thread(_post, client, connection_id, 10)
            assert gateway.gateway.throttled_requests == 1

    run(scenario)


def test_the_token_bucket_holds_a_seconds_worth_and_a_refusal_takes_no_token() -> None:
    now = [0.0]
    bucket = TokenBucket(4, clock=lambda: now[0])
    assert [bucket.take() for _ in range(5)] == [True, True, True, True, False]
    now[0] += 0.25  # one token back
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 10  # never more than a second's worth
    assert sum(bucket.take() for _ in range(10)) == 4


def test_the_functions_are_told_the_scale_and_make_local_says_what_it_means() -> None:
    assert GatewayLimits().function_environment() == {}
    assert GatewayLimits().notes() == []
    scaled = GatewayLimits(time_scale=60, post_rate=50)
    assert scaled.function_environment() == {function_settings.ENV_CONNECTION_TIME_SCALE: "60.0"}
    (clocks, rate) = scaled.notes()
    assert "closed after 10 s without a client message and at 120 s of age" in clocks
    assert "refresh asked for at 100 s, warnings from 105 s" in clocks
    assert "50 requests a second" in rate


@pytest.mark.parametrize(("scale", "rate"), [(0, None), (-1, None), (float("inf"), None), (1, 0), (1, -5)])
def test_a_scale_or_rate_that_is_not_a_positive_number_is_refused(scale: float, rate: float | None) -> None:
    with pytest.raises(ValueError, match="positive number"):
        GatewayLimits(time_scale=scale, post_rate=rate)
