"""A local stand-in for API Gateway's WebSocket APIs, driven entirely by a cloud assembly.

- WebSocket server: runs the ``$connect`` authorizer (identity sources checked first, as API Gateway
  does), refuses the handshake with the status ``$connect`` returns, selects routes with the API's
  route-selection expression, sends route responses, and calls ``$disconnect``. It applies API Gateway's limits
  (``local_run.gateway_limits``): the idle timeout and the 2-hour lifetime (1001, on a clock that may run faster),
  and the frame and message sizes (1009).
- HTTP server: the ``@connections`` management API (POST/GET/DELETE; 410 Gone for unknown connections
  and for connections whose handshake has not completed; 413 for a post over 128 KB; 429 over the run's post
  rate, when it has one) and each user pool's JWKS.
- Stream triggers: polls the tables' streams in DynamoDB Local and invokes the mapped functions with
  records that pass the mapping's filter patterns.
- Lambda's Invoke API on the HTTP server: a function invoking another (``Event`` or ``RequestResponse``).
- Loopback is not a boundary a browser respects (DNS rebinding, cross-site requests), so both servers refuse
  (403) a request whose ``Host`` is not the run's own address or whose ``Origin`` is not the console's, and the
  AWS API stand-ins (Invoke, ``@connections``) answer only SigV4-signed requests that carry no browser header.
- Scheduled rules: invokes each scheduled function every interval of its rule (the first time one
  interval after the start), or every ``schedule_interval`` seconds when given, with the rule's event.
  Like EventBridge's asynchronous invocations, a run that outlasts the interval does not delay the next.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from local_run import gateway_limits, http_api
from local_run.assembly import (
    LOCAL_ACCOUNT,
    LOCAL_API_ID,
    LOCAL_REGION,
    Assembly,
    FunctionDefinition,
    ScheduledTrigger,
    matches,
)
from local_run.gateway_limits import GatewayLimits, TokenBucket

# A request head longer than this is handed to websockets' parser as it is (which refuses it).
MAX_REQUEST_HEAD_BYTES: Final = 64 * 1024
WORKERS_PER_FUNCTION = 8
# Lambda's Invoke API (what botocore's lambda client calls, at AWS_ENDPOINT_URL_LAMBDA): POST
# /2015-03-31/functions/<name or ARN>/invocations.
LAMBDA_INVOKE_PREFIX = "/2015-03-31/functions/"
LAMBDA_INVOKE_SUFFIX = "/invocations"
# What the functions write (their JSON log lines and metrics, CloudWatch's in the cloud) reaches this logger a line a
# record, at INFO: `make local` prints it on stderr as it comes; under pytest it is each test's captured log, not the
# progress output. A run with no logging set up (bench) shows only what it logs at WARNING and above: none of it.
FUNCTION_LOG: Final = logging.getLogger("local_run.functions")
FUNCTION_LOG.setLevel(logging.INFO)
# API Gateway waits up to 29 s for the $connect integration before failing the handshake.
HANDSHAKE_TIMEOUT_SECONDS = 30
# Both servers listen here only (IPv4 loopback: ``[::1]`` reaches neither).
BIND_ADDRESS: Final = "127.0.0.1"
# The names a client on this machine reaches BIND_ADDRESS by, as they appear in ``Host`` and ``Origin``. A page
# served from any other name (a DNS-rebound one included) carries that name in both, and is refused.
LOOPBACK_NAMES: Final = (BIND_ADDRESS, "localhost")
# Headers a browser adds to its requests and no AWS SDK sends: their presence marks a request from a web page.
BROWSER_HEADERS: Final = ("origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user")
# What botocore's SigV4 signing puts in ``Authorization``. A page cannot send it cross-site without a CORS
# preflight, which the stand-ins refuse like any other browser request.
SIGV4_AUTHORIZATION: Final = "AWS4-HMAC-SHA256 "


def own_hosts(port: int) -> frozenset[str]:
    """The ``Host`` values of a request to the run's server on ``port`` (lower case)."""
    return frozenset(f"{name}:{port}" for name in LOOPBACK_NAMES)


def console_origins(http_port: int) -> frozenset[str]:
    """The ``Origin`` values of the console's pages, served on ``http_port`` (lower case)."""
    return frozenset(f"http://{host}" for host in own_hosts(http_port))


def loopback_origin(origin: str) -> bool:
    """Whether ``origin`` is a page served from this machine's loopback address (any port)."""
    scheme, _, rest = origin.lower().partition("://")
    name, _, port = rest.partition(":")
    return scheme == "http" and name in LOOPBACK_NAMES and (port == "" or port.isdigit())


def foreign_request(
    host: str | None, origin: str | None, port: int, http_port: int, *, apps_origins: bool = False
) -> str | None:
    """Why a request to the server on ``port`` is refused (a ``Host`` that is not the run's own address, an
    ``Origin`` other than the console's), or None. A request without ``Origin`` (any non-browser client, a
    browser's top-level navigation) is judged by its ``Host`` alone. ``apps_origins``: the APIs the apps call (the
    WebSocket and HTTP APIs) also answer a page of any other loopback origin, so that apps served from another
    local port work (a DNS-rebound page carries its own name, not a loopback one)."""
    if (host or "").lower() not in own_hosts(port):
        return f"Host {host!r} is not this run's address"
    if origin is None or origin.lower() in console_origins(http_port):
        return None
    if apps_origins and loopback_origin(origin):
        return None
    return f"Origin {origin!r} is not the console's" + (" nor a loopback page's" if apps_origins else "")


def browser_request(headers: Mapping[str, str]) -> str | None:
    """Why a request (header names in lower case) is not an AWS SDK's, as the Invoke and ``@connections``
    stand-ins require, or None: it carries a browser's header, or is not SigV4-signed."""
    for name in BROWSER_HEADERS:
        if name in headers:
            return f"a browser's request ({name}) for an AWS API"
    if not headers.get("authorization", "").startswith(SIGV4_AUTHORIZATION):
        return "an AWS API request must be SigV4-signed"
    return None


class _BodyHoldingConnection(ServerConnection):
    """A connection of the WebSocket API's port that also takes the HTTP API's requests, bodies included.

    websockets' handshake parser refuses a request with a body (it closes the connection unanswered), so the body
    of a request is held back here: the head goes on to the parser without ``Content-Length``, the body waits in
    ``request_body`` for ``process_request``, which answers it. A WebSocket handshake has no body and passes
    unchanged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_body = b""
        self._pending: bytearray | None = bytearray()

    def data_received(self, data: bytes) -> None:
        if self._pending is None:
            super().data_received(data)
            return
        self._pending += data
        end = self._pending.find(b"\r\n\r\n")
        if end < 0:
            if len(self._pending) > MAX_REQUEST_HEAD_BYTES:
                self._pass_on(bytes(self._pending))
            return
        head, rest = bytes(self._pending[: end + 4]), bytes(self._pending[end + 4 :])
        lines = head.split(b"\r\n")
        lengths = [line.split(b":", 1)[1].strip() for line in lines if line.lower().startswith(b"content-length:")]
        length = int(lengths[0]) if lengths and lengths[0].isdigit() else 0
        if length > http_api.MAX_BODY_BYTES:
            status, body = http_api.PAYLOAD_TOO_LARGE
            self._pending = None
            self.transport.write(_serialized(http_api.answer(status, body)))
            self.transport.close()
            return
        if len(rest) < length:
            return
        self.request_body = rest[:length]
        kept = [line for line in lines if not line.lower().startswith(b"content-length:")]
        self._pass_on(b"\r\n".join(kept) + rest[length:])

    def _pass_on(self, data: bytes) -> None:
        self._pending = None
        super().data_received(data)


def _serialized(reply: http_api.HttpAnswer) -> bytes:
    head = [f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}", f"Content-Length: {len(reply.body)}"]
    head += [f"{name}: {value}" for name, value in reply.headers] + ["Connection: close", "", ""]
    return "\r\n".join(head).encode("latin-1") + reply.body


class FunctionError(Exception):
    """The function raised or timed out (what Lambda reports as a function error)."""


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process, log_lines: asyncio.Future[None]) -> None:
        self.process = process
        self.log_lines = log_lines  # its stderr, forwarded until it exits

    async def call(self, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write((json.dumps(payload, default=str) + "\n").encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise FunctionError("the function's process exited")
        return json.loads(line)


async def _forward_log(stream: asyncio.StreamReader, function: str) -> None:
    """Each line the function's process writes on stderr, to FUNCTION_LOG, until the process exits."""
    while line := await stream.readline():
        FUNCTION_LOG.info(line.decode(errors="replace").rstrip("\n"), extra={"function": function})


class FunctionRuntime:
    """Warm execution environments of one function; a new one starts when all are busy (up to a limit).
    ``invocations`` counts the invocations it was given (by a route, a stream, a schedule or the Invoke API), as
    Lambda's ``Invocations`` metric does: what a test or the bench observes of a function that answers no one."""

    def __init__(self, definition: FunctionDefinition, base_env: dict[str, str]) -> None:
        self.definition = definition
        self.env = {
            **base_env,
            **definition.environment,
            "AWS_LAMBDA_FUNCTION_NAME": definition.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(definition.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(definition.timeout_seconds),
            "LOCAL_FUNCTION_ARN": f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{definition.name}",
            "PYTHONUNBUFFERED": "1",
        }
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: list[_Worker] = []
        self._alive = 0  # workers running or starting
        self._starting = False
        self.invocations = 0

    async def _start_worker(self) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "local_run.worker",
            self.definition.handler,
            str(self.definition.code_dir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=str(Path(__file__).resolve().parent.parent),
            limit=16 * 1024 * 1024,
        )
        assert process.stdout and process.stderr
        worker = _Worker(process, asyncio.ensure_future(_forward_log(process.stderr, self.definition.name)))
        try:
            ready = await asyncio.wait_for(process.stdout.readline(), 60)
        except BaseException:
            process.kill()
            raise
        if not ready:
            await worker.log_lines  # what it wrote as it failed
            raise FunctionError(f"{self.definition.name} failed to start")
        self._all.append(worker)
        return worker

    async def warm(self) -> None:
        self._alive += 1
        try:
            self._idle.put_nowait(await self._start_worker())
        except BaseException:
            self._alive -= 1
            raise

    def _retire(self, worker: _Worker) -> None:
        """Stop ``worker`` and forget it, once: a worker can fail after :meth:`close` has already forgotten it
        (an invocation in flight when the run stops), and must not be counted out twice."""
        if worker.process.returncode is None:
            worker.process.kill()
        if worker in self._all:
            self._all.remove(worker)
            self._alive -= 1

    async def _acquire(self) -> _Worker:
        """An idle worker, or a new one when none is idle and none is already starting (up to the limit).

        Starting one at a time keeps a burst of requests from starting every worker at once, which on a
        small machine makes every one of them slow (each start imports the function's code: a cold start).
        An idle worker whose process has exited is retired, not handed out.
        """
        while not self._idle.empty():
            worker = self._idle.get_nowait()
            if worker.process.returncode is None:
                return worker
            self._retire(worker)
        if self._alive < WORKERS_PER_FUNCTION and not self._starting:
            self._alive += 1
            self._starting = True
            try:
                return await self._start_worker()
            except BaseException:
                self._alive -= 1
                raise
            finally:
                self._starting = False
        return await self._idle.get()

    async def invoke(self, event: dict[str, Any]) -> Any:
        self.invocations += 1
        worker = await self._acquire()
        try:
            reply = await worker.call({"event": event, "requestId": str(uuid.uuid4())}, self.definition.timeout_seconds)
        except (TimeoutError, FunctionError, OSError) as error:
            self._retire(worker)
            raise FunctionError(f"{self.definition.name}: {type(error).__name__}") from error
        except BaseException:  # cancelled mid-call: the worker's late reply would be read by its next caller
            self._retire(worker)
            raise
        if worker in self._all:  # not closed meanwhile
            self._idle.put_nowait(worker)
        if "error" in reply:
            raise FunctionError(reply["error"].get("message", ""))
        return reply.get("result")

    async def close(self) -> None:
        """Stop every worker. They are forgotten first, so that invocations failing meanwhile (their workers
        stopped under them) find nothing left to retire."""
        workers, self._all = self._all, []
        self._idle = asyncio.Queue()
        self._alive = 0
        for worker in workers:
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
            await worker.log_lines  # its last lines, before the run reports it stopped


@dataclass
class _Client:
    connection_id: str
    connected_at: int
    source_ip: str
    authorizer: dict[str, Any] | None
    websocket: ServerConnection | None = None
    open: bool = False  # the handshake has completed
    last_active: int = field(default_factory=lambda: int(time.time() * 1000))  # its client's last message
    # On ``time.monotonic``: when the connection was opened (its lifetime counts from there) and its client's last
    # message came (its idle time counts from there).
    opened: float = field(default_factory=time.monotonic)
    last_message: float = field(default_factory=time.monotonic)
    going_away: bool = False  # the gateway is closing it (idle, or at the end of its lifetime)


def _new_connection_id() -> str:
    return base64.b64encode(secrets.token_bytes(9)).decode().replace("/", "_").replace("+", "-") + "="


class LocalGateway:
    def __init__(
        self,
        assembly: Assembly,
        *,
        websocket_port: int,
        http_port: int,
        base_env: dict[str, str],
        streams_client_factory: Callable[[], Any] | None = None,
        jwks: Callable[[str], dict[str, Any] | None] | None = None,
        console: Callable[[str, str, bytes], tuple[int, str, bytes] | None] | None = None,
        schedule_interval: float | None = None,
        limits: GatewayLimits | None = None,
    ) -> None:
        """``schedule_interval``: seconds between runs of every scheduled rule instead of the rules' rates;
        ``console``: answers the HTTP requests it recognises (status, extra headers, body), None for the rest;
        ``limits``: the time scale and the ``@connections`` rate (default: API Gateway's own, no rate)."""
        self.assembly = assembly
        self.websocket_port = websocket_port
        self.http_port = http_port
        self.runtimes = {lid: FunctionRuntime(fn, base_env) for lid, fn in assembly.functions.items()}
        self.clients: dict[str, _Client] = {}
        self._streams_client_factory = streams_client_factory
        self._jwks = jwks
        self._console = console
        if schedule_interval is not None and schedule_interval <= 0:
            raise ValueError(f"schedule_interval must be positive, got {schedule_interval}")
        self._schedule_interval = schedule_interval
        self._servers: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._invocations: set[asyncio.Task[Any]] = set()  # scheduled runs in flight
        self._request_ids = itertools.count(1)
        self._jwt = http_api.JwtVerifier(self._issuer_keys)
        self.limits = limits or GatewayLimits()
        self._post_bucket = TokenBucket(self.limits.post_rate) if self.limits.post_rate is not None else None
        self.throttled_requests = 0  # @connections requests answered 429

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.gather(*(runtime.warm() for runtime in self.runtimes.values()))
        self._servers.append(
            await serve(
                self._session,
                BIND_ADDRESS,
                self.websocket_port,
                process_request=self._handshake,
                max_size=gateway_limits.MAX_SIZE,
                ping_interval=None,
                open_timeout=HANDSHAKE_TIMEOUT_SECONDS,
                create_connection=_BodyHoldingConnection,
            )
        )
        self._servers.append(await asyncio.start_server(self._http, BIND_ADDRESS, self.http_port))
        if self._streams_client_factory:
            for trigger in self.assembly.triggers:
                self._tasks.append(asyncio.create_task(self._poll_stream(trigger)))
        self._start_schedules()

    def set_post_rate(self, rate: float | None) -> None:
        """Limit ``@connections`` requests to ``rate`` a second from now on (a full bucket), or not at all (None)."""
        self.limits = GatewayLimits(self.limits.time_scale, rate)
        self._post_bucket = TokenBucket(rate) if rate is not None else None

    def _start_schedules(self) -> None:
        for schedule in self.assembly.schedules:
            self._tasks.append(asyncio.create_task(self._run_schedule(schedule)))

    async def stop(self) -> None:
        for task in [*self._tasks, *self._invocations]:
            task.cancel()
        self._tasks.clear()
        for server in self._servers:
            server.close()
        for runtime in self.runtimes.values():
            await runtime.close()

    @property
    def url(self) -> str:
        return f"ws://{BIND_ADDRESS}:{self.websocket_port}/{self.assembly.stage}"

    # -- events ------------------------------------------------------------------------------------
    def _request_context(self, client: _Client, route_key: str, event_type: str) -> dict[str, Any]:
        now = int(time.time() * 1000)
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "messageDirection": "IN",
            "stage": self.assembly.stage,
            "connectedAt": client.connected_at,
            "requestTimeEpoch": now,
            "requestTime": datetime.utcfromtimestamp(now / 1000).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestId": f"local-{next(self._request_ids)}",
            "extendedRequestId": str(uuid.uuid4()),
            "identity": {"sourceIp": client.source_ip},
            "domainName": "127.0.0.1",
            "connectionId": client.connection_id,
            "apiId": LOCAL_API_ID,
        }
        if client.authorizer is not None:
            context["authorizer"] = client.authorizer
        return context

    async def _invoke_route(self, route_key: str, event: dict[str, Any]) -> Any:
        route = self.assembly.routes[route_key]
        return await self.runtimes[route.function].invoke(event)

    # -- WebSocket ---------------------------------------------------------------------------------
    async def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuses a foreign ``Host`` or ``Origin`` before anything runs (API Gateway does not check ``Origin``,
        but a page that may open a speaker's connection here could use the run's dev tokens: Cross-Site
        WebSocket Hijacking), then runs the authorizer and ``$connect`` as API Gateway does."""
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        reason = foreign_request(
            request.headers.get("Host"),
            request.headers.get("Origin"),
            self.websocket_port,
            self.http_port,
            apps_origins=True,
        )
        if reason is not None:
            kind = "WebSocket handshake" if upgrade else f"HTTP API {request.method}"
            return _json_response(HTTPStatus.FORBIDDEN, _refused(kind, request.path, reason))
        url = urlsplit(request.path)
        if not upgrade and self.assembly.http_apis:
            body = connection.request_body if isinstance(connection, _BodyHoldingConnection) else b""
            return _as_response(await self._http_api(request.method, url.path, url.query, request.headers, body))
        if url.path.rstrip("/") != f"/{self.assembly.stage}":
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        query = dict(parse_qsl(url.query, keep_blank_values=True)) or None
        headers = {name: value for name, value in request.headers.raw_items()}
        client = _Client(_new_connection_id(), int(time.time() * 1000), "127.0.0.1", None)
        connect = self.assembly.routes.get("$connect")
        if connect and connect.authorizer:
            status = await self._authorize(connect.authorizer, client, query or {}, request.headers, headers)
            if status is not None:
                return _json_response(status, {"message": HTTPStatus(status).phrase})
        if connect:
            event = {
                "headers": headers,
                "multiValueHeaders": {k: [v] for k, v in headers.items()},
                "queryStringParameters": query,
                "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
                "requestContext": self._request_context(client, "$connect", "CONNECT"),
                "isBase64Encoded": False,
            }
            try:
                result = await self._invoke_route("$connect", event)
            except FunctionError:
                return _json_response(500, {"message": "Internal server error"})
            status = int((result or {}).get("statusCode", 200)) if isinstance(result, dict) else 200
            if not 200 <= status < 300:
                refusal = result.get("body") if isinstance(result, dict) else None
                return _raw_response(status, refusal or "")
        self.clients[client.connection_id] = client
        connection.local_client = client  # type: ignore[attr-defined]
        return None

    async def _authorize(
        self, authorizer: Any, client: _Client, query: dict[str, str], request_headers: Headers, headers: dict[str, str]
    ) -> int | None:
        for source in authorizer.identity_sources:
            if source.startswith("route.request.querystring."):
                present = bool(query.get(source.removeprefix("route.request.querystring.")))
            elif source.startswith("route.request.header."):
                present = source.removeprefix("route.request.header.") in request_headers
            else:
                present = True
            if not present:
                return 401  # API Gateway does not call the authorizer when an identity source is missing
        event = {
            "type": "REQUEST",
            "methodArn": (
                f"arn:aws:execute-api:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{LOCAL_API_ID}/{self.assembly.stage}/$connect"
            ),
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()},
            "stageVariables": {},
            "requestContext": self._request_context(client, "$connect", "CONNECT"),
        }
        try:
            result = await self.runtimes[authorizer.function].invoke(event)
        except FunctionError as error:
            return 401 if str(error) == "Unauthorized" else 500
        statements = (result or {}).get("policyDocument", {}).get("Statement", [])
        if not any(s.get("Effect") == "Allow" for s in statements) or any(
            s.get("Effect") == "Deny" for s in statements
        ):
            return 403
        client.authorizer = {**(result.get("context") or {}), "principalId": result.get("principalId")}
        return None

    async def _session(self, websocket: ServerConnection) -> None:
        client: _Client = websocket.local_client  # type: ignore[attr-defined]
        client.websocket = websocket
        client.open = True
        client.last_message = time.monotonic()
        timeouts = asyncio.create_task(self._close_when_due(client, websocket))
        try:
            async for frame in websocket:
                client.last_message, client.last_active = time.monotonic(), int(time.time() * 1000)
                asyncio.create_task(
                    self._message(client, frame if isinstance(frame, str) else frame.decode("utf-8", "replace"))
                )
        except ConnectionClosed:
            pass
        finally:
            client.open = False
            if not client.going_away:
                timeouts.cancel()
            self.clients.pop(client.connection_id, None)
            await self._disconnect(client, websocket)

    async def _close_when_due(self, client: _Client, websocket: ServerConnection) -> None:
        """Close the connection with 1001 once its client has sent no message for the idle timeout, or at the end
        of its lifetime, whichever comes first (on the run's scaled clock), as API Gateway does."""
        while True:
            due = min(
                client.last_message + self.limits.idle_timeout_seconds, client.opened + self.limits.lifetime_seconds
            )
            wait = due - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        client.going_away = True
        await websocket.close(*gateway_limits.GOING_AWAY)

    def _select_route(self, body: str) -> str:
        expression = self.assembly.route_selection_expression
        if expression.startswith("$request.body."):
            try:
                value: Any = json.loads(body)
                for part in expression.removeprefix("$request.body.").split("."):
                    value = value.get(part) if isinstance(value, dict) else None
            except ValueError:
                value = None
            if isinstance(value, str) and value in self.assembly.routes and not value.startswith("$"):
                return value
        return "$default"

    async def _message(self, client: _Client, body: str) -> None:
        route_key = self._select_route(body)
        route = self.assembly.routes.get(route_key)
        if route is None:
            await self._send(client, json.dumps({"message": "Forbidden", "connectionId": client.connection_id}))
            return
        context = self._request_context(client, route_key, "MESSAGE")
        context["messageId"] = str(uuid.uuid4())
        event = {"requestContext": context, "body": body, "isBase64Encoded": False}
        try:
            result = await self._invoke_route(route_key, event)
        except FunctionError:
            await self._send(
                client,
                json.dumps(
                    {
                        "message": "Internal server error",
                        "connectionId": client.connection_id,
                        "requestId": context["requestId"],
                    }
                ),
            )
            return
        if route.returns_response and isinstance(result, dict) and result.get("body") is not None:
            await self._send(client, str(result["body"]))

    async def _disconnect(self, client: _Client, websocket: ServerConnection) -> None:
        if "$disconnect" not in self.assembly.routes:
            return
        context = self._request_context(client, "$disconnect", "DISCONNECT")
        context["disconnectStatusCode"] = websocket.close_code or 1006
        context["disconnectReason"] = websocket.close_reason or ""
        with contextlib.suppress(FunctionError):  # the connection is gone either way
            await self._invoke_route(
                "$disconnect", {"headers": {}, "requestContext": context, "isBase64Encoded": False}
            )

    async def _send(self, client: _Client, data: str) -> bool:
        if not client.open or client.websocket is None:
            return False
        try:
            await client.websocket.send(data)
            return True
        except ConnectionClosed:
            return False

    # -- the HTTP APIs, on the WebSocket API's port ------------------------------------------------------
    @property
    def http_api_url(self) -> str | None:
        """The first HTTP API's base URL (None: the assembly has none)."""
        if not self.assembly.http_apis:
            return None
        stage = self.assembly.http_apis[0].stage
        prefix = "" if stage == http_api.DEFAULT_STAGE else f"/{stage}"
        return f"http://{BIND_ADDRESS}:{self.websocket_port}{prefix}"

    async def _http_api(
        self, method: str, path: str, query: str, request_headers: Headers, body: bytes
    ) -> http_api.HttpAnswer:
        """One request to the assembly's HTTP APIs, as API Gateway answers it (local_run.http_api)."""
        headers: dict[str, str] = {}
        for name, value in request_headers.raw_items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        for api in self.assembly.http_apis:
            inner = api.path_under_stage(path)
            if inner is None:
                continue
            if method == "OPTIONS" and (preflight := http_api.preflight(api.cors, headers)) is not None:
                return preflight
            found = api.route(method, inner)
            if found is None:
                continue
            route, parameters = found
            return http_api.with_cors(
                api.cors,
                headers,
                await self._http_api_route(api, route, parameters, method, path, query, headers, body),
            )
        status, message = http_api.NOT_FOUND
        return http_api.answer(status, message)

    async def _http_api_route(
        self,
        api: http_api.HttpApiDefinition,
        route: http_api.HttpRouteDefinition,
        parameters: dict[str, str],
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> http_api.HttpAnswer:
        claims = None
        if route.authorizer is not None:
            claims = self._jwt.claims(route.authorizer, headers)
            if claims is None:
                status, message = http_api.UNAUTHORIZED
                return http_api.answer(status, message, (("www-authenticate", "Bearer"),))
        event = http_api.event(
            route,
            method=method,
            raw_path=path,
            raw_query=query,
            headers=headers,
            body=body,
            path_parameters=parameters,
            claims=claims,
            stage=api.stage,
            api_id=LOCAL_API_ID,
            account_id=LOCAL_ACCOUNT,
        )
        try:
            result = await self.runtimes[route.function].invoke(event)
        except FunctionError:
            status, message = http_api.INTERNAL_ERROR
            return http_api.answer(status, message)
        return http_api.from_result(result)

    def _issuer_keys(self, issuer: str) -> dict[str, Any] | None:
        """The JWKS of a user pool's issuer served by this run (``http://127.0.0.1:HTTP_PORT/<pool>``)."""
        base = f"http://{BIND_ADDRESS}:{self.http_port}/"
        if self._jwks is None or not issuer.startswith(base):
            return None
        return self._jwks(issuer.removeprefix(base))

    # -- HTTP: @connections, JWKS and the console --------------------------------------------------
    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                status, extra, payload = await self._http_route(method, unquote(urlsplit(target).path), body, headers)
                content_type = "" if "content-type:" in extra.lower() else "Content-Type: application/json\r\n"
                writer.write(
                    f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Length: {len(payload)}\r\n"
                    f"{content_type}{extra}Connection: keep-alive\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _http_route(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str, bytes]:
        """The answer to one request; ``headers`` by lower-case name."""
        prefix = f"/{self.assembly.stage}/@connections/"
        reason = foreign_request(headers.get("host"), headers.get("origin"), self.http_port, self.http_port)
        if reason is None and (path.startswith(LAMBDA_INVOKE_PREFIX) or path.startswith(prefix)):
            reason = browser_request(headers)
        if reason is not None:
            message = _refused(method, path, reason)
            return HTTPStatus.FORBIDDEN, "", json.dumps(message).encode()
        if method == "POST" and path.startswith(LAMBDA_INVOKE_PREFIX) and path.endswith(LAMBDA_INVOKE_SUFFIX):
            name = path.removeprefix(LAMBDA_INVOKE_PREFIX).removesuffix(LAMBDA_INVOKE_SUFFIX)
            return await self._lambda_invoke(name, body, headers.get("x-amz-invocation-type", "RequestResponse"))
        if path.startswith(prefix) and method in ("POST", "GET", "DELETE"):
            return await self._connections_request(method, path.removeprefix(prefix), body)
        if path.endswith("/.well-known/jwks.json") and self._jwks:
            keys = self._jwks(path.removesuffix("/.well-known/jwks.json").strip("/"))
            if keys is not None:
                return 200, "", json.dumps(keys).encode()
        if self._console and (response := self._console(method, path, body)) is not None:
            return response
        return 404, "", b'{"message":"Not Found"}'

    async def _connections_request(self, method: str, connection_id: str, body: bytes) -> tuple[int, str, bytes]:
        """One ``@connections`` request, as API Gateway answers it: 429 over the run's rate (when it has one), 413
        for a post over 128 KB, 410 for a connection it does not hold (or whose handshake has not completed)."""
        if self._post_bucket is not None and not self._post_bucket.take():
            self.throttled_requests += 1
            return _aws_error(*gateway_limits.THROTTLED)
        if method == "POST" and len(body) > gateway_limits.MAX_POST_BYTES:
            return _aws_error(*gateway_limits.PAYLOAD_TOO_LARGE)
        gone = _aws_error(410, "GoneException", b'{"message":"Gone"}')
        client = self.clients.get(connection_id)
        if client is None or not client.open:
            return gone
        if method == "POST":
            return (200, "", b"") if await self._send(client, body.decode("utf-8")) else gone
        if method == "GET":
            # The wire format's member names (what botocore reads as ConnectedAt, Identity, LastActiveAt).
            info = {
                "connectedAt": datetime.utcfromtimestamp(client.connected_at / 1000).isoformat() + "Z",
                "identity": {"sourceIp": client.source_ip},
                "lastActiveAt": datetime.utcfromtimestamp(client.last_active / 1000).isoformat() + "Z",
            }
            return 200, "", json.dumps(info).encode()
        assert client.websocket is not None  # DELETE
        asyncio.create_task(client.websocket.close())
        return 204, "", b""

    # -- Lambda's Invoke API ------------------------------------------------------------------------
    async def _lambda_invoke(self, name: str, body: bytes, invocation_type: str) -> tuple[int, str, bytes]:
        """A function of the assembly invoked by name or ARN, as Lambda's Invoke does: ``Event`` queues it and
        answers 202 at once (the invocation's errors go to stderr, as an asynchronous invocation's go to its
        logs); ``RequestResponse`` answers with its result."""
        runtime = next(
            (r for r in self.runtimes.values() if name in (r.definition.name, r.env["LOCAL_FUNCTION_ARN"])), None
        )
        if runtime is None:
            message = json.dumps({"Type": "User", "message": f"Function not found: {name}"}).encode()
            return 404, "x-amzn-ErrorType: ResourceNotFoundException\r\n", message
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            return 400, "x-amzn-ErrorType: InvalidRequestContentException\r\n", b'{"message":"Could not parse"}'
        if invocation_type == "Event":
            task = asyncio.create_task(self._invoke_quietly(runtime, event, "asynchronously invoked"))
            self._invocations.add(task)
            task.add_done_callback(self._invocations.discard)
            return 202, "", b""
        try:
            result = await runtime.invoke(event)
        except FunctionError as error:
            return 200, "X-Amz-Function-Error: Unhandled\r\n", json.dumps({"errorMessage": str(error)}).encode()
        return 200, "", json.dumps(result).encode()

    # -- streams -----------------------------------------------------------------------------------
    async def _poll_stream(self, trigger: Any) -> None:
        """Feed one event source mapping for as long as the gateway runs; survives engine hiccups."""
        while True:
            try:
                await self._poll_stream_once(trigger)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep the trigger alive, as Lambda's poller does
                print(f"stream poller for {trigger.function}: {error!r}; retrying", file=sys.stderr)
                await asyncio.sleep(1)

    async def _poll_stream_once(self, trigger: Any) -> None:
        assert self._streams_client_factory
        table = self.assembly.tables[trigger.table]
        runtime = self.runtimes.get(trigger.function)
        if runtime is None:
            return
        streams, dynamodb = self._streams_client_factory()
        stream_arn = (await asyncio.to_thread(dynamodb.describe_table, TableName=table.name))["Table"][
            "LatestStreamArn"
        ]
        # DynamoDB Local refuses LATEST iterators on fresh shards, so read from the start and, for a LATEST
        # mapping, drop what the first read finds (written before the poller started).
        skip_backlog = trigger.starting_position != "TRIM_HORIZON"
        iterators: dict[str, str | None] = {}
        last_sequence: dict[str, str] = {}

        async def fresh_iterator(shard_id: str) -> str | None:
            kind = {"ShardIteratorType": "TRIM_HORIZON"}
            if shard_id in last_sequence:
                kind = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last_sequence[shard_id]}
            response = await asyncio.to_thread(
                streams.get_shard_iterator, StreamArn=stream_arn, ShardId=shard_id, **kind
            )
            return response.get("ShardIterator")

        # Admitted records wait up to the mapping's batching window (from the first one), or until a batch is full.
        loop = asyncio.get_running_loop()
        pending: list[dict[str, Any]] = []
        window_opened = 0.0
        while True:
            description = await asyncio.to_thread(streams.describe_stream, StreamArn=stream_arn)
            for shard in description["StreamDescription"]["Shards"]:
                if shard["ShardId"] not in iterators:
                    iterators[shard["ShardId"]] = await fresh_iterator(shard["ShardId"])
            for _ in range(200):  # re-list shards every ~10 s
                records = await self._read_shards(streams, iterators, last_sequence, fresh_iterator)
                if skip_backlog:
                    records, skip_backlog = [], False
                admitted = self._admitted(trigger, records)
                if admitted and not pending:
                    window_opened = loop.time()
                pending.extend(admitted)
                if pending and (
                    len(pending) >= trigger.batch_size or loop.time() - window_opened >= trigger.batching_window_seconds
                ):
                    self._dispatch_records(trigger, runtime, pending)
                    pending = []
                await asyncio.sleep(0.02 if not records else 0)

    @staticmethod
    async def _read_shards(
        streams: Any,
        iterators: dict[str, str | None],
        last_sequence: dict[str, str],
        fresh_iterator: Callable[[str], Awaitable[str | None]],
    ) -> list[dict[str, Any]]:
        """One GetRecords per open shard; advances ``iterators`` and remembers each shard's last sequence."""
        records: list[dict[str, Any]] = []
        for shard_id, iterator in list(iterators.items()):
            if iterator is None:
                continue
            try:
                response = await asyncio.to_thread(streams.get_records, ShardIterator=iterator, Limit=1000)
            except streams.exceptions.TrimmedDataAccessException:
                # DynamoDB Local answers this for an iterator taken while its shard was empty.
                iterators[shard_id] = await fresh_iterator(shard_id)
                continue
            iterators[shard_id] = response.get("NextShardIterator")
            if response.get("Records"):
                last_sequence[shard_id] = response["Records"][-1]["dynamodb"]["SequenceNumber"]
            records.extend(response.get("Records", []))
        return records

    @staticmethod
    def _admitted(trigger: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records (as Lambda delivers them) that the mapping's filter patterns admit."""
        events = [_lambda_record(r) for r in records]
        return [r for r in events if not trigger.patterns or any(matches(p, r) for p in trigger.patterns)]

    def _dispatch_records(self, trigger: Any, runtime: FunctionRuntime, events: list[dict[str, Any]]) -> None:
        """Invoke the function with admitted records, in batches of the mapping's size."""
        for start in range(0, len(events), trigger.batch_size):
            batch = events[start : start + trigger.batch_size]
            asyncio.create_task(self._invoke_quietly(runtime, {"Records": batch}))

    async def _invoke_quietly(self, runtime: FunctionRuntime, event: Any, trigger: str = "stream-triggered") -> None:
        try:
            await runtime.invoke(event)
        except FunctionError as error:
            print(f"{trigger} {runtime.definition.name} failed: {error}", file=sys.stderr)

    # -- scheduled rules ---------------------------------------------------------------------------
    def schedule_interval(self, schedule: ScheduledTrigger) -> float:
        return self._schedule_interval if self._schedule_interval is not None else schedule.interval_seconds

    async def _run_schedule(self, schedule: ScheduledTrigger) -> None:
        """Invoke one scheduled function every interval for as long as the gateway runs (first run after one
        interval, as a new rule's first run is); each run is asynchronous and its errors go to stderr."""
        runtime = self.runtimes.get(schedule.function)
        if runtime is None:
            return
        interval = self.schedule_interval(schedule)
        loop = asyncio.get_running_loop()
        next_run = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_run - loop.time()))
            next_run = max(next_run + interval, loop.time())  # a stalled loop does not cause a burst of runs
            try:
                event = schedule.event()
            except Exception as error:  # keep the schedule alive
                print(f"scheduled {runtime.definition.name}: {error!r}", file=sys.stderr)
                continue
            task = asyncio.create_task(self._invoke_scheduled(runtime, event))
            self._invocations.add(task)
            task.add_done_callback(self._invocations.discard)

    async def _invoke_scheduled(self, runtime: FunctionRuntime, event: Any) -> None:
        try:
            await self._invoke_quietly(runtime, event, "scheduled")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # e.g. the worker could not start; the next run tries again
            print(f"scheduled {runtime.definition.name} failed: {error!r}", file=sys.stderr)


def _aws_error(status: int, code: str, body: bytes) -> tuple[int, str, bytes]:
    """An AWS API's error answer: its status, the code botocore raises (``x-amzn-ErrorType``) and its body."""
    return status, f"x-amzn-ErrorType: {code}\r\n", body


def _lambda_record(record: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB Streams record as Lambda delivers it (JSON-safe, epoch-second creation time)."""
    data = dict(record.get("dynamodb", {}))
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        data["ApproximateCreationDateTime"] = created.timestamp()
    return {**{k: v for k, v in record.items() if k != "dynamodb"}, "dynamodb": data, "eventSource": "aws:dynamodb"}


def _refused(request: str, path: str, reason: str) -> dict[str, str]:
    """The body of a 403 for a request from where the run does not answer; the refusal is logged."""
    print(f"local gateway refused {request} {path}: {reason}", file=sys.stderr)
    return {"message": "Forbidden", "reason": reason}


def _as_response(reply: http_api.HttpAnswer) -> Response:
    headers = Headers([*reply.headers, ("Content-Length", str(len(reply.body))), ("Connection", "close")])
    return Response(reply.status, HTTPStatus(reply.status).phrase, headers, reply.body)


def _json_response(status: int, body: dict[str, Any]) -> Response:
    return _raw_response(status, json.dumps(body))


def _raw_response(status: int, body: str) -> Response:
    payload = body.encode()
    headers = Headers(
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), ("Connection", "close")]
    )
    return Response(status, HTTPStatus(status).phrase, headers, payload)
