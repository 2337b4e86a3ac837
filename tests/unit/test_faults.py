"""Faults of the session store and of ``@connections``, through the real handlers.

DynamoDB faults are injected where moto answers the HTTP request (``BotocoreStubber.process_request``):
that is inside botocore's retry loop, so whatever retries the service relies on (botocore's, configured
on ``dynamodb.client()``, and/or its own in ``lambda_src.adapters.repositories.dynamodb``) run exactly as against
DynamoDB, and an injected refusal never reaches moto (a throttled request writes nothing). botocore's
``Stubber`` or a wrapper around ``dynamodb.client()`` would answer before that loop (``before-call``), so
botocore's retries would never run. The tests state what a client must observe, not one retry design:
how many attempts a request gets is measured (:func:`attempts_per_request`), not assumed.
``time.sleep`` is recorded instead of slept, and every jitter is pinned to its maximum (botocore's
``ExponentialBackoff`` random -> 1.0, ``random.uniform(a, b)`` -> ``b``), so the sleeps a route can add up
to are measured exactly, never timed.

What a client must see (CONTRACT.md, error codes): a store that stays throttled or failing is
``SERVICE_UNAVAILABLE`` (503, with ``retryAfter``; on ``$connect`` the handshake status), never
``INTERNAL_ERROR``, and a refused request writes nothing. Each route is set up through the real handlers
with faults disarmed, then the process forgets its caches (``runtime.reset()``: a cold Lambda, the route
makes all its requests), then the route runs with the faults armed.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.retries import standard as botocore_retries
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.botocore_stubber import BotocoreStubber
from moto.dynamodb.models import dynamodb_backends

from lambda_src import runtime
from lambda_src.adapters import connections_api
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.translation.stand_in import StandInTranslator
from lambda_src.app.transcription.delivery import SegmentDelivery
from lambda_src.contract import limits, partial_result_fields, telemetry
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.downstream import read_partial_result_config
from lambda_src.handlers import status as status_function
from lambda_src.model import partial_results
from lambda_src.model.partial_result_processor import Segment
from lambda_src.model.partial_results import PartialResultConfig
from lambda_src.model.session import PushedStatus
from tests.support.fakes import CALLBACK_URL
from tests.support.helpers import REGION, body_of
from tests.unit.flows import (
    OWNER,
    connect_with,
    create_session,
    drop,
    handshake_done_ms,
    join,
    plain,
    send,
)
from tests.unit.test_captions import published_counts

# cdk_app/constants.py ROUTE_TIMEOUT: every WebSocket route function times out after 10 s.
ROUTE_TIMEOUT_SECONDS = 10

MINUTE_MS = 60_000


# --- fault injection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A DynamoDB error response. ``reason``: the first transaction item's cancellation code (the others
    ``None``), for a ``TransactionCanceledException``."""

    code: str
    status: int = 400
    reason: str | None = None

    def response(self, request_body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        body: dict[str, Any] = {"__type": f"com.amazonaws.dynamodb.v20120810#{self.code}"}
        if self.reason is None:
            body["message"] = f"injected {self.code}"
        else:
            items = max(1, len(request_body.get("TransactItems", [])))
            reasons = [{"Code": self.reason, "Message": f"injected {self.reason}"}] + [{"Code": "None"}] * (items - 1)
            codes = ", ".join(reason["Code"] for reason in reasons)
            body["Message"] = f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
            body["CancellationReasons"] = reasons
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected"}
        return self.status, headers, json.dumps(body)

    def __str__(self) -> str:
        return self.reason or self.code


@dataclass(frozen=True)
class AnswerLost:
    """The request reaches the store and is applied, but its answer never arrives (a read timeout): the
    caller cannot tell it from a request that was never applied."""

    def __str__(self) -> str:
        return "applied, answer lost"


APPLIED_ANSWER_LOST = AnswerLost()
PROVISIONED = Fault("ProvisionedThroughputExceededException")
THROTTLED = Fault("ThrottlingException")
SERVER_ERROR = Fault("InternalServerError", status=500)
STORE_DOWN = [PROVISIONED, THROTTLED, SERVER_ERROR]
TRANSACTION_CONFLICT = Fault("TransactionCanceledException", reason="TransactionConflict")
WRITE_CONFLICT = Fault("TransactionConflictException")  # a single-item write meeting an ongoing transaction
# DynamoDB's answer to a TransactWriteItems whose ClientRequestToken is still being processed (an earlier attempt)
IN_PROGRESS = Fault("TransactionInProgressException")
PASS = None


class StoreFaults:
    """Which DynamoDB requests of the service fail, per operation and attempt; every attempt is counted."""

    def __init__(self) -> None:
        self.armed = False
        self.attempts: Counter[str] = Counter()
        self._scripts: dict[str, list[Fault | AnswerLost | None]] = {}
        self._cycles: dict[str, tuple[list[Fault | AnswerLost | None], list[int]]] = {}
        self.applied_tokens: set[str] = set()

    def script(self, operation: str, *outcomes: Fault | AnswerLost | None) -> None:
        """The next attempts of ``operation`` answer ``outcomes`` in turn, then it works again."""
        self._scripts.setdefault(operation, []).extend(outcomes)

    def always(self, operation: str, fault: Fault) -> None:
        self.cycle(operation, fault)

    def cycle(self, operation: str, *outcomes: Fault | None) -> None:
        """Every attempt of ``operation`` answers the next of ``outcomes``, repeating forever."""
        self._cycles[operation] = (list(outcomes), [0])

    def outcome(self, operation: str) -> Fault | AnswerLost | None:
        self.attempts[operation] += 1
        script = self._scripts.get(operation)
        if script:
            return script.pop(0)
        if operation in self._cycles:
            outcomes, position = self._cycles[operation]
            outcome = outcomes[position[0] % len(outcomes)]
            position[0] += 1
            return outcome
        return PASS

    def reset(self) -> None:
        self.attempts.clear()
        self._scripts.clear()
        self._cycles.clear()

    @contextmanager
    def active(self) -> Iterator[StoreFaults]:
        self.armed = True
        try:
            yield self
        finally:
            self.armed = False


def _operation(request: Any) -> str | None:
    target = request.headers.get("X-Amz-Target")
    if isinstance(target, bytes):
        target = target.decode()
    return target.rsplit(".", 1)[-1] if target and target.startswith("DynamoDB_") else None


@pytest.fixture
def faults(tables, monkeypatch: pytest.MonkeyPatch) -> StoreFaults:
    injected = StoreFaults()
    answer = BotocoreStubber.process_request

    def once_per_token(stubber: BotocoreStubber, request: Any) -> Any:
        """DynamoDB's idempotency, which moto lacks: a TransactWriteItems repeating the ClientRequestToken of
        one that was applied is answered success and applies nothing."""
        if _operation(request) != TRANSACT:
            return answer(stubber, request)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        token = json.loads(body or "{}").get("ClientRequestToken")
        if token in injected.applied_tokens:
            return 200, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "repeat"}, "{}"
        response = answer(stubber, request)
        assert response is not None  # moto answers every DynamoDB request
        status, headers, text = response
        if token and status == 200:
            injected.applied_tokens.add(token)
        return status, headers, text

    def process_request(stubber: BotocoreStubber, request: Any) -> Any:
        operation = _operation(request) if injected.armed else None
        if operation is not None:
            fault = injected.outcome(operation)
            if isinstance(fault, AnswerLost):
                once_per_token(stubber, request)
                raise ReadTimeoutError(endpoint_url=request.url)
            if fault is not None:
                body = request.body.decode() if isinstance(request.body, bytes) else request.body
                return fault.response(json.loads(body or "{}"))
        return once_per_token(stubber, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
    return injected


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``time.sleep`` recorded instead of slept, with every jitter at its maximum."""
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    monkeypatch.setattr(random, "uniform", lambda low, high: max(low, high))
    make_backoff = botocore_retries.ExponentialBackoff.__init__

    def worst_case_backoff(self: Any, *args: Any, **kwargs: Any) -> None:
        make_backoff(self, *args, **kwargs)
        self._random = lambda: 1.0

    monkeypatch.setattr(botocore_retries.ExponentialBackoff, "__init__", worst_case_backoff)
    dynamodb.client.cache_clear()  # the next client is built with the worst-case backoff
    return recorded


def attempts_per_request(faults: StoreFaults, sleeps: list[float]) -> int:
    """How many attempts one request gets before the service gives up on a store that stays throttled
    (whoever retries: botocore or the code); measured on a read of a connection row, then forgotten."""
    faults.always(GET, THROTTLED)
    with faults.active(), pytest.raises(ServiceError):
        runtime.connections().get("probe-connection")
    attempts = faults.attempts[GET]
    faults.reset()
    sleeps.clear()
    runtime.reset()
    return attempts


# --- the store, read back ----------------------------------------------------------------------------


def store_snapshot() -> dict[str, list[str]]:
    """Every item of every moto table (read from moto's backend: no request, nothing to inject)."""
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    return {
        name: sorted(json.dumps(item.to_json(), sort_keys=True, default=str) for item in table.all_items())
        for name, table in backend.tables.items()
    }


def assert_counts_match_rows(tables) -> None:
    """The contract's invariant: each session's listenerCount equals its listener rows, never negative."""
    rows = Counter(
        item["sessionId"]
        for item in tables.connections_items()
        if item.get("role") == "listener" and "sessionId" in item
    )
    for session in tables.sessions_items():
        assert session["listenerCount"] == rows.get(session["sessionId"], 0) >= 0, session


def assert_service_unavailable(response: dict[str, Any]) -> None:
    body = body_of(response)
    assert body["type"] == "error", body
    assert body["code"] == ErrorCode.SERVICE_UNAVAILABLE.name, body
    assert response["statusCode"] == ErrorCode.SERVICE_UNAVAILABLE.status == 503
    assert isinstance(body["retryAfter"], int) and body["retryAfter"] > 0, body


def assert_succeeded(response: dict[str, Any], expected_type: str | None) -> None:
    assert response["statusCode"] == 200, response
    if expected_type is not None:
        assert body_of(response)["type"] == expected_type, response


def assert_success_or_unavailable(response: dict[str, Any], expected_type: str | None) -> None:
    if "body" in response and body_of(response).get("type") == "error":
        assert_service_unavailable(response)
    else:
        assert_succeeded(response, expected_type)


# --- the routes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """A route made ready through the real handlers; ``operations``: the DynamoDB operations it makes
    (a cold process), ``after_commit``: those it makes once its write is committed; ``reply``: the type of
    its success reply (None: a ``$connect`` / ``$disconnect`` answering 200 without a body)."""

    name: str
    prepare: Callable[[], Callable[[], dict[str, Any]]]
    operations: tuple[str, ...]
    after_commit: tuple[str, ...] = ()
    reply: str | None = None

    def __str__(self) -> str:
        return self.name


def _connect_create():
    return lambda: connect_with({"action": "createSession", "sourceLanguage": "en"}, user_id=OWNER)[1]


def _message_create():
    connection = plain(user_id=OWNER)
    return lambda: send({"action": "createSession", "sourceLanguage": "en"}, connection, user_id=OWNER)


def _connect_join():
    session_id, _speaker = create_session()
    return lambda: connect_with({"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"})[1]


def _message_join():
    session_id, _speaker = create_session()
    connection = plain()
    return lambda: send({"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}, connection)


def _leave():
    session_id, _speaker = create_session()
    listener = join(session_id)
    return lambda: send({"action": "leaveSession"}, listener)


def _disconnect_listener():
    session_id, _speaker = create_session()
    listener = join(session_id)
    return lambda: drop(listener)


def _disconnect_plain():
    connection = plain()
    return lambda: drop(connection)


def _disconnect_speaker():
    session_id, speaker = create_session()
    join(session_id)
    return lambda: drop(speaker)


def _update_config():
    _session_id, speaker = create_session()
    return lambda: send({"action": "updateSessionConfig", "minStability": 0.9}, speaker)


def _end_session():
    session_id, speaker = create_session()
    join(session_id)
    return lambda: send({"action": "endSession"}, speaker)


def _session_status():
    session_id, speaker = create_session()
    join(session_id)
    return lambda: send({"action": "getSessionStatus"}, speaker)


def _refresh_listener():
    session_id, _speaker = create_session()
    listener = join(session_id)
    query = {
        "action": "refreshConnection",
        "sessionId": session_id,
        "role": "listener",
        "targetLanguage": "es",
        "previousConnectionId": listener,
    }
    return lambda: connect_with(query)[1]


def _refresh_speaker():
    session_id, _speaker = create_session()
    query = {"action": "refreshConnection", "sessionId": session_id, "role": "speaker"}
    return lambda: connect_with(query, user_id=OWNER)[1]


def _resume():
    session_id, speaker = create_session()
    join(session_id)
    assert drop(speaker)["statusCode"] == 200
    return lambda: connect_with({"action": "resumeSession", "sessionId": session_id}, user_id=OWNER)[1]


def _speakers_socket():
    """The speaker app's URL (``sessionId``, no action): resumeSession's path."""
    session_id, speaker = create_session()
    join(session_id)
    assert drop(speaker)["statusCode"] == 200
    return lambda: connect_with({"sessionId": session_id}, user_id=OWNER)[1]


def _heartbeat_near_the_limit():
    opened = time.time_ns() // 1_000_000 - limits.REFRESH_REQUIRED_AT_MINUTES * MINUTE_MS
    connection = plain(connected_at_ms=opened)
    return lambda: send({"action": "heartbeat"}, connection, connected_at_ms=opened)


def _connect_plain():
    return lambda: connect_with(None)[1]


GET, TRANSACT, UPDATE, QUERY, PUT, DELETE = (
    "GetItem",
    "TransactWriteItems",
    "UpdateItem",
    "Query",
    "PutItem",
    "DeleteItem",
)

ROUTES = [
    Route("createSession on $connect", _connect_create, (TRANSACT,)),
    Route("createSession message", _message_create, (TRANSACT,), reply="sessionCreated"),
    Route("joinSession on $connect", _connect_join, (GET, TRANSACT)),
    Route("joinSession message", _message_join, (GET, TRANSACT), reply="sessionJoined"),
    Route("leaveSession", _leave, (GET, TRANSACT), reply="sessionLeft"),
    Route("$disconnect listener", _disconnect_listener, (GET, TRANSACT)),
    Route("$disconnect plain", _disconnect_plain, (GET, DELETE)),
    Route("$disconnect speaker", _disconnect_speaker, (GET, TRANSACT, QUERY), after_commit=(QUERY,)),
    Route("updateSessionConfig", _update_config, (GET, UPDATE), reply="sessionConfigUpdated"),
    Route("endSession", _end_session, (GET, TRANSACT, QUERY), after_commit=(QUERY,), reply="sessionEnded"),
    Route("getSessionStatus", _session_status, (GET, QUERY), reply="sessionStatus"),
    Route("refreshConnection listener", _refresh_listener, (GET, TRANSACT)),
    Route("refreshConnection speaker", _refresh_speaker, (GET, TRANSACT)),
    Route("resumeSession", _resume, (GET, TRANSACT, QUERY), after_commit=(QUERY,)),
    Route("the speaker app's $connect", _speakers_socket, (GET, TRANSACT, QUERY), after_commit=(QUERY,)),
    Route("heartbeat near the limit", _heartbeat_near_the_limit, (UPDATE,), reply="heartbeatAck"),
    Route("plain $connect", _connect_plain, (PUT,)),
]
ROUTES_BY_NAME = {route.name: route for route in ROUTES}
TRANSACT_ROUTES = [route for route in ROUTES if TRANSACT in route.operations]

# Open bugs (strict xfail: the test turns red the day the bug is fixed, so the mark is removed then).


def prepared(route: Route, gateway) -> Callable[[], dict[str, Any]]:
    """Set the route's scene up with the faults disarmed; then forget every cache (a cold process) and
    what was posted so far."""
    act = route.prepare()
    runtime.reset()
    gateway.clear()
    return act


def _params(cases: list[tuple[Any, ...]], ident: Callable[..., str]) -> list[Any]:
    return [pytest.param(*case, id=ident(*case)) for case in cases]


def _operations_with_a_fault(pick: Callable[[Route], list[str]]) -> list[tuple[Route, str, Fault]]:
    """(route, operation, fault) for each operation ``pick`` chooses, with the three faults taken in turn
    (every fault is also tried on one route by test_every_kind_of_store_failure_is_service_unavailable)."""
    cases = [(route, operation) for route in ROUTES for operation in pick(route)]
    return [(route, operation, STORE_DOWN[index % len(STORE_DOWN)]) for index, (route, operation) in enumerate(cases)]


def _ident(route: Route, *rest: Any) -> str:
    return "-".join([route.name, *(str(part) for part in rest)])


# --- a store that stays down -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route, operation, fault",
    _params(
        _operations_with_a_fault(
            lambda route: [op for op in dict.fromkeys(route.operations) if op not in route.after_commit]
        ),
        _ident,
    ),
)
def test_a_store_that_stays_down_is_service_unavailable_and_nothing_is_written(
    tables, gateway, faults, sleeps, route: Route, operation: str, fault: Fault
) -> None:
    # Given the route's scene, and one of the operations it needs throttled / failing on every attempt
    act = prepared(route, gateway)
    before = store_snapshot()
    faults.always(operation, fault)
    # When the route runs
    with faults.active():
        response = act()
    # Then the request was retried, and the client hears SERVICE_UNAVAILABLE (503, with retryAfter)
    assert faults.attempts[operation] >= 2
    assert_service_unavailable(response)
    # And nothing was written (no half-made session, row, count or rate counter), nobody was told anything
    assert store_snapshot() == before
    assert gateway.posts() == []
    # And the route gave up well inside its 10 s timeout
    assert 0 < sum(sleeps) < ROUTE_TIMEOUT_SECONDS


@pytest.mark.parametrize("fault", STORE_DOWN, ids=str)
@pytest.mark.parametrize("route_name", ["createSession on $connect", "joinSession message"])
def test_every_kind_of_store_failure_is_service_unavailable(
    tables, gateway, faults, route_name: str, fault: Fault
) -> None:
    route = ROUTES_BY_NAME[route_name]
    act = prepared(route, gateway)
    before = store_snapshot()
    faults.always(TRANSACT, fault)
    with faults.active():
        response = act()
    assert_service_unavailable(response)
    assert store_snapshot() == before


@pytest.mark.parametrize(
    "route, operation, fault",
    _params(_operations_with_a_fault(lambda route: list(route.after_commit)), _ident),
)
def test_a_store_failing_after_the_commit_is_never_an_internal_error(
    tables, gateway, faults, route: Route, operation: str, fault: Fault
) -> None:
    # (Regression: a failed Query of the listener index used to escape as a raw ClientError: INTERNAL_ERROR.)
    # Given a route whose write succeeds, and the read that follows it (the listener index) failing
    act = prepared(route, gateway)
    faults.always(operation, fault)
    with faults.active():
        response = act()
    # Then the client hears success or SERVICE_UNAVAILABLE, never INTERNAL_ERROR, and the counts hold
    assert faults.attempts[operation] >= 2
    assert_success_or_unavailable(response, route.reply)
    assert_counts_match_rows(tables)


def test_an_end_session_whose_fanout_failed_still_reaches_every_listener(tables, gateway, faults) -> None:
    # Given a session with a listener, and the listener index unreadable while its speaker ends it
    session_id, speaker = create_session()
    listener = join(session_id)
    runtime.reset()
    faults.always(QUERY, THROTTLED)
    with faults.active():
        first = send({"action": "endSession"}, speaker)
    assert_success_or_unavailable(first, "sessionEnded")
    faults.reset()
    if body_of(first)["type"] == "error":
        # The client does what retryAfter tells it: it repeats the request once the store has recovered
        assert_succeeded(send({"action": "endSession"}, speaker), "sessionEnded")
    # Then, one way or the other, the listener was told and dismissed
    assert gateway.types_to(listener) == ["sessionEnded"]
    assert listener in gateway.closed()


# --- transient faults recover inside the retries -------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_two_throttles_then_success_recover_inside_the_retries(tables, gateway, faults, sleeps, route: Route) -> None:
    # Given every request the route makes throttled twice (two kinds of throttling), then answered
    act = prepared(route, gateway)
    for operation in route.operations:
        faults.cycle(operation, PROVISIONED, THROTTLED, PASS)
    with faults.active():
        response = act()
    # Then each request was retried (3 attempts each) and the route succeeded as if nothing had happened
    assert all(attempts % 3 == 0 for attempts in faults.attempts.values()), faults.attempts
    assert_succeeded(response, route.reply)
    assert_counts_match_rows(tables)
    # And it paused between attempts (two pauses per request), well inside its timeout
    requests = sum(faults.attempts.values()) // 3
    assert requests >= len(set(route.operations))
    assert len(sleeps) == 2 * requests and all(pause > 0 for pause in sleeps), sleeps
    assert sum(sleeps) < ROUTE_TIMEOUT_SECONDS


@pytest.mark.parametrize("route_name", ["createSession on $connect", "leaveSession", "updateSessionConfig"])
def test_server_errors_are_retried_then_succeed(tables, gateway, faults, sleeps, route_name: str) -> None:
    route = ROUTES_BY_NAME[route_name]
    act = prepared(route, gateway)
    operation = route.operations[-1]
    faults.script(operation, SERVER_ERROR, SERVER_ERROR)
    with faults.active():
        response = act()
    assert faults.attempts[operation] == 3
    assert_succeeded(response, route.reply)
    assert len(sleeps) == 2 and sum(sleeps) < ROUTE_TIMEOUT_SECONDS


@pytest.mark.parametrize(
    "route_name, reason",
    [
        ("createSession on $connect", "ThrottlingError"),
        ("createSession on $connect", "ProvisionedThroughputExceeded"),
        ("joinSession on $connect", "ThrottlingError"),
        ("joinSession message", "ProvisionedThroughputExceeded"),
        ("$disconnect listener", "ThrottlingError"),
        ("resumeSession", "ThrottlingError"),
    ],
)
def test_a_transaction_cancelled_for_throttling_is_service_unavailable(
    tables, gateway, faults, route_name: str, reason: str
) -> None:
    # (Regression: DynamoDB's per-item cancellation codes ThrottlingError / ProvisionedThroughputExceeded
    # were not recognised, so such a transaction escaped as INTERNAL_ERROR and was never retried.)
    # Given a transaction DynamoDB cancels because one item's partition is throttled (a hot session item)
    act = prepared(ROUTES_BY_NAME[route_name], gateway)
    before = store_snapshot()
    faults.always(TRANSACT, Fault("TransactionCanceledException", reason=reason))
    with faults.active():
        response = act()
    # Then the client hears SERVICE_UNAVAILABLE and nothing is written
    assert_service_unavailable(response)
    assert store_snapshot() == before


@pytest.mark.parametrize("route_name", ["createSession on $connect", "joinSession message", "leaveSession"])
def test_a_transaction_cancelled_for_throttling_is_retried_then_succeeds(
    tables, gateway, faults, route_name: str
) -> None:
    route = ROUTES_BY_NAME[route_name]
    act = prepared(route, gateway)
    faults.script(
        TRANSACT,
        Fault("TransactionCanceledException", reason="ThrottlingError"),
        Fault("TransactionCanceledException", reason="ProvisionedThroughputExceeded"),
    )
    with faults.active():
        response = act()
    assert faults.attempts[TRANSACT] == 3
    assert_succeeded(response, route.reply)
    assert_counts_match_rows(tables)


# --- conflicting transactions ------------------------------------------------------------------------

CONFLICT_ROUTES = [
    ROUTES_BY_NAME[name]
    for name in (
        "createSession on $connect",
        "createSession message",
        "joinSession on $connect",
        "leaveSession",
        "$disconnect listener",
        "$disconnect speaker",
        "refreshConnection listener",
        "resumeSession",
    )
]


@pytest.mark.parametrize("route", CONFLICT_ROUTES, ids=str)
def test_a_conflicting_transaction_is_retried_then_succeeds(tables, gateway, faults, sleeps, route: Route) -> None:
    # Given a transaction that collides twice with a concurrent one, then goes through
    act = prepared(route, gateway)
    faults.script(TRANSACT, TRANSACTION_CONFLICT, TRANSACTION_CONFLICT)
    with faults.active():
        response = act()
    # Then it was repeated (a cancelled transaction wrote nothing, so that is safe) and succeeded
    assert faults.attempts[TRANSACT] == 3
    assert_succeeded(response, route.reply)
    assert_counts_match_rows(tables)
    assert len(sleeps) == 2 and sum(sleeps) < ROUTE_TIMEOUT_SECONDS


@pytest.mark.parametrize("route", CONFLICT_ROUTES, ids=str)
def test_a_transaction_that_keeps_conflicting_is_service_unavailable(
    tables, gateway, faults, sleeps, route: Route
) -> None:
    act = prepared(route, gateway)
    before = store_snapshot()
    faults.always(TRANSACT, TRANSACTION_CONFLICT)
    with faults.active():
        response = act()
    # Then it was repeated a bounded number of times, and the client hears SERVICE_UNAVAILABLE
    assert faults.attempts[TRANSACT] >= 2
    assert_service_unavailable(response)
    assert store_snapshot() == before
    # And the waiting was bounded: longer than for other refusals (a conflict is another request making
    # progress on the item), but leaving the reply its margin inside the route's timeout
    assert dynamodb.RETRY_BUDGET_SECONDS < sum(sleeps) <= dynamodb.CONFLICT_RETRY_BUDGET_SECONDS
    assert sum(sleeps) < ROUTE_TIMEOUT_SECONDS - dynamodb.REPLY_MARGIN_SECONDS


WRITES_WHOSE_ANSWER_CAN_BE_LOST = [
    "createSession on $connect",
    "createSession message",
    "joinSession on $connect",
    "joinSession message",
]


@pytest.mark.parametrize("repeat_refused", [IN_PROGRESS, THROTTLED], ids=str)
@pytest.mark.parametrize("route_name", WRITES_WHOSE_ANSWER_CAN_BE_LOST)
def test_a_write_applied_whose_answer_was_lost_succeeds_once_even_if_its_repeat_is_refused(
    tables, gateway, faults, sleeps, route_name: str, repeat_refused: Fault
) -> None:
    # (Regression: a repeat refused as in progress or throttled made the next attempt a new transaction with
    # a new token, which found its own first attempt's rows: a join answered FORBIDDEN while counted in, a
    # createSession answered FORBIDDEN while its session existed with this connection as speaker.)
    # Given a route whose transaction is applied but whose answer is lost, whose repeat is refused (still
    # in progress, or throttled), and whose next repeat reaches the store
    route = ROUTES_BY_NAME[route_name]
    act = prepared(route, gateway)
    sessions_before = {item["sessionId"] for item in tables.sessions_items()}
    faults.script(TRANSACT, APPLIED_ANSWER_LOST, repeat_refused)
    with faults.active():
        response = act()
    # Then the client hears success
    assert faults.attempts[TRANSACT] == 3
    assert_succeeded(response, route.reply)
    # And the write was applied once: one new session with its speaker, or one listener counted once
    new_sessions = [item for item in tables.sessions_items() if item["sessionId"] not in sessions_before]
    if route_name.startswith("createSession"):
        assert len(new_sessions) == 1, new_sessions
        (session,) = new_sessions
        speaker = tables.connection(session["speakerConnectionId"])
        assert speaker is not None and speaker["sessionId"] == session["sessionId"]
        assert speaker["role"] == "speaker"
    else:
        assert new_sessions == []
        (session,) = tables.sessions_items()
        listeners = [row for row in tables.connections_items() if row.get("role") == "listener"]
        assert session["listenerCount"] == len(listeners) == 1
    assert_counts_match_rows(tables)


# The routes that make one write (endSession's is a transaction: the session and its speaker's active sessions).
ONE_WRITE = {
    "updateSessionConfig": (UPDATE, WRITE_CONFLICT),
    "endSession": (TRANSACT, TRANSACTION_CONFLICT),
    "heartbeat near the limit": (UPDATE, WRITE_CONFLICT),
}


@pytest.mark.parametrize("route_name", ["updateSessionConfig", "endSession"])
def test_a_conflicting_single_write_is_retried_then_succeeds(tables, gateway, faults, sleeps, route_name: str) -> None:
    route = ROUTES_BY_NAME[route_name]
    operation, conflict = ONE_WRITE[route_name]
    act = prepared(route, gateway)
    faults.script(operation, conflict, conflict)
    with faults.active():
        response = act()
    assert faults.attempts[operation] == 3
    assert_succeeded(response, route.reply)
    assert len(sleeps) == 2 and sum(sleeps) < ROUTE_TIMEOUT_SECONDS


@pytest.mark.parametrize("route_name", list(ONE_WRITE))
def test_a_single_write_that_keeps_conflicting_is_service_unavailable(tables, gateway, faults, route_name: str) -> None:
    # (Regression: a TransactionConflictException on UpdateItem used to end as INTERNAL_ERROR.)
    act = prepared(ROUTES_BY_NAME[route_name], gateway)
    operation, conflict = ONE_WRITE[route_name]
    before = store_snapshot()
    faults.always(operation, conflict)
    with faults.active():
        response = act()
    assert_service_unavailable(response)
    assert store_snapshot() == before


def test_the_cleanup_of_many_vanished_listeners_under_throttling_fits_the_route_timeout(
    tables, gateway, faults, sleeps
) -> None:
    # Given a session whose ten listeners all vanished (a venue's network went down), ended by its speaker
    # while the store throttles every read of a connection row (the cleanups' first request)
    session_id, speaker = create_session()
    vanished = [join(session_id, "es") for _ in range(10)]
    gateway.gone.update(vanished)
    runtime.reset()
    faults.always(GET, THROTTLED)
    with faults.active():
        response = send({"action": "endSession", "sessionId": session_id}, speaker)
    # Then the speaker's operation succeeds, and all the waiting fits inside the route's 10 s timeout
    assert_succeeded(response, "sessionEnded")
    assert sum(sleeps) < ROUTE_TIMEOUT_SECONDS, f"slept {sum(sleeps):.3f} s for {len(vanished)} cleanups"


@pytest.mark.xfail(
    strict=True,
    reason="Known limitation (docs/known-limitations.md): the refresh notice is recorded before it is posted (so it "
    "goes out once without a read); when the post fails and the store then also refuses to forget the record, the "
    "notice is not repeated. The heartbeat is still acknowledged, and from 105 minutes every heartbeat "
    "carries connectionWarning, which asks for the same refresh.",
)
def test_a_refresh_notice_that_could_not_be_delivered_is_sent_again_whatever_the_store_did(
    tables, gateway, faults
) -> None:
    # Given a connection 100 minutes old whose refresh notice cannot be posted right now
    route = ROUTES_BY_NAME["heartbeat near the limit"]
    act = prepared(route, gateway)
    (connection,) = [item["connectionId"] for item in tables.connections_items()]
    gateway.failing[connection] = "LimitExceededException"
    # And the store recording the notice, then throttling the write that would forget it again
    faults.script(UPDATE, PASS)
    faults.cycle(UPDATE, THROTTLED)
    with faults.active():
        response = act()
    assert body_of(response).get("code") != ErrorCode.INTERNAL_ERROR.name
    # When the store and @connections have recovered and the client's next heartbeat arrives
    del gateway.failing[connection]
    act()
    # Then the notice is delivered after all
    assert "connectionRefreshRequired" in gateway.types_to(connection)


# --- the retries fit in the route's time budget ------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_worst_case_sleep_when_every_request_recovers_at_its_last_attempt_fits_the_route_timeout(
    tables, gateway, faults, sleeps, route: Route
) -> None:
    # (Regression: botocore's max_attempts 3 -- three retries, 7 s of backoff per request -- made a route of
    # two or three requests sleep 14-21 s here, past the 10 s timeout.)
    # Given every request of the route throttled on every attempt but the last one it would make
    act = prepared(route, gateway)
    attempts = attempts_per_request(faults, sleeps)
    for operation in route.operations:
        faults.cycle(operation, *[THROTTLED] * (attempts - 1), PASS)
    with faults.active():
        response = act()
    # Then the route succeeds, having waited out all of its retries once per request it made ...
    assert_succeeded(response, route.reply)
    requests = sum(faults.attempts.values()) // attempts
    # ... which must fit inside the 10 s timeout
    assert sum(sleeps) < ROUTE_TIMEOUT_SECONDS, f"{requests} requests x {attempts} attempts slept {sum(sleeps):.3f} s"


@pytest.mark.parametrize(
    "route_name, operation, conflict",
    [
        ("createSession on $connect", TRANSACT, TRANSACTION_CONFLICT),
        ("joinSession on $connect", TRANSACT, TRANSACTION_CONFLICT),
        ("updateSessionConfig", UPDATE, WRITE_CONFLICT),
    ],
)
def test_worst_case_sleep_of_throttled_conflicting_writes_fits_the_route_timeout(
    tables, gateway, faults, sleeps, route_name: str, operation: str, conflict: Fault
) -> None:
    # (Regression: the conflict retry used to wrap botocore's retries: 9 x 7 s + 1.3 s = 64 s of sleep.)
    # Given the hot session item both throttled and contended: each request is throttled on every attempt
    # but its last, which meets a concurrent transaction (a conflict), and so on (whoever retries what)
    act = prepared(ROUTES_BY_NAME[route_name], gateway)
    faults.cycle(operation, *[THROTTLED] * (attempts_per_request(faults, sleeps) - 1), conflict)
    with faults.active():
        act()
    # Then everything the route slept must still fit inside its 10 s timeout
    assert sum(sleeps) < ROUTE_TIMEOUT_SECONDS, f"slept {sum(sleeps):.3f} s"


# --- @connections: throttled (429) ------------------------------------------------------------------


@pytest.fixture
def throttled_gateway(tables, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The real ``@connections`` client (botocore, answered by moto), every request refused 429
    LimitExceededException (API Gateway's throttling of the management API); the methods tried, in order."""
    monkeypatch.setenv("CALLBACK_URL", CALLBACK_URL)
    runtime.reset()
    connections_api.client.cache_clear()
    tried: list[str] = []
    answer = BotocoreStubber.process_request

    def process_request(stubber: BotocoreStubber, request: Any) -> Any:
        if "/@connections/" not in request.url:
            return answer(stubber, request)
        tried.append(request.method)
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": "LimitExceededException"}
        return 429, headers, json.dumps({"message": "Rate exceeded"})

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
    yield tried
    connections_api.client.cache_clear()


def test_end_session_with_a_throttled_gateway_fits_the_route_timeout(throttled_gateway, sleeps) -> None:
    # Given a session with one listener, and @connections throttling everything
    session_id, speaker = create_session()
    join(session_id)
    # When its speaker ends it
    response = send({"action": "endSession", "sessionId": session_id}, speaker)
    # Then the end succeeds (listeners are told best effort) within the route's timeout (one listener:
    # one fan-out thread, so the sleeps add up to the wall time)
    assert_succeeded(response, "sessionEnded")
    assert {"POST", "DELETE"} <= set(throttled_gateway)
    assert sum(sleeps) < ROUTE_TIMEOUT_SECONDS, f"slept {sum(sleeps):.3f} s"


def test_heartbeat_with_a_throttled_gateway_fits_the_route_timeout(throttled_gateway, sleeps) -> None:
    # Given a connection past the warning threshold that was never asked to refresh, @connections throttling
    opened = time.time_ns() // 1_000_000 - (limits.CONNECTION_WARNING_FROM_MINUTES + 1) * MINUTE_MS
    connection = plain(connected_at_ms=opened)
    response = send({"action": "heartbeat"}, connection, connected_at_ms=opened)
    # Then the ack comes back (the notices are best effort) within the route's timeout
    assert_succeeded(response, "heartbeatAck")
    assert sum(sleeps) < ROUTE_TIMEOUT_SECONDS, f"slept {sum(sleeps):.3f} s"


# --- @connections: a vanished connection (410 Gone) --------------------------------------------------


def _count(tables, session_id: str) -> int:
    return tables.session(session_id)["listenerCount"]


def test_end_session_removes_a_vanished_listener_and_counts_it_out_once(tables, gateway) -> None:
    # Given a session with a present listener and one that vanished without its $disconnect (410, its
    # handshake long done)
    session_id, speaker = create_session()
    present, vanished = join(session_id, "es"), join(session_id, "de", handshake_done_ms())
    gateway.gone.add(vanished)
    # When its speaker ends it
    response = send({"action": "endSession"}, speaker)
    # Then the speaker's operation succeeds and the present listener is told and closed
    assert_succeeded(response, "sessionEnded")
    assert gateway.types_to(present) == ["sessionEnded"]
    assert gateway.closed() == [present]
    # And the vanished listener's row is gone and it was counted out exactly once
    assert tables.connection(vanished) is None
    assert _count(tables, session_id) == 1
    # And its late $disconnect (and the present one's) never count anyone twice
    assert drop(vanished)["statusCode"] == 200
    assert drop(present)["statusCode"] == 200
    assert _count(tables, session_id) == 0
    assert_counts_match_rows(tables)


def test_speaker_drop_announcement_removes_a_vanished_listener_and_counts_it_out_once(tables, gateway) -> None:
    session_id, speaker = create_session()
    present, vanished = join(session_id, "es"), join(session_id, "de", handshake_done_ms())
    gateway.gone.add(vanished)
    # When the speaker's connection drops and the listeners are told
    assert drop(speaker)["statusCode"] == 200
    # Then the present listener hears it, the vanished one is forgotten and counted out once
    assert gateway.types_to(present) == ["speakerDisconnected"]
    assert tables.connection(vanished) is None
    assert _count(tables, session_id) == 1
    assert drop(vanished)["statusCode"] == 200
    assert _count(tables, session_id) == 1
    assert_counts_match_rows(tables)


def test_every_listener_vanished_still_ends_the_session(tables, gateway) -> None:
    session_id, speaker = create_session()
    listeners = [join(session_id, language, handshake_done_ms()) for language in ("es", "de", "fr")]
    gateway.gone.update(listeners)
    response = send({"action": "endSession", "sessionId": session_id}, speaker)
    assert_succeeded(response, "sessionEnded")
    assert _count(tables, session_id) == 0
    assert all(tables.connection(listener) is None for listener in listeners)
    assert tables.session(session_id)["isActive"] is False


@pytest.mark.parametrize("route_name", ["endSession", "resumeSession"])
def test_a_throttled_cleanup_of_a_vanished_listener_never_fails_the_callers_operation(
    tables, gateway, faults, route_name: str
) -> None:
    # (Regression: fanout.notify_listeners let the cleanup's SERVICE_UNAVAILABLE fail the committed call.)
    # Given a session with a listener that vanished (after its speaker dropped, for the resume case)
    session_id, speaker = create_session()
    if route_name == "resumeSession":
        assert drop(speaker)["statusCode"] == 200
    vanished = join(session_id, "es", handshake_done_ms())
    gateway.gone.add(vanished)
    runtime.reset()
    if route_name == "endSession":
        act = lambda: send({"action": "endSession", "sessionId": session_id}, speaker)  # noqa: E731
        reply = "sessionEnded"
    else:
        act = lambda: connect_with({"action": "resumeSession", "sessionId": session_id}, user_id=OWNER)[1]  # noqa: E731
        reply = None
        # the resume's own read of the session must work: only the cleanup's reads fail
        faults.script(GET, PASS)
    # And the store throttling the cleanup's reads of the vanished connection's row
    faults.cycle(GET, THROTTLED)
    with faults.active():
        response = act()
    # Then the operation (already committed) still succeeds for the caller
    assert_succeeded(response, reply)


# --- a write applied whose answer was lost: its effects still follow -----------------------------------

# Each broadcast action from the state it changes (the actions before it), and the notice listeners get.
BROADCAST_CHANGES = {
    "pauseBroadcast": ([], {"action": "pauseBroadcast"}, "broadcastPaused"),
    "resumeBroadcast": ([{"action": "pauseBroadcast"}], {"action": "resumeBroadcast"}, "broadcastResumed"),
    "muteBroadcast": ([], {"action": "muteBroadcast"}, "broadcastMuted"),
    "unmuteBroadcast": ([{"action": "muteBroadcast"}], {"action": "unmuteBroadcast"}, "broadcastUnmuted"),
    "setVolume": ([], {"action": "setVolume", "volumeLevel": 0.4}, "volumeChanged"),
    "speakerStateChange": ([], {"action": "speakerStateChange", "state": {"isPaused": True}}, "speakerStateChanged"),
}


@pytest.mark.parametrize("action", sorted(BROADCAST_CHANGES))
def test_a_broadcast_change_whose_answer_was_lost_is_still_told_to_every_listener(
    tables, gateway, faults, action: str
) -> None:
    # (Regression: the repeated UpdateItem returned the state its first attempt had written, so the change
    # looked like a repeat of the speaker's and no listener was told.)
    # Given a session with two listeners, in the state the action changes
    before, body, notice = BROADCAST_CHANGES[action]
    session_id, speaker = create_session()
    listeners = [join(session_id, "es"), join(session_id, "fr")]
    for earlier in before:
        assert_succeeded(send(earlier, speaker), "broadcastState")
    runtime.reset()
    gateway.clear()
    # When the action's write is applied but its answer is lost (the request is then repeated)
    faults.script(UPDATE, APPLIED_ANSWER_LOST)
    with faults.active():
        response = send(body, speaker)
    assert faults.attempts[UPDATE] == 2
    # Then the speaker gets the state, and each listener is told the change
    assert_succeeded(response, "broadcastState")
    assert [gateway.types_to(listener) for listener in listeners] == [[notice], [notice]]


def test_a_status_push_whose_record_was_written_but_whose_answer_was_lost_is_still_posted(
    tables, gateway, faults
) -> None:
    # (Regression: the repeated record write found the record its first attempt had written, took it for
    # another batch's push, and nothing was posted: the speaker was not told of its first listener.)
    # Given a session whose first listener just joined
    session_id, speaker = create_session()
    listener = join(session_id, "es")
    row = runtime.connections().get(listener)
    assert row is not None
    records = [{"eventName": "INSERT", "dynamodb": {"NewImage": dynamodb.serialize(row.to_item())}}]
    runtime.reset()
    gateway.clear()
    # When the status function records its push, and that write is applied but its answer is lost
    faults.script(UPDATE, APPLIED_ANSWER_LOST)
    with faults.active():
        assert status_function.handler({"Records": records}, None) == {"pushed": 1}
    assert faults.attempts[UPDATE] == 2
    # Then the speaker is told once, and the record says what it was told
    pushed = [message for message in gateway.messages_to(speaker) if message["type"] == "sessionStatus"]
    assert [(m["updateReason"], m["listenerCount"], m["listenersByLanguage"]) for m in pushed] == [
        ("newLanguage", 1, {"es": 1})
    ]
    item = tables.session(session_id)
    assert (item["statusListenerCount"], item["statusLanguages"]) == (1, ["es"])


def test_a_status_record_another_batch_wrote_is_still_never_pushed_twice(tables, gateway, faults) -> None:
    # Given two batches that read the session before either recorded its push
    session_id, _speaker = create_session()
    join(session_id, "es")
    sessions = runtime.sessions()
    read = sessions.get(session_id, None)
    assert read is not None
    first = PushedStatus(1, frozenset({"es"}), 1)
    # When the first records its push, its answer lost, and the second then tries with the same content
    faults.script(UPDATE, APPLIED_ANSWER_LOST)
    with faults.active():
        assert sessions.record_status_push(read, first) is True
    # Then only the first may post: the second finds a record that is not its own
    assert sessions.record_status_push(read, first) is False


# --- downstream readers and corrupted session items --------------------------------------------------


CONFIG_ATTRIBUTES = (
    partial_result_fields.ENABLED.stored,
    partial_result_fields.STABILITY.stored,
    partial_result_fields.TIMEOUT.stored,
)


def _config_warnings(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name == partial_results.__name__
    ]


CORRUPT_CONFIG_VALUES = [
    (partial_result_fields.ENABLED.stored, "yes"),
    (partial_result_fields.ENABLED.stored, "false"),
    (partial_result_fields.ENABLED.stored, Decimal(1)),
    (partial_result_fields.ENABLED.stored, ["true"]),
    (partial_result_fields.STABILITY.stored, "abc"),
    (partial_result_fields.STABILITY.stored, "NaN"),
    (partial_result_fields.STABILITY.stored, "Infinity"),
    (partial_result_fields.STABILITY.stored, "-Infinity"),
    (partial_result_fields.STABILITY.stored, "1e999999999"),
    (partial_result_fields.STABILITY.stored, ""),
    (partial_result_fields.STABILITY.stored, True),
    (partial_result_fields.STABILITY.stored, Decimal("0.69")),
    (partial_result_fields.STABILITY.stored, Decimal("0.951")),
    (partial_result_fields.STABILITY.stored, Decimal("-0.85")),
    (partial_result_fields.STABILITY.stored, Decimal("1E+125")),
    (partial_result_fields.STABILITY.stored, {"N": "0.9"}),
    (partial_result_fields.STABILITY.stored, b"0.9"),
    (partial_result_fields.TIMEOUT.stored, Decimal("1.99")),
    (partial_result_fields.TIMEOUT.stored, Decimal("10.01")),
    (partial_result_fields.TIMEOUT.stored, "five"),
    (partial_result_fields.TIMEOUT.stored, [Decimal(5)]),
    (partial_result_fields.TIMEOUT.stored, None),
]
# Only what a deserialized item can hold (no floats, no Decimal NaN: DynamoDB numbers are finite).
IN_PYTHON_ONLY = [
    (partial_result_fields.STABILITY.stored, float("nan")),
    (partial_result_fields.STABILITY.stored, Decimal("NaN")),
    (partial_result_fields.STABILITY.stored, Decimal("sNaN")),
    (partial_result_fields.TIMEOUT.stored, Decimal("Infinity")),
    (partial_result_fields.TIMEOUT.stored, float("inf")),
    (partial_result_fields.ENABLED.stored, Decimal("sNaN")),
    (partial_result_fields.ENABLED.stored, 1),
]


@pytest.mark.parametrize("attribute, value", CORRUPT_CONFIG_VALUES + IN_PYTHON_ONLY, ids=repr)
def test_from_item_gives_the_default_and_a_warning_for_a_corrupt_config_field(
    caplog, attribute: str, value: Any
) -> None:
    caplog.set_level(logging.WARNING, logger=partial_results.__name__)
    stored = {**PartialResultConfig(False, Decimal("0.72"), Decimal("9.5")).to_item(), attribute: value}
    config = partial_results.from_item(stored)
    # The corrupt field falls back to its default, the others keep their stored values
    expected = {**stored, attribute: PartialResultConfig().to_item()[attribute]}
    assert config.to_item() == expected
    assert any(attribute in message for message in _config_warnings(caplog)), caplog.text


def test_reader_gives_the_defaults_and_a_warning_for_corrupt_items_in_the_table(tables, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=partial_results.__name__)
    for number, (attribute, value) in enumerate(CORRUPT_CONFIG_VALUES, start=100):
        session_id = f"golden-eagle-{number}"
        caplog.clear()
        tables.put_session(sessionId=session_id, **{attribute: value})
        assert read_partial_result_config(session_id) == PartialResultConfig(), (attribute, value)
        assert any(attribute in message for message in _config_warnings(caplog)), (attribute, value, caplog.text)


@pytest.mark.parametrize(
    "attribute, value",
    [(partial_result_fields.STABILITY.stored, "0.9"), (partial_result_fields.TIMEOUT.stored, " 7.5")],
    ids=repr,
)
def test_reader_treats_a_string_for_a_number_as_corrupt(caplog, attribute: str, value: str) -> None:
    caplog.set_level(logging.WARNING, logger=partial_results.__name__)
    assert partial_results.from_item({attribute: value}) == PartialResultConfig()
    assert any(attribute in message for message in _config_warnings(caplog))


def test_reader_gives_the_defaults_without_a_warning_for_missing_fields(tables, caplog) -> None:
    from tests.support.helpers import ABSENT

    caplog.set_level(logging.WARNING, logger=partial_results.__name__)
    tables.put_session(sessionId="golden-eagle-427", **dict.fromkeys(CONFIG_ATTRIBUTES, ABSENT))
    assert read_partial_result_config("golden-eagle-427") == PartialResultConfig()
    assert _config_warnings(caplog) == []


@pytest.mark.parametrize(
    "attribute, value",
    [("createdAt", "yesterday"), ("listenerCount", "many"), ("speakerGraceEndsAt", "soon"), ("listenerCount", "NaN")],
    ids=repr,
)
def test_reader_survives_a_corrupt_attribute_outside_the_configuration(tables, attribute: str, value: Any) -> None:
    stored = PartialResultConfig(False, Decimal("0.72"), Decimal("9.5"))
    tables.put_session(sessionId="golden-eagle-427", **stored.to_item(), **{attribute: value})
    assert read_partial_result_config("golden-eagle-427") == stored


def test_reader_survives_a_corrupt_expiry(tables) -> None:
    tables.put_session(sessionId="golden-eagle-427", expiresAt="tomorrow")
    assert read_partial_result_config("golden-eagle-427") in (None, PartialResultConfig())


_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            Decimal("0.70"),
            Decimal("0.95"),
            Decimal("0.85"),
            Decimal("2.0"),
            Decimal("10.0"),
            Decimal("sNaN"),
            Decimal("-0"),
            "0.8",
            "NaN",
            "inf",
            "1e999999999",
            "0x1",
            " 5 ",
            "1_0",
        ]
    ),
    st.text(max_size=20),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=st.dictionaries(st.sampled_from(CONFIG_ATTRIBUTES), _anything))
def test_from_item_never_raises_and_warns_whenever_it_falls_back(caplog, item: dict[str, Any]) -> None:
    caplog.clear()
    caplog.set_level(logging.WARNING, logger=partial_results.__name__)
    config = partial_results.from_item(item)
    # Always a usable configuration: the right types, inside the contract's bounds
    assert isinstance(config.partial_results_enabled, bool)
    for value, lower, upper in (
        (config.min_stability_threshold, limits.MIN_STABILITY_LOWER, limits.MIN_STABILITY_UPPER),
        (config.max_buffer_timeout, limits.MAX_BUFFER_TIMEOUT_LOWER, limits.MAX_BUFFER_TIMEOUT_UPPER),
    ):
        assert isinstance(value, Decimal) and value.is_finite() and lower <= value <= upper
    # And a stored value that was not used is always reported
    used = config.to_item()
    warnings = _config_warnings(caplog)
    for attribute, stored in item.items():
        kept = stored is used[attribute] or (
            attribute != partial_result_fields.ENABLED.stored
            and isinstance(stored, (int, Decimal, str))
            and not isinstance(stored, bool)
            and _same_number(stored, used[attribute])
        )
        if not kept:
            assert any(attribute in message for message in warnings), (attribute, stored, warnings)


def _same_number(stored: Any, value: Decimal) -> bool:
    try:
        number = Decimal(stored)
        return number.is_finite() and number == value
    except Exception:  # not a number at all (or a signalling NaN)
        return False


def test_a_transcript_store_that_stays_down_never_stops_the_captions(tables, gateway, faults, capsys) -> None:
    # Given a session with a Spanish listener, and a Transcripts table that stays throttled
    session_id, _speaker = create_session()
    spanish = join(session_id, "es")
    session = runtime.sessions().get(session_id, None)
    assert session is not None
    faults.always("BatchWriteItem", THROTTLED)
    capsys.readouterr()
    # When two finals are delivered
    with faults.active(), SegmentDelivery(StandInTranslator) as delivery:
        for n in range(2):
            delivery(session, Segment(f"s.r{n}-0", f"Sentence {n}.", False, None, float(n), n + 0.5), 1_000 + n)
    # Then the listener got both captions, nothing was recorded, and both segments were counted as not recorded
    captions = [m["text"] for m in gateway.messages_to(spanish) if m["type"] == "caption"]
    assert captions == ["[es] Sentence 0.", "[es] Sentence 1."]
    assert faults.attempts["BatchWriteItem"] >= 1
    assert tables.transcripts_items() == []
    assert published_counts(capsys)[telemetry.TRANSCRIPT_WRITE_FAILURES] == 2
