"""A recording stand-in for API Gateway's management API (``@connections``), for the unit suite.

moto does not model ``post_to_connection`` / ``delete_connection`` usefully, so the lifecycle tests replace
``lambda_src.adapters.connections_api.client`` with :class:`FakeConnectionsApi` (see the ``gateway`` fixture in
``conftest.py``): it records every post and close, and answers 410 Gone (or any other error) for the
connection ids a test names, exactly as botocore raises them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.exceptions import ClientError

from lambda_src.model.speech import SpeechUnavailable, SpokenText

CALLBACK_URL = "https://example.execute-api.us-east-1.amazonaws.com/test"


def client_error(code: str, status: int, operation: str) -> ClientError:
    """The ClientError botocore raises for a management API error response."""
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


class FakeConnectionsApi:
    """Records ``post_to_connection``, ``get_connection`` and ``delete_connection`` calls (thread-safe: fan-out
    posts in parallel).

    ``gone``: connection ids that answer 410 GoneException (a vanished client) to posts, gets and closes.
    ``failing``: connection id -> error code raised on posts and gets (e.g. ``"LimitExceededException"``).
    ``throttled``: connection id -> how many more posts to it answer 429 LimitExceededException before one is taken.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str, Any]] = []  # (operation, connection id, decoded message or None)
        self.gone: set[str] = set()
        self.failing: dict[str, str] = {}
        self.throttled: dict[str, int] = {}
        self.refused: list[str] = []  # the connection ids of the posts answered 429, in order

    # -- the boto3 client's surface the code uses -------------------------------------------------------
    def post_to_connection(self, *, ConnectionId: str, Data: bytes) -> dict[str, Any]:  # noqa: N803
        if ConnectionId in self.gone:
            raise client_error("GoneException", 410, "PostToConnection")
        if ConnectionId in self.failing:
            raise client_error(self.failing[ConnectionId], 429, "PostToConnection")
        with self._lock:
            if self.throttled.get(ConnectionId, 0) > 0:
                self.throttled[ConnectionId] -= 1
                self.refused.append(ConnectionId)
                raise client_error("LimitExceededException", 429, "PostToConnection")
        message = json.loads(Data.decode("utf-8") if isinstance(Data, bytes) else Data)
        with self._lock:
            self.calls.append(("post", ConnectionId, message))
        return {}

    def delete_connection(self, *, ConnectionId: str) -> dict[str, Any]:  # noqa: N803
        if ConnectionId in self.gone:
            raise client_error("GoneException", 410, "DeleteConnection")
        with self._lock:
            self.calls.append(("delete", ConnectionId, None))
        return {}

    def get_connection(self, *, ConnectionId: str) -> dict[str, Any]:  # noqa: N803
        if ConnectionId in self.gone:
            raise client_error("GoneException", 410, "GetConnection")
        if ConnectionId in self.failing:
            raise client_error(self.failing[ConnectionId], 429, "GetConnection")
        with self._lock:
            self.calls.append(("get", ConnectionId, None))
        return {}

    # -- reading what happened --------------------------------------------------------------------------
    def posts(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return [(connection_id, message) for operation, connection_id, message in self.calls if operation == "post"]

    def messages_to(self, connection_id: str) -> list[dict[str, Any]]:
        return [message for target, message in self.posts() if target == connection_id]

    def types_to(self, connection_id: str) -> list[str]:
        return [message["type"] for message in self.messages_to(connection_id)]

    def asked_about(self) -> list[str]:
        """Connection ids asked about (``get_connection``) that answered; in order."""
        with self._lock:
            return [connection_id for operation, connection_id, _ in self.calls if operation == "get"]

    def closed(self) -> list[str]:
        with self._lock:
            return [connection_id for operation, connection_id, _ in self.calls if operation == "delete"]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


@dataclass
class JwksServer:
    """A JWKS endpoint on 127.0.0.1 (what Cognito serves) that records every path requested."""

    url: str
    requests: list[str] = field(default_factory=list)


@contextmanager
def serve_jwks(jwks: dict[str, Any]) -> Iterator[JwksServer]:
    """Serve ``jwks`` at ``/.well-known/jwks.json`` over loopback HTTP for as long as the block runs."""
    body = json.dumps(jwks).encode()
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            requests.append(self.path)
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield JwksServer(url=f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", requests=requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class FakeSynthesizer:
    """An in-memory :class:`lambda_src.model.speech.Synthesizer`: deterministic bytes (the language and text) and a
    duration from the text's length; records every synthesis (thread-safe: languages are spoken in parallel).

    ``voices``: the languages it speaks (None: every one); ``failing``: languages whose synthesis raises.
    """

    name = "fake"

    def __init__(self, voices: set[str] | None = None, failing: set[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.voices = voices
        self.failing = failing or set()
        self.spoken: list[tuple[str, str]] = []  # (text, language)

    def speaks(self, language: str) -> bool:
        return self.voices is None or language in self.voices

    def synthesize(self, text: str, language: str) -> SpokenText:
        with self._lock:
            self.spoken.append((text, language))
        if not self.speaks(language):
            raise SpeechUnavailable(language)
        if language in self.failing:
            raise RuntimeError(f"the engine failed in {language}")
        return SpokenText(f"MP3[{language}]{text}".encode(), "audio/mpeg", duration_seconds=len(text) / 10)

    def languages_spoken(self) -> list[str]:
        with self._lock:
            return sorted(language for _text, language in self.spoken)


class FakeAudioStore:
    """An in-memory :class:`lambda_src.model.speech.AudioStore`: records each put, hands out URLs that name the key
    and the expiry."""

    BASE_URL = "https://audio.example.com/"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.puts: list[str] = []

    def put(self, key: str, audio: bytes, content_type: str) -> None:
        with self._lock:
            self.objects[key] = (audio, content_type)
            self.puts.append(key)

    def url(self, key: str, expires_in_seconds: int) -> str:
        return f"{self.BASE_URL}{key}?expires={expires_in_seconds}"
