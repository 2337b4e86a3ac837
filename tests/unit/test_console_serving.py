"""What the local run's web console serves: its files with their content types and nothing beside them, the
pages' configuration from the one table of settings, the listener link's QR code, and the dev token on POST only;
and, through the gateway's own servers, to whom: the run's own Host and the console's own Origin (or none), never
a page on another name or origin (DNS rebinding, cross-site requests, Cross-Site WebSocket Hijacking)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from http import HTTPStatus

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from lambda_src.contract import http_api, partial_result_fields, wire
from local_run import assembly as cloud_assembly
from local_run import console
from local_run.assembly import RouteDefinition
from local_run.console import Console
from local_run.dynamodb_local import free_port
from local_run.gateway import LocalGateway
from tests.unit.test_local_schedules import FakeRuntime

WEBSOCKET_URL = "ws://127.0.0.1:9000/dev"
HTTP_API_URL = "http://127.0.0.1:9000/dev"


@pytest.fixture()
def served() -> Console:
    return Console(
        websocket_url=WEBSOCKET_URL,
        http_url="http://127.0.0.1:9001",
        mint_token=lambda seconds: f"token-{seconds}",
        http_api_url=HTTP_API_URL + "/",
    )


def _get(served: Console, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    response = served.respond(method, path, b"")
    assert response is not None, path
    status, extra, body = response
    headers = dict(line.split(": ", 1) for line in extra.split("\r\n") if line)
    return status, {name.lower(): value for name, value in headers.items()}, body


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("speaker.html", "text/html"),
        ("listener.html", "text/html"),
        ("console.js", "text/javascript"),
        ("playback.js", "text/javascript"),
        ("capture-worklet.js", "text/javascript"),
        ("console.css", "text/css"),
    ],
)
def test_each_console_file_is_served_with_its_content_type(served: Console, name: str, content_type: str) -> None:
    status, headers, body = _get(served, f"/console/{name}")
    assert status == HTTPStatus.OK
    assert headers["content-type"].split(";")[0] == content_type
    assert body == (console.CONSOLE_DIR / name).read_bytes()


def test_the_console_root_is_the_index_linking_both_pages(served: Console) -> None:
    status, _, body = _get(served, "/console/")
    assert status == HTTPStatus.OK
    assert b'href="speaker.html"' in body and b'href="listener.html"' in body
    status, headers, _ = _get(served, "/console")
    assert (status, headers["location"]) == (HTTPStatus.PERMANENT_REDIRECT, "/console/")


@pytest.mark.parametrize(
    "path", ["/console/../run.py", "/console/../../README.md", "/console/qr/../config.json.svg", "/console/nothing.js"]
)
def test_nothing_outside_the_console_folder_is_served(served: Console, path: str) -> None:
    status, _, _ = _get(served, path)
    assert status == HTTPStatus.NOT_FOUND


def test_other_paths_are_left_to_the_gateway(served: Console) -> None:
    assert served.respond("GET", "/dev/@connections/abc", b"") is None
    assert served.respond("GET", "/consoles/speaker.html", b"") is None


def test_the_configuration_carries_every_settings_bounds_and_default_from_the_one_table(served: Console) -> None:
    status, headers, body = _get(served, "/console/config.json")
    config = json.loads(body)
    assert (status, headers["content-type"]) == (HTTPStatus.OK, "application/json")
    assert config["websocketUrl"] == WEBSOCKET_URL
    assert config["consoleUrl"] == "http://127.0.0.1:9001/console/"
    by_name = {setting["request"]: setting for setting in config["settings"]}
    assert list(by_name) == list(partial_result_fields.REQUEST_NAMES)
    for field in partial_result_fields.FIELDS:
        setting = by_name[field.request]
        assert setting["message"] == field.stored
        if field.kind is bool:
            assert (setting["kind"], setting["default"]) == ("boolean", field.default)
        else:
            lower, upper = field.bounds
            assert setting["kind"] == "number"
            assert (setting["lower"], setting["upper"], setting["default"]) == (
                float(lower),
                float(upper),
                float(field.default),
            )
            # The step lands on the bounds and the default, so the control's arrows reach each of them
            step = Decimal(str(setting["step"]))
            assert all(value % step == 0 for value in (lower, upper, field.default))


def test_the_configuration_tells_the_speaker_page_where_and_how_to_fetch_its_transcripts(served: Console) -> None:
    # Given the console of a run whose HTTP API is at HTTP_API_URL
    config = json.loads(_get(served, "/console/config.json")[2])

    # Then the page learns the API's base URL (no trailing slash, so the route's path is appended as it is), the
    # transcript route and its parameters' names, and every format the API renders, in its order, each labelled
    assert config["httpApiUrl"] == HTTP_API_URL
    transcript = config["transcript"]
    assert transcript["path"] == http_api.GET_TRANSCRIPT.path == http_api.DELETE_TRANSCRIPT.path
    assert f"{{{transcript['sessionIdParameter']}}}" in transcript["path"]
    assert (transcript["languageParameter"], transcript["formatParameter"]) == (
        wire.TRANSCRIPT_LANGUAGE,
        wire.TRANSCRIPT_FORMAT,
    )
    assert [entry["format"] for entry in transcript["formats"]] == list(wire.TRANSCRIPT_FORMATS)
    assert [entry["label"] for entry in transcript["formats"]] == ["WebVTT", "SRT", "Text"]


def test_a_run_without_an_http_api_offers_no_transcript_links() -> None:
    # Given a console whose stack has no HTTP API
    served = Console(websocket_url=WEBSOCKET_URL, http_url="http://127.0.0.1:9001", mint_token=lambda _: "token")

    # Then config.json says so (the page shows no "Transcript to take home" section)
    assert json.loads(_get(served, "/console/config.json")[2])["httpApiUrl"] is None


def test_the_speaker_page_spells_no_transcript_format() -> None:
    # The formats and the route come from config.json only: a second list in the page would go stale
    page = (console.CONSOLE_DIR / "speaker.js").read_text() + (console.CONSOLE_DIR / "speaker.html").read_text()
    for fmt in wire.TRANSCRIPT_FORMATS:
        assert f'"{fmt}"' not in page and f"'{fmt}'" not in page
    assert "/transcript" not in page


def test_the_qr_code_is_an_svg_of_the_sessions_listener_link(served: Console) -> None:
    status, headers, body = _get(served, "/console/qr/golden-eagle-427.svg")
    assert (status, headers["content-type"].split(";")[0]) == (HTTPStatus.OK, "image/svg+xml")
    assert body.startswith(b"<svg")
    assert body != _get(served, "/console/qr/golden-eagle-428.svg")[2]
    assert (
        served.listener_link("golden-eagle-427")
        == "http://127.0.0.1:9001/console/listener.html?session=golden-eagle-427"
    )
    assert _get(served, "/console/qr/not a session.svg")[0] == HTTPStatus.NOT_FOUND


def test_the_dev_token_is_minted_on_post_only(served: Console) -> None:
    status, _, body = _get(served, "/console/dev-token", method="POST")
    assert (status, json.loads(body)["token"]) == (HTTPStatus.OK, f"token-{console.DEV_TOKEN_SECONDS}")
    status, headers, _ = _get(served, "/console/dev-token")
    assert (status, headers["allow"]) == (HTTPStatus.METHOD_NOT_ALLOWED, "POST")
    assert _get(served, "/console/config.json", method="POST")[0] == HTTPStatus.METHOD_NOT_ALLOWED


def test_the_servers_root_redirects_to_the_console(served: Console) -> None:
    # `make local` prints the server's root as where the console is served
    status, headers, _ = _get(served, "/")
    assert (status, headers["location"]) == (HTTPStatus.PERMANENT_REDIRECT, "/console/")


# -- through the gateway's own servers: who may ask ----------------------------------------------------------------
ATTACKER = "https://attacker.example"


@contextlib.asynccontextmanager
async def gateway_serving_the_console(minted: list[int]) -> AsyncIterator[tuple[LocalGateway, FakeRuntime]]:
    """The gateway's two servers on free loopback ports, with the console (its tokens recorded in ``minted``) and
    a ``$connect`` route whose function records each handshake it is asked about."""
    websocket_port, http_port = free_port(), free_port()
    assembly = cloud_assembly.Assembly(
        stack_name="Demo-dev",
        stage="dev",
        route_selection_expression="$request.body.action",
        routes={"$connect": RouteDefinition("$connect", "ConnectFn", returns_response=False)},
        functions={},
        tables={},
        triggers=[],
    )

    def mint_token(seconds: int) -> str:
        minted.append(seconds)
        return "minted-token"

    served = Console(
        websocket_url=f"ws://127.0.0.1:{websocket_port}/dev",
        http_url=f"http://127.0.0.1:{http_port}",
        mint_token=mint_token,
    )
    gateway = LocalGateway(
        assembly, websocket_port=websocket_port, http_port=http_port, base_env={}, console=served.respond
    )
    await gateway.start()
    connect = FakeRuntime("Demo-dev-Connect")
    gateway.runtimes = {"ConnectFn": connect}  # type: ignore[dict-item]
    try:
        yield gateway, connect
    finally:
        await gateway.stop()


async def _request(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One HTTP request to the server on ``port`` over loopback, with exactly ``headers`` (``Host`` among them)."""

    def send() -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(method, path, body=b"", headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    return await asyncio.to_thread(send)


@pytest.mark.parametrize("rebound", ["rebound.example", "127.0.0.1.nip.io"])
def test_a_page_on_a_dns_rebound_name_can_neither_mint_nor_read_a_dev_token(rebound: str) -> None:
    # Given the local run's HTTP server, reached by a page from a name that resolves to 127.0.0.1 (DNS rebinding):
    # the browser sends that name in Host, and the page's Origin is its own, so it is "same origin" to the browser
    minted: list[int] = []

    async def scenario() -> list[tuple[int, bytes]]:
        async with gateway_serving_the_console(minted) as (gateway, _):
            host = f"{rebound}:{gateway.http_port}"
            return [
                await _request(
                    gateway.http_port, "POST", "/console/dev-token", {"Host": host, "Origin": f"http://{host}"}
                ),
                await _request(gateway.http_port, "POST", "/console/dev-token", {"Host": host}),
                await _request(gateway.http_port, "GET", "/console/config.json", {"Host": host}),
            ]

    answers = asyncio.run(scenario())
    # Then every request is refused with 403 and its reason, and no token is minted
    assert [status for status, _ in answers] == [HTTPStatus.FORBIDDEN] * 3
    assert all(json.loads(body)["reason"].startswith("Host ") for _, body in answers)
    assert minted == []


@pytest.mark.parametrize("origin", [ATTACKER, "null", "http://127.0.0.1:1"])
def test_a_foreign_origin_cannot_post_to_the_console(origin: str) -> None:
    # Given a page elsewhere (or a sandboxed one, Origin null) posting to the console's address
    minted: list[int] = []

    async def scenario() -> tuple[int, bytes]:
        async with gateway_serving_the_console(minted) as (gateway, _):
            headers = {"Host": f"127.0.0.1:{gateway.http_port}", "Origin": origin, "Content-Type": "text/plain"}
            return await _request(gateway.http_port, "POST", "/console/dev-token", headers)

    status, body = asyncio.run(scenario())
    # Then it is refused and nothing is minted
    assert (status, json.loads(body)["reason"]) == (HTTPStatus.FORBIDDEN, f"Origin {origin!r} is not the console's")
    assert minted == []


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST"])
def test_the_consoles_own_pages_and_clients_without_origin_get_their_answers(name: str) -> None:
    # Given the console's page opened at one of the run's own names, and a command-line client (no Origin)
    minted: list[int] = []

    async def scenario() -> list[tuple[int, bytes]]:
        async with gateway_serving_the_console(minted) as (gateway, _):
            host = f"{name}:{gateway.http_port}"
            return [
                await _request(
                    gateway.http_port, "POST", "/console/dev-token", {"Host": host, "Origin": f"http://{host}"}
                ),
                await _request(gateway.http_port, "POST", "/console/dev-token", {"Host": host}),
                await _request(
                    gateway.http_port, "GET", "/console/config.json", {"Host": host, "Origin": f"http://{host}"}
                ),
            ]

    (page, command_line, config) = asyncio.run(scenario())
    # Then each is answered: two tokens minted, and the configuration
    assert [page[0], command_line[0], config[0]] == [HTTPStatus.OK] * 3
    assert json.loads(page[1])["token"] == "minted-token" and len(minted) == 2
    assert json.loads(config[1])["websocketUrl"].startswith("ws://127.0.0.1:")


async def _handshake(gateway: LocalGateway, *, origin: Origin | None, host: str = "127.0.0.1") -> int:
    """The status of a WebSocket handshake to the gateway (101 when it opens), sent with ``origin`` and with
    ``host`` in the URL (so in ``Host``) while the connection goes to the gateway's loopback port."""
    url = f"ws://{host}:{gateway.websocket_port}/dev"
    try:
        async with ws_connect(
            url, origin=origin, host="127.0.0.1", port=gateway.websocket_port, proxy=None, open_timeout=10
        ):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def test_a_websocket_handshake_from_a_foreign_origin_or_host_is_refused_before_connect_runs() -> None:
    # Given the gateway, a page elsewhere opening a connection to it (Cross-Site WebSocket Hijacking), and a page
    # on a DNS-rebound name
    async def scenario() -> tuple[list[int], FakeRuntime]:
        async with gateway_serving_the_console([]) as (gateway, connect):
            statuses = [
                await _handshake(gateway, origin=Origin(ATTACKER)),
                await _handshake(gateway, origin=None, host="rebound.example"),
                await _handshake(gateway, origin=Origin("null")),
                await _handshake(gateway, origin=Origin(f"http://localhost.attacker.example:{gateway.http_port}")),
            ]
            return statuses, connect

    statuses, connect = asyncio.run(scenario())
    # Then every handshake is refused with 403, and $connect never ran
    assert statuses == [HTTPStatus.FORBIDDEN] * 4
    assert connect.calls == []


def test_an_app_served_from_another_loopback_port_opens_a_websocket_connection() -> None:
    # Given the original speaker app served by its own dev server on this machine (another loopback port)
    async def scenario() -> tuple[list[int], FakeRuntime]:
        async with gateway_serving_the_console([]) as (gateway, connect):
            statuses = [
                await _handshake(gateway, origin=Origin("http://localhost:5173")),
                await _handshake(gateway, origin=Origin("http://127.0.0.1:3000")),
            ]
            return statuses, connect

    statuses, connect = asyncio.run(scenario())
    # Then its connections open, through $connect (the console's dev token stays the console's own: see above)
    assert statuses == [101, 101]
    assert len(connect.calls) == 2


def test_the_consoles_pages_and_clients_without_origin_open_websocket_connections() -> None:
    # Given the console's page (Origin: the HTTP server's own address) and a non-browser client (no Origin)
    async def scenario() -> tuple[list[int], FakeRuntime]:
        async with gateway_serving_the_console([]) as (gateway, connect):
            page = Origin(f"http://localhost:{gateway.http_port}")
            statuses = [
                await _handshake(gateway, origin=Origin(f"http://127.0.0.1:{gateway.http_port}")),
                await _handshake(gateway, origin=page, host="localhost"),
                await _handshake(gateway, origin=None),
            ]
            return statuses, connect

    statuses, connect = asyncio.run(scenario())
    # Then each opens, through $connect
    assert statuses == [101, 101, 101]
    assert len(connect.calls) == 3
