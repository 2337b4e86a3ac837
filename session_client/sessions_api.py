"""The HTTP session API from Python (docs/http-api.md): create, read, change and end a speaker's sessions, and take
their transcripts home.

The standard library's ``urllib`` does the requests (the client library needs nothing beyond ``websockets``); each
runs in a thread, so an asyncio program is not held up. A session created here starts with its speaker away: open
its speaker connection with :meth:`session_client.SpeakerClient.resume` (the socket by session id) within the
service's grace window.

    api = SessionsApi("http://127.0.0.1:8080/dev", token=token)
    session = await api.create_session(source_language="en")
    speaker = await SpeakerClient.resume("ws://127.0.0.1:8080/dev", token=token, session_id=session.session_id)
    ...
    vtt = await api.transcript(session.session_id, language="es", fmt="vtt")
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from lambda_src.contract import http_api, partial_result_fields, wire

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class SessionMetadata:
    """A session as the HTTP API shows it."""

    session_id: str
    speaker_id: str
    source_language: str
    quality_tier: str
    status: str  # active, paused or ended (http_api.STATUSES)
    listener_count: int
    created_at: int
    updated_at: int
    partial_results_enabled: bool
    min_stability_threshold: float
    max_buffer_timeout: float

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> SessionMetadata:
        """Read by the contract's names (a field the body lacks is an error: the API always sends them all)."""
        return cls(
            session_id=str(body[wire.SESSION_ID]),
            speaker_id=str(body[http_api.SPEAKER_ID]),
            source_language=str(body[wire.SOURCE_LANGUAGE]),
            quality_tier=str(body[wire.QUALITY_TIER]),
            status=str(body[http_api.STATUS]),
            listener_count=int(body[wire.LISTENER_COUNT]),
            created_at=int(body[http_api.CREATED_AT]),
            updated_at=int(body[http_api.UPDATED_AT]),
            partial_results_enabled=bool(body[partial_result_fields.ENABLED.stored]),
            min_stability_threshold=float(body[partial_result_fields.STABILITY.stored]),
            max_buffer_timeout=float(body[partial_result_fields.TIMEOUT.stored]),
        )


class ApiRefused(Exception):
    """The HTTP API refused a request: its ``status`` and the catalogue's ``code``, ``message`` and ``field`` (API
    Gateway's own refusals, e.g. a bad token's 401, carry a message and no code)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code: str | None = body.get("code")
        self.message = str(body.get("message", ""))
        self.field: str | None = body.get("field")
        self.body = body
        super().__init__(f"{status} {self.code or ''}: {self.message}".replace(" :", ":"))


class SessionsApi:
    """One speaker's calls to the HTTP session API at ``base_url`` (the stack output ``HttpApiUrl``, or what
    ``make local`` prints after ``HTTP API:``), with its Cognito token."""

    def __init__(self, base_url: str, *, token: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    async def health(self) -> bool:
        """Whether the API answers (``GET /health``, no token)."""
        status, _headers, _body = await self._call("GET", http_api.HEALTH.path, authorized=False)
        return status == 200

    async def create_session(
        self,
        *,
        source_language: str = "en",
        quality_tier: str | None = None,
        partial_results_enabled: bool | None = None,
        min_stability: float | Decimal | None = None,
        max_buffer_timeout: float | Decimal | None = None,
    ) -> SessionMetadata:
        """``POST /sessions`` (settings left None take the service's defaults)."""
        body: dict[str, Any] = {wire.SOURCE_LANGUAGE: source_language}
        if quality_tier is not None:
            body[wire.QUALITY_TIER] = quality_tier
        body.update(_settings(partial_results_enabled, min_stability, max_buffer_timeout))
        return SessionMetadata.from_body(await self._json("POST", http_api.CREATE_SESSION.path, body))

    async def get_session(self, session_id: str) -> SessionMetadata:
        """``GET /sessions/{sessionId}``: any session's public status, live or ended."""
        return SessionMetadata.from_body(await self._json("GET", _path(http_api.GET_SESSION, session_id)))

    async def update_session(
        self,
        session_id: str,
        *,
        partial_results_enabled: bool | None = None,
        min_stability: float | Decimal | None = None,
        max_buffer_timeout: float | Decimal | None = None,
    ) -> SessionMetadata:
        """``PATCH /sessions/{sessionId}``: the owner changes its partial-result settings (those not None)."""
        body = _settings(partial_results_enabled, min_stability, max_buffer_timeout)
        return SessionMetadata.from_body(await self._json("PATCH", _path(http_api.UPDATE_SESSION, session_id), body))

    async def end_session(self, session_id: str) -> None:
        """``DELETE /sessions/{sessionId}``: the owner ends it (listeners told and disconnected)."""
        await self._call("DELETE", _path(http_api.DELETE_SESSION, session_id))

    async def transcript(self, session_id: str, *, language: str, fmt: str = wire.TRANSCRIPT_WEBVTT) -> str:
        """The owner's transcript in ``language`` as a ``fmt`` document (``wire.TRANSCRIPT_FORMATS``)."""
        query = urlencode({wire.TRANSCRIPT_LANGUAGE: language, wire.TRANSCRIPT_FORMAT: fmt})
        _status, _headers, body = await self._call("GET", f"{_path(http_api.GET_TRANSCRIPT, session_id)}?{query}")
        return body.decode("utf-8")

    async def delete_transcript(self, session_id: str) -> None:
        """Delete the owner's transcript of the session at once."""
        await self._call("DELETE", _path(http_api.DELETE_TRANSCRIPT, session_id))

    async def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        _status, _headers, answer = await self._call(method, path, body=body)
        decoded = json.loads(answer)
        if not isinstance(decoded, dict):
            raise ValueError(f"{method} {path}: expected a JSON object, got {answer[:200]!r}")
        return decoded

    async def _call(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, authorized: bool = True
    ) -> tuple[int, dict[str, str], bytes]:
        return await asyncio.to_thread(self._request, method, path, body, authorized)

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, authorized: bool
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"accept": "application/json"}
        if authorized:
            headers["authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["content-type"] = "application/json"
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (the API's URL)
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as refused:
            raw = refused.read()
            try:
                detail = json.loads(raw)
            except ValueError:
                detail = None
            raise ApiRefused(refused.code, detail if isinstance(detail, dict) else {"message": raw.decode()}) from None


def _path(route: http_api.HttpRoute, session_id: str) -> str:
    return route.path.replace(f"{{{http_api.SESSION_ID_PARAMETER}}}", quote(session_id, safe=""))


def _settings(
    enabled: bool | None, min_stability: float | Decimal | None, max_buffer_timeout: float | Decimal | None
) -> dict[str, Any]:
    """The partial-result settings a call names, by their request names (JSON numbers and booleans)."""
    named = {
        partial_result_fields.ENABLED.request: enabled,
        partial_result_fields.STABILITY.request: None if min_stability is None else float(min_stability),
        partial_result_fields.TIMEOUT.request: None if max_buffer_timeout is None else float(max_buffer_timeout),
    }
    return {name: value for name, value in named.items() if value is not None}
