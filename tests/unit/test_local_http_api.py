"""The local run's stand-in for API Gateway's HTTP APIs, served on the WebSocket API's port: requests with bodies
reach their function as payload format 2.0 events, the JWT authorizer refuses what API Gateway refuses before any
function runs, CORS answers pages of any loopback origin (apps served from another local port), unknown paths are
404, and the WebSocket stage on the same port still opens."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect

from local_run import assembly as cloud_assembly
from local_run import http_api
from local_run.assembly import RouteDefinition
from local_run.dev_issuer import DevIssuer
from local_run.dynamodb_local import free_port
from local_run.gateway import FunctionError, LocalGateway

POOL = "us-east-1_Pool"
CLIENT = "local-client-Pool"
APP_ORIGIN = "https://app.example"


class EchoRuntime:
    """A function answering with its status and the event it was given (or failing)."""

    def __init__(self, status: int = 201, fail: bool = False) -> None:
        self.definition = type("Definition", (), {"name": "Demo-dev-Http"})()
        self.events: list[dict[str, Any]] = []
        self.status = status
        self.fail = fail

    async def invoke(self, event: Any) -> Any:
        self.events.append(event)
        if self.fail:
            raise FunctionError("boom")
        return {"statusCode": self.status, "headers": {"x-answer": "yes"}, "body": json.dumps({"ok": True})}

    async def close(self) -> None:
        pass


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, runtime: EchoRuntime) -> AsyncIterator[tuple[LocalGateway, DevIssuer]]:
    websocket_port, http_port = free_port(), free_port()
    issuer = DevIssuer(tmp_path / "issuer", f"http://127.0.0.1:{http_port}/{POOL}", CLIENT)
    authorizer = http_api.JwtAuthorizerDefinition(issuer=issuer.issuer, audience=(CLIENT,))
    api = http_api.HttpApiDefinition(
        name="Api",
        stage=http_api.DEFAULT_STAGE,
        routes=(
            http_api.HttpRouteDefinition("POST /sessions", "HttpFn", authorizer),
            http_api.HttpRouteDefinition("GET /sessions/{sessionId}", "HttpFn", authorizer),
            http_api.HttpRouteDefinition("GET /health", "HttpFn"),
        ),
        cors=http_api.CorsDefinition(
            allow_origins=(APP_ORIGIN,),
            allow_methods=("GET", "POST"),
            allow_headers=("authorization", "content-type"),
            max_age=3600,
        ),
    )
    assembly = cloud_assembly.Assembly(
        stack_name="Demo-dev",
        stage="dev",
        route_selection_expression="$request.body.action",
        routes={"$connect": RouteDefinition("$connect", "ConnectFn", returns_response=False)},
        functions={},
        tables={},
        triggers=[],
        http_apis=[api],
    )
    gateway = LocalGateway(
        assembly,
        websocket_port=websocket_port,
        http_port=http_port,
        base_env={},
        jwks=lambda pool: issuer.jwks() if pool == POOL else None,
    )
    await gateway.start()
    gateway.runtimes = {"HttpFn": runtime, "ConnectFn": EchoRuntime(status=200)}  # type: ignore[dict-item]
    try:
        yield gateway, issuer
    finally:
        await gateway.stop()


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_a_post_with_a_body_reaches_its_function_as_a_payload_2_event_with_the_tokens_claims(tmp_path: Path) -> None:
    # Given the HTTP API on the WebSocket API's port and a speaker's token
    runtime = EchoRuntime()

    async def scenario() -> tuple[int, dict[str, str], bytes]:
        async with serving(tmp_path, runtime) as (gateway, issuer):
            token = issuer.mint("speaker-1", 300)
            body = json.dumps({"sourceLanguage": "en", "qualityTier": "standard"}).encode()
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            # When the speaker app creates its session
            return await asyncio.to_thread(request, gateway.websocket_port, "POST", "/sessions", body, headers)

    status, headers, body = asyncio.run(scenario())
    # Then the function's answer comes back whole, and its event is what API Gateway sends
    assert (status, headers["x-answer"], json.loads(body)) == (201, "yes", {"ok": True})
    (event,) = runtime.events
    assert (event["version"], event["routeKey"], event["rawPath"]) == ("2.0", "POST /sessions", "/sessions")
    assert json.loads(event["body"]) == {"sourceLanguage": "en", "qualityTier": "standard"}
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["http"]["method"] == "POST"
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert (claims["sub"], claims["aud"]) == ("speaker-1", CLIENT)


def test_path_parameters_and_the_query_reach_the_function(tmp_path: Path) -> None:
    runtime = EchoRuntime(status=200)

    async def scenario() -> int:
        async with serving(tmp_path, runtime) as (gateway, issuer):
            headers = {"Authorization": issuer.mint("speaker-1", 300)}  # API Gateway takes it without "Bearer" too
            status, _headers, _body = await asyncio.to_thread(
                request,
                gateway.websocket_port,
                "GET",
                "/sessions/golden-eagle-427?language=es&format=vtt",
                None,
                headers,
            )
            return status

    assert asyncio.run(scenario()) == 200
    (event,) = runtime.events
    assert event["routeKey"] == "GET /sessions/{sessionId}"
    assert event["pathParameters"] == {"sessionId": "golden-eagle-427"}
    assert event["queryStringParameters"] == {"language": "es", "format": "vtt"}
    assert event["rawQueryString"] == "language=es&format=vtt"
    assert "body" not in event


def test_a_request_without_a_valid_token_is_refused_401_before_any_function_runs(tmp_path: Path) -> None:
    runtime = EchoRuntime()
    body = b"{}"

    async def scenario() -> list[tuple[int, bytes]]:
        async with serving(tmp_path, runtime) as (gateway, issuer):
            stranger = DevIssuer(tmp_path / "stranger", "http://127.0.0.1:1/us-east-1_Other", CLIENT)
            other_client = DevIssuer(tmp_path / "issuer", issuer.issuer, "another-client")
            tokens = [
                None,
                "not-a-token",
                f"Bearer {issuer.mint('speaker-1', -60)}",  # expired
                f"Bearer {stranger.mint('speaker-1', 300)}",  # another issuer
                f"Bearer {other_client.mint('speaker-1', 300)}",  # another app client's audience
            ]
            answers = []
            for token in tokens:
                headers = {"Authorization": token} if token else {}
                status, _headers, answer = await asyncio.to_thread(
                    request, gateway.websocket_port, "POST", "/sessions", body, headers
                )
                answers.append((status, answer))
            return answers

    answers = asyncio.run(scenario())
    assert answers == [(401, b'{"message": "Unauthorized"}')] * 5
    assert runtime.events == []


def test_a_route_without_an_authorizer_needs_no_token_and_unknown_paths_are_404(tmp_path: Path) -> None:
    runtime = EchoRuntime(status=200)

    async def scenario() -> list[int]:
        async with serving(tmp_path, runtime) as (gateway, _issuer):
            port = gateway.websocket_port
            return [
                (await asyncio.to_thread(request, port, "GET", "/health"))[0],
                (await asyncio.to_thread(request, port, "GET", "/nothing-here"))[0],
                (await asyncio.to_thread(request, port, "DELETE", "/health"))[0],
            ]

    assert asyncio.run(scenario()) == [200, 404, 404]
    assert [event["routeKey"] for event in runtime.events] == ["GET /health"]


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:3000", APP_ORIGIN])
def test_a_page_of_a_loopback_origin_or_the_apis_own_origin_passes_cors(tmp_path: Path, origin: str) -> None:
    # Given the original speaker app served from another local port (or the API's configured origin)
    runtime = EchoRuntime(status=200)

    async def scenario() -> tuple[tuple[int, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]:
        async with serving(tmp_path, runtime) as (gateway, _issuer):
            port = gateway.websocket_port
            preflight_headers = {
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            }
            preflight = await asyncio.to_thread(request, port, "OPTIONS", "/sessions", None, preflight_headers)
            health = await asyncio.to_thread(request, port, "GET", "/health", None, {"Origin": origin})
            return preflight, health

    if origin == APP_ORIGIN:
        # (the local run answers pages of this machine only: a configured origin elsewhere is the cloud's)
        (status, _headers, _body), _health = asyncio.run(scenario())
        assert status == 403
        return
    (status, headers, _body), (health_status, health_headers, _health_body) = asyncio.run(scenario())
    # Then the gateway answers the preflight itself, and the answer may be read by the page
    assert status == 204
    assert headers["access-control-allow-origin"] == origin
    assert headers["access-control-allow-methods"] == "GET,POST"
    assert headers["access-control-allow-headers"] == "authorization,content-type"
    assert headers["access-control-max-age"] == "3600"
    assert (health_status, health_headers["access-control-allow-origin"]) == (200, origin)
    assert [event["routeKey"] for event in runtime.events] == ["GET /health"]  # the preflight ran no function


def test_a_page_of_a_foreign_origin_or_a_rebound_host_gets_no_answer_from_the_http_api(tmp_path: Path) -> None:
    runtime = EchoRuntime(status=200)

    async def scenario() -> list[int]:
        async with serving(tmp_path, runtime) as (gateway, _issuer):
            port = gateway.websocket_port
            return [
                (await asyncio.to_thread(request, port, "GET", "/health", None, {"Origin": "https://evil.example"}))[0],
                (await asyncio.to_thread(request, port, "GET", "/health", None, {"Host": f"rebound.example:{port}"}))[
                    0
                ],
            ]

    assert asyncio.run(scenario()) == [403, 403]
    assert runtime.events == []


def test_a_function_that_fails_is_answered_500_and_a_body_over_the_limit_413(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_api, "MAX_BODY_BYTES", 1000)
    runtime = EchoRuntime(fail=True)

    async def scenario() -> list[tuple[int, bytes]]:
        async with serving(tmp_path, runtime) as (gateway, issuer):
            headers = {"Authorization": f"Bearer {issuer.mint('speaker-1', 300)}"}
            port = gateway.websocket_port
            failed = await asyncio.to_thread(request, port, "POST", "/sessions", b"{}", headers)
            large = await asyncio.to_thread(request, port, "POST", "/sessions", b"x" * 1001, headers)
            return [(failed[0], failed[2]), (large[0], large[2])]

    assert asyncio.run(scenario()) == [
        (500, b'{"message": "Internal Server Error"}'),
        (413, b'{"message": "Request Entity Too Large"}'),
    ]
    assert len(runtime.events) == 1


def test_the_websocket_stage_on_the_same_port_still_opens(tmp_path: Path) -> None:
    async def scenario() -> bool:
        async with serving(tmp_path, EchoRuntime()) as (gateway, _issuer):
            url = f"ws://127.0.0.1:{gateway.websocket_port}/dev"
            async with ws_connect(url, open_timeout=10) as socket:
                return socket.protocol.state.name == "OPEN"

    assert asyncio.run(scenario())
