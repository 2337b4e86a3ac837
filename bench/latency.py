"""Handler latency per operation, called in this process on DynamoDB Local, beside the same DynamoDB
requests sent bare on the same engine through the same client.

How each floor is built: the handler first runs once under a botocore hook that records the exact requests
it sends (the template: e.g. one TransactWriteItems with four items for a join on connect). The floor of
iteration i is that same request sequence with the template's ids (connection, session, speaker, hashed
source address) replaced by iteration i's own prepared ids, sent through the handler's own boto3 client with
no handler code around it. So a floor has the same API calls, the same items, the same conditions and the
same outcome as the handler's requests: only the handler's own work (parsing, validation, building and
(de)serializing items, logging, metrics) is missing from it. ``heartbeat`` sends no request at all; its floor
is one bare GetItem (the cheapest request there is), so its ratio says what fraction of one round trip it costs.
``sendAudio`` is timed as a steady stream of chunks finds it (one conditional PutItem of a 3.2 KB chunk): the
session read it caches for ``AUDIO_SESSION_CACHE_MS`` is refreshed untimed before it lapses, and the session's
consumer lease is live, so ``starter.ensure_consumer`` never starts a consumer (a Lambda Invoke where deployed)
in the timed loop; every consumer start is counted, and one would stop the section.

Handler and floor calls alternate, and which of the two goes first alternates too, so that noise on a busy
machine falls on both alike. Events, contexts and floor requests are built before the clock starts; each
reply is checked after the clock stops. Log and metric lines are written to /dev/null (fd 1), not a terminal.
The service's rate limits and listener cap are raised for this section (hundreds of operations come from one
address into one session within a minute); the transactions keep their counter items, so their shape is
the deployed one.

    .venv/bin/python -m bench --only latency
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name

from bench.common import Row, create_tables, patched_environ, percentile, row, stdout_to_devnull
from lambda_src import runtime
from lambda_src.adapters import connections_api
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.transcription import starter
from lambda_src.app import rate_limits
from lambda_src.contract import function_settings, limits
from lambda_src.handlers import connect, disconnect, message
from local_run.dynamodb_local import endpoint_environment
from tests.support.fakes import CALLBACK_URL, FakeConnectionsApi
from tests.support.helpers import body_of, connect_event, disconnect_event, message_event

SECTION = "2 latency"
TARGET_RATIO = 1.5
TABLE_PREFIX = "bench-latency"
UNLIMITED = {
    function_settings.ENV_MAX_LISTENERS: "1000000",
    function_settings.ENV_SESSIONS_PER_USER_PER_HOUR: "1000000",
    function_settings.ENV_JOINS_PER_SESSION_PER_MINUTE: "1000000",
    function_settings.ENV_CONNECTIONS_PER_SOURCE_PER_MINUTE: "1000000",
}
_ROLE_OCTET = {"t": 1, "h": 2, "f": 3, "w": 4}  # template, handler, floor, warm-up states

Ids = dict[str, str]  # one iteration's ids; keys starting with "_" are not substituted into the floor
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
FloorCall = tuple[Callable[..., Any], dict[str, Any]]
_BYTES = "__bytes__"  # a binary attribute value in a recorded request, as JSON
AUDIO_CHUNK_BYTES = 3200  # 100 ms of the speaker app's 16 kHz 16-bit mono PCM
_SEQUENCE_BASE = {"t": 900_000_000, "h": 910_000_000, "f": 920_000_000}  # distinct, and unique in a request's text


def _to_json(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {_BYTES: base64.b64encode(value).decode()}
    raise TypeError(f"not JSON: {type(value).__name__}")


def _from_json(value: dict[str, Any]) -> Any:
    return base64.b64decode(value[_BYTES]) if set(value) == {_BYTES} else value


class LambdaContext:
    """The part of Lambda's context object the handlers read."""

    def __init__(self, function_name: str) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = function_name

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


class RequestRecorder:
    """Records the DynamoDB requests the process's client sends (operation name, parameters as sent)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[list[Any]] = []

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        recorded = json.loads(json.dumps(params, default=_to_json))
        recorded.pop("ClientRequestToken", None)  # replays are new requests: botocore gives each its own token
        self.calls.append([model.name, recorded])

    def __enter__(self) -> RequestRecorder:
        self.client.meta.events.register("before-parameter-build.dynamodb", self._record, unique_id="bench-recorder")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.meta.events.unregister("before-parameter-build.dynamodb", unique_id="bench-recorder")


def describe(calls: list[list[Any]]) -> str:
    """``GetItem + TransactWriteItems[Update, Update]``: what a floor sends."""
    parts = []
    for name, params in calls:
        items = params.get("TransactItems")
        parts.append(f"{name}[{', '.join(next(iter(item)) for item in items)}]" if items else name)
    return " + ".join(parts)


def source_hash(address: str) -> str:
    """A source address as ``lambda_src.app.rate_limits`` keys it (so the floor's counter item is its own). The
    first call reads (or creates) the secret that keys addresses, before any template is recorded, so no
    handler call measured here includes that once-per-process read."""
    return rate_limits.source_address_key(address)


def address(role: str, index: int) -> str:
    return f"10.{_ROLE_OCTET[role]}.{index // 256}.{index % 256}"


@dataclass
class Operation:
    name: str
    function: str
    handler: Handler
    prepare: Callable[[str, int], Ids]  # (role, index) -> ids of a state ready for one call
    event: Callable[[Ids], dict[str, Any]]
    expect: Callable[[dict[str, Any]], None]
    learn: Callable[[Ids], None] = lambda ids: None  # ids known only once the template call ran
    fallback_floor: Callable[[], list[list[Any]]] | None = None  # when the handler sends no request
    before: Callable[[], None] = lambda: None  # untimed, before each handler call (e.g. keep a cache as it runs)
    note: str = ""
    results: dict[str, Any] = field(default_factory=dict)


def _status_ok(response: dict[str, Any]) -> None:
    if response.get("statusCode") != 200:
        raise RuntimeError(f"expected status 200, got {response!r}")


def _reply(expected: str) -> Callable[[dict[str, Any]], None]:
    def check(response: dict[str, Any]) -> None:
        if body_of(response).get("type") != expected:
            raise RuntimeError(f"expected a {expected} reply, got {response!r}")

    return check


class Fixtures:
    """Untimed setup through the handlers themselves: sessions, listeners, a plain connection."""

    def __init__(self) -> None:
        self._count = 0

    def _next(self, kind: str) -> str:
        self._count += 1
        return f"setup{kind}{self._count:06d}="

    def session(self) -> tuple[str, str]:
        """A new session: (session id, speaker connection id)."""
        speaker = self._next("s")
        query = {"action": "createSession", "sourceLanguage": "en"}
        _status_ok(connect.handler(connect_event(query, connection_id=speaker, user_id=speaker.strip("=")), None))
        session_id = runtime.connections().session_of(speaker)
        assert session_id, "createSession left no session"
        return session_id, speaker

    def listener(self, session_id: str) -> str:
        listener = self._next("l")
        query = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
        _status_ok(connect.handler(connect_event(query, connection_id=listener), None))
        return listener

    def audio_session(self) -> tuple[str, str, int]:
        """A session whose consumer's lease is live for an hour (so ``sendAudio`` never starts one): (session id,
        speaker connection id, the speaker connection's ``connectedAt``)."""
        session_id, speaker = self.session()
        now_ms = time.time_ns() // 1_000_000
        held, _ = runtime.sessions().hold_transcriber_lease(session_id, "bench-latency-lease", now_ms + 3_600_000, None)
        assert held, "the consumer's lease was not taken"
        return session_id, speaker, now_ms

    def plain_connection(self) -> str:
        connection = self._next("p")
        _status_ok(connect.handler(connect_event({}, connection_id=connection), None))
        return connection


def operations(fixtures: Fixtures, connections_table: str) -> list[Operation]:
    create_query = {
        "action": "createSession",
        "sourceLanguage": "en",
        "qualityTier": "standard",
        "partialResults": "true",
        "minStability": "0.85",
        "maxBufferTimeout": "5.0",
    }

    def create_ids(role: str, index: int) -> Ids:
        ids = {
            "conn": f"lat{role}c{index:05d}=",
            "user": f"lat{role}u{index:05d}",
            "source": source_hash(address(role, index)),
            "_ip": address(role, index),
        }
        if role == "f":
            ids["session"] = f"floor-sess-{index:05d}"
        return ids

    def learn_session(ids: Ids) -> None:
        ids["session"] = runtime.connections().session_of(ids["conn"]) or ""

    join_session, _ = fixtures.session()
    fixtures.listener(join_session)  # this "instance" has seen the session: joins take their 1-request path

    def join_ids(role: str, index: int) -> Ids:
        return {
            "conn": f"lat{role}j{index:05d}=",
            "source": source_hash(address(role, index)),
            "_ip": address(role, index),
        }

    heartbeat_connection = fixtures.plain_connection()
    leave_session, _ = fixtures.session()
    disconnect_session, _ = fixtures.session()
    update_session, update_speaker = fixtures.session()

    def listener_of(session_id: str) -> Callable[[str, int], Ids]:
        return lambda role, index: {"conn": fixtures.listener(session_id)}

    def ending_session(role: str, index: int) -> Ids:
        session_id, speaker = fixtures.session()
        return {"session": session_id, "conn": speaker}

    audio_session, audio_speaker, audio_connected_at = fixtures.audio_session()
    chunk = base64.b64encode(bytes(AUDIO_CHUNK_BYTES)).decode()

    def keep_session_read() -> None:
        """The session read as a steady stream of chunks finds it: cached (refreshed here, untimed, once it is half
        of ``AUDIO_SESSION_CACHE_MS`` old, so no timed call pays the read)."""
        now_ms = time.time_ns() // 1_000_000
        runtime.session_reads().get(audio_session, now_ms, not_before_ms=now_ms - limits.AUDIO_SESSION_CACHE_MS // 2)

    return [
        Operation(
            "createSession on connect",
            "connect",
            connect.handler,
            create_ids,
            lambda ids: connect_event(
                create_query, connection_id=ids["conn"], user_id=ids["user"], source_ip=ids["_ip"]
            ),
            _status_ok,
            learn=learn_session,
        ),
        Operation(
            "joinSession on connect",
            "connect",
            connect.handler,
            join_ids,
            lambda ids: connect_event(
                {"action": "joinSession", "sessionId": join_session, "targetLanguage": "es"},
                connection_id=ids["conn"],
                source_ip=ids["_ip"],
            ),
            _status_ok,
        ),
        Operation(
            "heartbeat",
            "message",
            message.handler,
            lambda role, index: {},
            lambda ids: message_event(
                {"action": "heartbeat"}, connection_id=heartbeat_connection, route_key="heartbeat"
            ),
            _reply("heartbeatAck"),
            fallback_floor=lambda: [
                ["GetItem", {"TableName": connections_table, "Key": {"connectionId": {"S": heartbeat_connection}}}]
            ],
        ),
        Operation(
            "leaveSession",
            "message",
            message.handler,
            listener_of(leave_session),
            lambda ids: message_event({"action": "leaveSession"}, connection_id=ids["conn"], route_key="leaveSession"),
            _reply("sessionLeft"),
        ),
        Operation(
            "listener disconnect",
            "disconnect",
            disconnect.handler,
            listener_of(disconnect_session),
            lambda ids: disconnect_event(ids["conn"]),
            _status_ok,
        ),
        Operation(
            "updateSessionConfig",
            "message",
            message.handler,
            lambda role, index: {},
            lambda ids: message_event(
                {"action": "updateSessionConfig", "sessionId": update_session, "minStability": "0.9"},
                connection_id=update_speaker,
                route_key="updateSessionConfig",
            ),
            _reply("sessionConfigUpdated"),
        ),
        Operation(
            "sendAudio (3.2 KB chunk, session read cached)",
            "message",
            message.handler,
            lambda role, index: {"seq": str(_SEQUENCE_BASE[role] + index)},
            lambda ids: message_event(
                {"action": "sendAudio", "audioData": chunk, "sequenceNumber": int(ids["seq"])},
                connection_id=audio_speaker,
                route_key="sendAudio",
                connected_at_ms=audio_connected_at,
            ),
            _reply("audioReceived"),
            before=keep_session_read,
            note=(
                "the consumer's lease is live, so starter.ensure_consumer returns before any Invoke (none counted); at "
                f"10 chunks/s one chunk in {limits.AUDIO_SESSION_CACHE_MS // 100} also pays the session read (one "
                "GetItem), not timed here"
            ),
        ),
        Operation(
            "endSession, 0 listeners",
            "message",
            message.handler,
            ending_session,
            lambda ids: message_event(
                {"action": "endSession", "sessionId": ids["session"]}, connection_id=ids["conn"], route_key="endSession"
            ),
            _reply("sessionEnded"),
        ),
    ]


def _floor_calls(client: Any, template: list[list[Any]], template_ids: Ids, ids: Ids) -> list[FloorCall]:
    text = json.dumps(template)
    for key, old in template_ids.items():
        if not key.startswith("_") and key in ids and old:
            text = text.replace(old, ids[key])
    return [(getattr(client, xform_name(name)), params) for name, params in json.loads(text, object_hook=_from_json)]


def run_operation(operation: Operation, iterations: int, warmup: int) -> dict[str, Any]:
    """Time ``iterations`` handler calls and as many floor calls (after ``warmup`` of each), interleaved."""
    client = dynamodb.client()
    total = iterations + warmup
    template_ids = operation.prepare("t", 0)
    handler_states = [operation.prepare("h", i) for i in range(total)]
    floor_states = [operation.prepare("f", i) for i in range(total)]
    operation.before()
    with RequestRecorder(client) as recorder:
        response = operation.handler(operation.event(template_ids), LambdaContext(operation.function))
    operation.expect(response)
    operation.learn(template_ids)
    template = recorder.calls or (operation.fallback_floor() if operation.fallback_floor else [])
    if not template:
        raise RuntimeError(f"{operation.name}: no request to build a floor from")
    floors = [_floor_calls(client, template, template_ids, ids) for ids in floor_states]
    events = [operation.event(ids) for ids in handler_states]
    contexts = [LambdaContext(operation.function) for _ in range(total)]

    handler_ms: list[float] = []
    floor_ms: list[float] = []
    for index in range(total):
        for which in ("handler", "floor") if index % 2 == 0 else ("floor", "handler"):
            if which == "handler":
                operation.before()
                start = time.perf_counter_ns()
                response = operation.handler(events[index], contexts[index])
                elapsed = time.perf_counter_ns() - start
                operation.expect(response)
                samples = handler_ms
            else:
                start = time.perf_counter_ns()
                for method, params in floors[index]:
                    method(**params)
                elapsed = time.perf_counter_ns() - start
                samples = floor_ms
            if index >= warmup:
                samples.append(elapsed / 1e6)
    return {
        "floor": describe(template) + (" (the handler sends no request)" if not recorder.calls else ""),
        "handler_requests": describe(recorder.calls) or "none",
        "handler_p50": percentile(handler_ms, 50),
        "handler_p99": percentile(handler_ms, 99),
        "floor_p50": percentile(floor_ms, 50),
        "floor_p99": percentile(floor_ms, 99),
        "iterations": iterations,
    }


def measure(database: Any, iterations: int = 200, warmup: int = 20) -> list[Row]:
    """p50 and p99 of every operation's handler beside the bare requests it makes, on ``database``."""
    rows: list[Row] = []
    saved_client, saved_start = connections_api.client, starter.start
    invokes: list[str] = []

    def counted_start(session_id: str, handed_over_by: str | None = None, *, function: str | None = None) -> bool:
        invokes.append(session_id)  # a consumer start (a Lambda Invoke where deployed): none is expected here
        return False

    try:
        with (
            stdout_to_devnull(),
            patched_environ(
                {
                    **endpoint_environment(database.endpoint),
                    **UNLIMITED,
                    function_settings.ENV_CALLBACK_URL: CALLBACK_URL,
                }
            ),
        ):
            tables = create_tables(database.client(), TABLE_PREFIX)
            with patched_environ(tables):
                runtime.reset()
                fake = FakeConnectionsApi()
                connections_api.client = lambda: fake  # type: ignore[assignment]
                starter.start = counted_start
                for operation in operations(Fixtures(), tables[function_settings.ENV_CONNECTIONS_TABLE]):
                    invokes.clear()
                    result = run_operation(operation, iterations, warmup)
                    if invokes:
                        raise RuntimeError(f"{operation.name}: {len(invokes)} consumer starts (Invokes) were timed")
                    for p in (50, 99):
                        value, floor = result[f"handler_p{p}"], result[f"floor_p{p}"]
                        rows.append(
                            row(
                                SECTION,
                                f"{operation.name} p{p}",
                                round(value, 3),
                                "ms",
                                floor=round(floor, 3),
                                floor_is=f"bare {result['floor']}",
                                target=f"<= {TARGET_RATIO}x floor",
                                met=value <= TARGET_RATIO * floor,
                                iterations=iterations,
                                handler_requests=result["handler_requests"],
                                note=operation.note if p == 99 else "",
                            )
                        )
    finally:
        connections_api.client, starter.start = saved_client, saved_start
        runtime.reset()
    return rows
