"""The web console of the local run: a speaker page and a listener page served beside ``@connections``.

``GET /console/`` is an index linking both pages (``/`` and ``/console`` redirect to it); ``/console/<file>``
serves the static files of the project's ``console/`` folder (HTML, CSS, JavaScript, nothing built);
``/console/config.json`` tells the pages where the WebSocket and HTTP APIs are, the bounds of every setting they
offer and the transcript route and formats (read from ``lambda_src``, so the pages never spell a limit or a
format); ``/console/qr/<session id>.svg`` is the QR code of a session's listener link; ``POST /console/dev-token``
mints a speaker token with the run's dev issuer (the gateway answers it only for the run's own ``Host`` and the
console's own ``Origin``). Only the local run serves any of this:
the deployed stack has no console and no way to mint a token.
"""

from __future__ import annotations

import io
import json
import mimetypes
from collections.abc import Callable
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

import segno

from lambda_src.contract import http_api, languages, limits, partial_result_fields, wire
from lambda_src.contract.limits import SAMPLE_RATE_HZ
from lambda_src.protocol import validation

CONSOLE_DIR: Final = Path(__file__).resolve().parent.parent / "console"
PREFIX: Final = "/console/"
INDEX: Final = "index.html"
LISTENER_PAGE: Final = "listener.html"
# What the pages do on their own: audio chunk length, heartbeat pace (API Gateway closes a connection idle for
# 10 minutes), and the lifetime of the dev tokens the speaker page asks for.
CHUNK_MILLISECONDS: Final = 100
HEARTBEAT_SECONDS: Final = 60
DEV_TOKEN_SECONDS: Final = 3600
# What the speaker page calls each transcript format (``wire.TRANSCRIPT_FORMATS``) on its links.
TRANSCRIPT_FORMAT_LABELS: Final = {
    wire.TRANSCRIPT_WEBVTT: "WebVTT",
    wire.TRANSCRIPT_SRT: "SRT",
    wire.TRANSCRIPT_TEXT: "Text",
}

Response = tuple[int, str, bytes]


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _step(*values: Decimal | None) -> float:
    """The finest decimal place of ``values``: a number control's step (0.01 for 0.70-0.95, 0.1 for 2.0-10.0)."""
    exponents = [value.as_tuple().exponent for value in values if value is not None]
    return float(Decimal(1).scaleb(min(exponent for exponent in exponents if isinstance(exponent, int))))


def transcript_description() -> dict[str, Any]:
    """How the speaker page asks for its transcripts: the route's path (``{sessionId}`` to fill in), its query
    parameters' names and each format with its label, in ``wire.TRANSCRIPT_FORMATS``' order."""
    return {
        "path": http_api.GET_TRANSCRIPT.path,
        "sessionIdParameter": http_api.SESSION_ID_PARAMETER,
        "languageParameter": wire.TRANSCRIPT_LANGUAGE,
        "formatParameter": wire.TRANSCRIPT_FORMAT,
        "formats": [{"format": fmt, "label": TRANSCRIPT_FORMAT_LABELS[fmt]} for fmt in wire.TRANSCRIPT_FORMATS],
    }


def settings_description() -> list[dict[str, Any]]:
    """The partial-result settings as the speaker page builds its controls: request name, message name, kind,
    default and (numbers) inclusive bounds and unit, straight from :data:`partial_result_fields.FIELDS`."""
    return [
        {
            "request": field.request,
            "message": field.stored,
            "kind": "boolean" if field.kind is bool else "number",
            "default": field.default if field.kind is bool else float(field.default),
            "lower": _number(field.lower),
            "upper": _number(field.upper),
            "unit": field.unit.strip(),
            "step": None if field.kind is bool else _step(field.lower, field.upper, field.default),
        }
        for field in partial_result_fields.FIELDS
    ]


class Console:
    """Answers the local run's HTTP requests under ``/console/``; :meth:`respond` is the gateway's hook."""

    def __init__(
        self,
        *,
        websocket_url: str,
        http_url: str,
        mint_token: Callable[[int], str],
        http_api_url: str | None = None,
    ) -> None:
        """``http_url``: where this server is reached (``http://127.0.0.1:PORT``); ``mint_token(expires_in)``:
        a speaker token from the run's dev issuer; ``http_api_url``: the HTTP API's base URL, where the speaker
        page fetches its transcripts (None: the stack has no HTTP API, and the page offers none)."""
        self.websocket_url = websocket_url
        self.http_api_url = None if http_api_url is None else http_api_url.rstrip("/")
        self.url = f"{http_url.rstrip('/')}{PREFIX}"
        self._mint_token = mint_token

    def listener_link(self, session_id: str) -> str:
        """The link listeners open to join ``session_id`` (what the share link and the QR code carry)."""
        return f"{self.url}{LISTENER_PAGE}?session={session_id}"

    def config(self) -> dict[str, Any]:
        """What the pages learn from ``/console/config.json``."""
        return {
            "websocketUrl": self.websocket_url,
            "httpApiUrl": self.http_api_url,
            "consoleUrl": self.url,
            "transcript": transcript_description(),
            "settings": settings_description(),
            "volume": {
                "lower": float(limits.VOLUME_LOWER),
                "upper": float(limits.VOLUME_UPPER),
                "default": float(limits.DEFAULT_VOLUME),
                "step": _step(limits.VOLUME_LOWER, limits.VOLUME_UPPER, limits.DEFAULT_VOLUME),
            },
            "languages": sorted(languages.SUPPORTED_LANGUAGES),
            "qualityTiers": list(limits.QUALITY_TIERS),
            "defaultQualityTier": limits.DEFAULT_QUALITY_TIER,
            "sampleRateHz": SAMPLE_RATE_HZ,
            "chunkMilliseconds": CHUNK_MILLISECONDS,
            "heartbeatSeconds": HEARTBEAT_SECONDS,
        }

    def respond(self, method: str, path: str, body: bytes) -> Response | None:
        """The answer to a request for ``path``, or None when the path is not the console's."""
        if path in ("/", PREFIX.rstrip("/")):  # the server's root, as `make local` prints it, is the console
            return 308, f"Location: {PREFIX}\r\n", b""
        if not path.startswith(PREFIX):
            return None
        name = path.removeprefix(PREFIX)
        if name == "dev-token":
            if method != "POST":
                return _json(HTTPStatus.METHOD_NOT_ALLOWED, {"message": "POST a request for a speaker token"}, "POST")
            return _json(HTTPStatus.OK, {"token": self._mint_token(DEV_TOKEN_SECONDS), "expiresIn": DEV_TOKEN_SECONDS})
        if method != "GET":
            return _json(HTTPStatus.METHOD_NOT_ALLOWED, {"message": f"{method} is not served here"}, "GET")
        if name == "config.json":
            return _json(HTTPStatus.OK, self.config())
        if name.startswith("qr/") and name.endswith(".svg"):
            return self._qr_code(name.removeprefix("qr/").removesuffix(".svg"))
        return _static(name or INDEX)

    def _qr_code(self, session_id: str) -> Response:
        if not validation.SESSION_ID_PATTERN.fullmatch(session_id):
            return _json(HTTPStatus.NOT_FOUND, {"message": "not a session id"})
        svg = io.BytesIO()
        segno.make(self.listener_link(session_id), error="m").save(
            svg, kind="svg", scale=6, border=2, light="#fff", xmldecl=False
        )
        return HTTPStatus.OK, _headers("image/svg+xml"), svg.getvalue()


def _headers(content_type: str, allow: str | None = None) -> str:
    extra = f"Allow: {allow}\r\n" if allow else ""
    return f"Content-Type: {content_type}\r\nCache-Control: no-store\r\n{extra}"


def _json(status: int, payload: dict[str, Any], allow: str | None = None) -> Response:
    return status, _headers("application/json", allow), json.dumps(payload).encode()


def _static(name: str) -> Response:
    """A file directly inside ``console/`` by its exact name; anything else (sub-paths, ``..``) is not found."""
    files = {path.name: path for path in CONSOLE_DIR.iterdir() if path.is_file()} if CONSOLE_DIR.is_dir() else {}
    path = files.get(name)
    if path is None:
        return _json(HTTPStatus.NOT_FOUND, {"message": "Not Found"})
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript", "image/svg+xml"):
        content_type += "; charset=utf-8"
    return HTTPStatus.OK, _headers(content_type), path.read_bytes()
