"""A scripted service for the client library's tests: fake WebSockets whose server side follows a script (a first
message or an exception per connection attempt, replies per action), a clock only the client's waits move, and the
client options that plug them in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed

from lambda_src.protocol import messages
from session_client.connection import Backoff
from tests.unit.server_samples import NOW_MS, SESSION, SESSION_ID

URL = "ws://service.test/dev"
TOKEN = "header.payload.signature"

_CLOSE = object()
Reply = Callable[[dict[str, Any]], list[dict[str, Any]]]


class FakeSocket:
    """A WebSocket whose server side is the :class:`FakeService`'s script."""

    def __init__(self, service: FakeService, query: dict[str, str]) -> None:
        self.service = service
        self.query = query
        self.sent: list[dict[str, Any]] = []
        self.closed = False
        self._inbox: asyncio.Queue[object] = asyncio.Queue()

    def push(self, message: dict[str, Any]) -> None:
        self._inbox.put_nowait(json.dumps(message))

    def drop(self) -> None:
        """The service (or the network) closes the connection."""
        self._inbox.put_nowait(_CLOSE)

    async def send(self, message: str) -> None:
        if self.closed:
            raise ConnectionClosed(None, None)
        body = json.loads(message)
        self.sent.append(body)
        for reply in self.service.replies.get(body["action"], lambda _: [])(body):
            self.push(reply)

    async def recv(self) -> str:
        item = await self._inbox.get()
        if item is _CLOSE:
            self._inbox.put_nowait(_CLOSE)
            raise ConnectionClosed(None, None)
        assert isinstance(item, str)
        return item

    async def close(self) -> None:
        self.closed = True
        self.drop()


class FakeService:
    """Answers each connection attempt with the next outcome (a first message, or an exception to raise) and each
    action with its scripted replies."""

    def __init__(self, *outcomes: dict[str, Any] | Exception) -> None:
        self.outcomes = list(outcomes)
        self.queries: list[dict[str, str]] = []
        self.sockets: list[FakeSocket] = []
        self.replies: dict[str, Reply] = {}

    async def connect(self, url: str) -> FakeSocket:
        query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
        self.queries.append(query)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        socket = FakeSocket(self, query)
        socket.push(outcome)
        self.sockets.append(socket)
        return socket


class FakeTime:
    """A clock that only the client's waits move."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


CREATED = messages.session_created(SESSION, "speaker-1", NOW_MS)
RESUMED = messages.session_resumed(SESSION, "speaker-2", NOW_MS)
JOINED = messages.session_joined(SESSION_ID, "en", "standard", "es", "listener-1", NOW_MS, listener_count=1)
REJOINED = messages.session_joined(SESSION_ID, "en", "standard", "es", "listener-2", NOW_MS, listener_count=1)
# Deterministic backoff: each delay is its ceiling (0.5, 1, 2, 4 ...).
CEILINGS = Backoff(initial=0.5, maximum=4.0, draw=lambda low, high: high)


def options(service: FakeService, time: FakeTime | None = None, **more: Any) -> dict[str, Any]:
    time = time or FakeTime()
    return {
        "connector": service.connect,
        "heartbeat_interval": None,
        "reply_timeout": 2,
        "backoff": CEILINGS,
        "sleep": time.sleep,
        "clock": time.clock,
        **more,
    }


async def eventually(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(2):
        while not check():
            await asyncio.sleep(0.001)


def run(test: Callable[[], Any]) -> Any:
    return asyncio.run(test())
