"""A scripted service for the client library's tests: fake WebSockets whose server side follows a script (a first
message or an exception per connection attempt, replies per action), a clock only the client's waits move, and the
client options that plug them in; and a loopback HTTP server of the segments' audio."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
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


def translated_audio(number: int, url: str, language: str = "es", transcript: str | None = None) -> dict[str, Any]:
    """A ``translatedAudio`` as the service builds it: segment ``number`` of ``language``, its MP3 at ``url``."""
    return messages.translated_audio(
        SESSION_ID, f"segment-{number}", language, url, 1.5, number, transcript or f"frase {number}", NOW_MS
    )


class AudioServer:
    """A loopback HTTP server of segments' audio: each path's status and body (``answers``), every path asked for
    (``asked``, in order). A context manager: it serves on a thread of its own until the block ends."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.asked: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.asked.append(self.path)
                status, body = server.answers.get(urlsplit(self.path).path, (404, b"<Code>NoSuchKey</Code>"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def serve(self, path: str, body: bytes, status: int = 200) -> str:
        """Answer ``path`` with ``status`` and ``body``; its URL (with a signature-like query, as S3's)."""
        self.answers[path] = (status, body)
        return f"{self.base}{path}?X-Amz-Signature=secret"

    def __enter__(self) -> AudioServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
