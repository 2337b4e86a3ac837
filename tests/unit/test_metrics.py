"""Business metrics as CloudWatch sees them: the EMF lines Powertools prints on stdout, read back and checked
against ``lambda_src.platform.metrics`` (the module the stack's alarms are built from).

Each metric must carry exactly its dimension set (the defaults ``service`` and ``environment``, plus its one
extra dimension if it has one), under the one namespace, with values that are never ids; the metrics of an
invocation are published once, at its end; and publishing them costs no AWS request.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import botocore.client
import pytest

from lambda_src.adapters.repositories import sessions as sessions_repository
from lambda_src.app import connections
from lambda_src.contract import function_settings, telemetry, wire
from lambda_src.handlers import authorizer, sweeper
from lambda_src.platform import metrics
from tests.support.helpers import body_of
from tests.unit.flows import (
    Clock,
    connect_with,
    create_session,
    deliver_disconnects,
    drop,
    error_of,
    handshake_done_ms,
    join,
    plain,
    send,
)

ENVIRONMENT = "unit-env"
DEFAULTS = {telemetry.SERVICE_DIMENSION: telemetry.SERVICE_NAME, telemetry.ENVIRONMENT_DIMENSION: ENVIRONMENT}


class Emf:
    """The EMF lines printed since the last read, and what they add up to."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self.lines: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Every EMF line printed since the previous read (other stdout output is ignored)."""
        out = self._capsys.readouterr().out
        new = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
        self.lines.extend(new)
        return new

    def counts(self, lines: list[dict[str, Any]] | None = None) -> Counter[tuple[str, str | None]]:
        """(count metric, value of its extra dimension or None) -> how many were counted (latencies and gauges
        are read with :meth:`values`)."""
        totals: Counter[tuple[str, str | None]] = Counter()
        for line in self.read() if lines is None else lines:
            for directive in line["_aws"]["CloudWatchMetrics"]:
                for definition in directive["Metrics"]:
                    name = definition["Name"]
                    if name not in telemetry.COUNTS:
                        continue
                    extra = telemetry.EXTRA_DIMENSION[name]
                    values = line[name] if isinstance(line[name], list) else [line[name]]
                    totals[(name, line[extra] if extra else None)] += int(sum(values))
        return totals

    def values(self, name: str, lines: list[dict[str, Any]] | None = None) -> list[float]:
        """Every value published for the (latency or gauge) metric ``name``, in order."""
        found: list[float] = []
        for line in self.read() if lines is None else lines:
            if any(d["Name"] == name for directive in line["_aws"]["CloudWatchMetrics"] for d in directive["Metrics"]):
                found.extend(line[name] if isinstance(line[name], list) else [line[name]])
        return found


@pytest.fixture
def emf(capsys: pytest.CaptureFixture[str]) -> Iterator[Emf]:
    """EMF output of this test, with the environment the stack would name and nothing left unpublished."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(telemetry.ENV_ENVIRONMENT_NAME, ENVIRONMENT)
        metrics.reset()
        capsys.readouterr()
        yield Emf(capsys)
    metrics.reset()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock.install(monkeypatch)


def assert_well_formed(line: dict[str, Any]) -> None:
    """One EMF line: the namespace, metrics of lambda_src.platform.metrics only, each with exactly its dimension set."""
    directives = line["_aws"]["CloudWatchMetrics"]
    assert len(directives) == 1, line
    (directive,) = directives
    assert directive["Namespace"] == telemetry.NAMESPACE
    names = [definition["Name"] for definition in directive["Metrics"]]
    assert names and set(names) <= set(telemetry.EXTRA_DIMENSION), names
    # Each with its unit: milliseconds for the latencies, Count for the counts and the gauges
    for definition in directive["Metrics"]:
        expected_unit = "Milliseconds" if definition["Name"] in telemetry.LATENCIES else "Count"
        assert definition["Unit"] == expected_unit == metrics.UNITS[definition["Name"]].value, definition
    # One dimension set per line, the exact set every metric of the line is defined with
    assert len(directive["Dimensions"]) == 1, directive["Dimensions"]
    (dimensions,) = directive["Dimensions"]
    for name in names:
        assert dimensions == telemetry.dimension_names(name), (name, dimensions)
    # The default dimensions' values, and an extra dimension's value from the catalogue it names
    assert {key: line[key] for key in DEFAULTS} == DEFAULTS
    for extra in set(dimensions) - set(DEFAULTS):
        assert line[extra] in allowed_values(extra), (extra, line[extra])
    # Nothing else rides on the line (no metadata, so no ids)
    assert set(line) == {"_aws", *dimensions, *names}, set(line)


def allowed_values(dimension: str) -> set[str]:
    from lambda_src.contract.errors import ErrorCode

    return {
        telemetry.ERROR_CODE_DIMENSION: {code.name for code in ErrorCode},
        telemetry.REASON_DIMENSION: {wire.ENDED_BY_SPEAKER, wire.SPEAKER_TIMEOUT, wire.EXPIRED},
    }[dimension]


def test_the_module_names_every_metric_with_its_dimension_set() -> None:
    # The alarms' and the dashboard's source of truth: every metric, two of them with one extra dimension each
    assert telemetry.NAMESPACE == "SessionService"
    assert {name: telemetry.dimension_names(name) for name in telemetry.EXTRA_DIMENSION} == {
        "SessionsCreated": ["service", "environment"],
        "ListenersJoined": ["service", "environment"],
        "ListenersLeft": ["service", "environment"],
        "SessionsEnded": ["service", "environment", "reason"],
        "Rejections": ["service", "environment", "errorCode"],
        "DuplicateAudioChunks": ["service", "environment"],
        "MissingAudioChunks": ["service", "environment"],
        "PartialsForwarded": ["service", "environment"],
        "FinalsForwarded": ["service", "environment"],
        "PartialsDropped": ["service", "environment"],
        "TranscriptDiscrepancies": ["service", "environment"],
        "AudioHandOffLatency": ["service", "environment"],
        "ChunkProcessingLatency": ["service", "environment"],
        "TranslationFailures": ["service", "environment"],
        "TranscriptWriteFailures": ["service", "environment"],
        "SynthesisFailures": ["service", "environment"],
        "SessionCreationLatency": ["service", "environment"],
        "ListenerJoinLatency": ["service", "environment"],
        "ActiveSessions": ["service", "environment"],
        "ConnectedListeners": ["service", "environment"],
    }
    # Each metric is exactly one of a count, a latency (milliseconds) or a gauge
    kinds = telemetry.COUNTS + telemetry.LATENCIES + telemetry.GAUGES
    assert sorted(kinds) == sorted(telemetry.EXTRA_DIMENSION) == sorted(metrics.UNITS)
    assert {name: metrics.UNITS[name].value for name in telemetry.LATENCIES + telemetry.GAUGES} == {
        "SessionCreationLatency": "Milliseconds",
        "ListenerJoinLatency": "Milliseconds",
        "AudioHandOffLatency": "Milliseconds",
        "ChunkProcessingLatency": "Milliseconds",
        "ActiveSessions": "Count",
        "ConnectedListeners": "Count",
    }


def test_create_join_and_a_refusal_emit_exact_emf(tables, gateway, emf: Emf) -> None:
    # Given a session created on $connect (one invocation)
    session_id, speaker = create_session()
    created = emf.read()
    # When a listener joins (another invocation), and a listener tries a speaker's action (refused)
    listener = join(session_id)
    joined = emf.read()
    assert error_of(send({"action": "updateSessionConfig", "minStability": 0.9}, listener)) == (403, "FORBIDDEN")
    refused = emf.read()

    # Then each invocation printed one line, under the namespace, with exact dimension sets
    assert len(created) == len(joined) == len(refused) == 1
    for line in created + joined + refused:
        assert_well_formed(line)
    assert emf.counts(created) == {("SessionsCreated", None): 1}
    assert emf.counts(joined) == {("ListenersJoined", None): 1}
    assert emf.counts(refused) == {("Rejections", "FORBIDDEN"): 1}
    assert refused[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "environment", "errorCode"]]
    # And no id is anywhere on a metric line
    for line in emf.lines:
        text = json.dumps(line)
        for identifier in (session_id, speaker, listener, "user-1"):
            assert identifier not in text


def test_every_error_reply_is_a_rejection_by_its_code(tables, gateway, emf: Emf) -> None:
    connection = plain()
    emf.read()
    # When requests are refused in different ways
    assert error_of(send("not json", connection))[1] == "INVALID_MESSAGE"
    assert error_of(send({"action": "dance"}, connection))[1] == "UNKNOWN_ACTION"
    assert error_of(send({"action": "createSession", "sourceLanguage": "en"}, connection))[1] == "UNAUTHORIZED"
    assert (
        error_of(send({"action": "joinSession", "sessionId": "no-such-101", "targetLanguage": "es"}, connection))[1]
        == "SESSION_NOT_FOUND"
    )
    assert error_of(connect_with({"action": "joinSession", "sessionId": "x", "targetLanguage": "es"})[1]) == (
        400,
        "INVALID_PARAMETERS",
    )
    # Then each is counted once under its code, on its own exact dimension set
    lines = emf.read()
    for line in lines:
        assert_well_formed(line)
    assert emf.counts(lines) == {
        ("Rejections", "INVALID_MESSAGE"): 1,
        ("Rejections", "UNKNOWN_ACTION"): 1,
        ("Rejections", "UNAUTHORIZED"): 1,
        ("Rejections", "SESSION_NOT_FOUND"): 1,
        ("Rejections", "INVALID_PARAMETERS"): 1,
    }


def test_an_unhandled_error_is_a_rejection_with_internal_error(
    tables, gateway, emf: Emf, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bug in the service
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(connections, "heartbeat", broken)
    connection = plain()
    emf.read()
    # When a request hits it / Then the client gets INTERNAL_ERROR and the metric says so
    assert error_of(send({"action": "heartbeat"}, connection)) == (500, "INTERNAL_ERROR")
    lines = emf.read()
    for line in lines:
        assert_well_formed(line)
    assert emf.counts(lines) == {("Rejections", "INTERNAL_ERROR"): 1}


def test_authorizer_refusals_are_unauthorized_rejections(emf: Emf, monkeypatch: pytest.MonkeyPatch) -> None:
    from lambda_src.adapters import auth

    # Given an authorizer configured with a key endpoint it will never need (junk is refused by its header)
    monkeypatch.setenv(function_settings.ENV_JWKS_URL, "http://127.0.0.1:9/.well-known/jwks.json")
    monkeypatch.setenv(function_settings.ENV_ISSUER, "https://issuer.example")
    monkeypatch.setenv(function_settings.ENV_CLIENT_ID, "client")
    auth.verifier_from_environment.cache_clear()
    event = {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect",
        "queryStringParameters": {"token": "not-a-jwt"},
        "requestContext": {"routeKey": "$connect", "connectionId": "conn-a", "requestId": "req-a"},
    }
    try:
        # When a bad token is refused, and a connection without a token is let through
        with pytest.raises(Exception, match="^Unauthorized$"):
            authorizer.handler(event, None)
        refused = emf.read()
        authorizer.handler({**event, "queryStringParameters": None}, None)
        allowed = emf.read()
    finally:
        auth.verifier_from_environment.cache_clear()
    # Then only the refusal is counted, as UNAUTHORIZED
    for line in refused:
        assert_well_formed(line)
    assert emf.counts(refused) == {("Rejections", "UNAUTHORIZED"): 1}
    assert allowed == []


def test_listeners_are_counted_out_once_however_they_leave(tables, gateway, emf: Emf) -> None:
    session_id, _speaker = create_session()
    leaving, dropping = join(session_id), join(session_id)
    emf.read()
    # When one leaves and then closes its connection, and the other's $disconnect arrives twice
    assert body_of(send({"action": "leaveSession"}, leaving))["type"] == "sessionLeft"
    drop(leaving)
    drop(dropping)
    drop(dropping)
    # Then each departure is counted once: the calls that did not decrement the count emit nothing
    assert emf.counts() == {("ListenersLeft", None): 2}
    assert tables.session(session_id)["listenerCount"] == 0


def test_a_listener_refresh_counts_in_only_when_it_raises_the_count(tables, gateway, emf: Emf) -> None:
    session_id, _speaker = create_session()
    old = join(session_id)
    emf.read()
    base = {"action": "refreshConnection", "sessionId": session_id, "role": "listener", "targetLanguage": "es"}
    # When a refresh names its old connection: the row is replaced, the count does not move
    assert connect_with({**base, "previousConnectionId": old})[1]["statusCode"] == 200
    assert emf.counts() == {}
    # When an older client refreshes without naming it: counted in now, counted out when the old one closes
    newer, response = connect_with(base)
    assert response["statusCode"] == 200
    assert emf.counts() == {("ListenersJoined", None): 1}
    assert tables.session(session_id)["listenerCount"] == 2
    # (the first refresh replaced `old`; its close is no departure, the replaced row is gone)
    drop(old)
    assert emf.counts() == {}


def test_sessions_ended_by_reason(tables, gateway, emf: Emf, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given three sessions: one its speaker ends, one whose speaker drops for good, one that outlives its lifetime
    ended, ender = create_session()
    timed_out, dropper = create_session()
    expiring, _speaker = create_session()
    listeners = [join(ended), join(ended)]
    emf.read()

    # When the speaker ends the first
    assert body_of(send({"action": "endSession"}, ender))["type"] == "sessionEnded"
    end_lines = emf.read()
    deliver_disconnects(gateway.closed())
    departures = emf.read()
    # And the second's speaker drops and the window passes, and later the third's lifetime is over
    drop(dropper)
    emf.read()
    clock.advance(3 * 3600 + 1)
    assert sweeper.handler({"source": "aws.events"}, None) == {"ended": 2}
    swept = emf.read()

    for line in end_lines + departures + swept:
        assert_well_formed(line)
    assert emf.counts(end_lines) == {("SessionsEnded", "endedBySpeaker"): 1}
    assert emf.counts(departures) == {("ListenersLeft", None): len(listeners)}
    # (both are past the window and the lifetime by then: a dropped speaker's window is what ends it)
    assert emf.counts(swept) == {("SessionsEnded", "speakerTimeout"): 1, ("SessionsEnded", "expired"): 1}
    assert {tables.session(s)["endReason"] for s in (timed_out, expiring)} == {"speakerTimeout", "expired"}
    # And nothing is counted twice: the sweeper finds nothing more to end
    assert sweeper.handler({"source": "aws.events"}, None) == {"ended": 0}
    again = emf.read()
    assert emf.counts(again) == {}
    # (only the minute's levels: no session is active any more)
    assert (emf.values("ActiveSessions", again), emf.values("ConnectedListeners", again)) == ([0], [0])


def test_an_invocations_metrics_are_published_once_at_its_end(tables, gateway, emf: Emf) -> None:
    # Given a session whose three listeners vanished without their $disconnect (410 on the fan-out)
    session_id, speaker = create_session()
    gone = [join(session_id, connected_at_ms=handshake_done_ms()) for _ in range(3)]
    gateway.gone.update(gone)
    emf.read()
    # When the speaker ends it (the fan-out counts each vanished listener out within this one invocation)
    assert body_of(send({"action": "endSession"}, speaker))["type"] == "sessionEnded"
    lines = emf.read()
    # Then the three departures are one line (one flush), beside the ended session's own line
    default_lines = [
        line for line in lines if line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "environment"]]
    ]
    assert len(default_lines) == 1
    assert default_lines[0]["ListenersLeft"] == [1.0, 1.0, 1.0]
    assert emf.counts(lines) == {("ListenersLeft", None): 3, ("SessionsEnded", "endedBySpeaker"): 1}
    # And nothing is left over for the next invocation
    assert metrics._metrics.metric_set == {}


def test_publishing_metrics_costs_no_aws_request(tables, gateway, emf: Emf, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given every AWS API call of the process recorded by service
    services: list[str] = []
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]  # private: not in botocore-stubs

    this_thread = threading.get_ident()

    def recording(self: Any, operation: str, params: Any) -> Any:
        if threading.get_ident() == this_thread:  # (a local run other tests started may be polling streams)
            services.append(self.meta.service_model.service_name)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    # When a flow emits every kind of metric
    session_id, speaker = create_session()
    listener = join(session_id)
    send({"action": "leaveSession"}, listener)
    send({"action": "dance"}, listener)
    send({"action": "endSession"}, speaker)
    # Then metrics were printed, and the only AWS service called is DynamoDB (no CloudWatch PutMetricData)
    assert emf.counts() and set(services) == {"dynamodb"}


def test_a_metric_that_cannot_be_published_never_fails_the_request(
    tables, gateway, emf: Emf, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Powertools failing to take a metric
    def failing(*args: Any, **kwargs: Any) -> None:
        raise ValueError("metric rejected")

    monkeypatch.setattr(metrics._metrics, "add_metric", failing)
    # When a session is created / Then it is created all the same
    session_id, _speaker = create_session()
    assert tables.session(session_id)["isActive"] is True


def test_creation_and_join_latencies_are_the_service_calls_duration_in_milliseconds(
    tables, gateway, emf: Emf, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given every transaction taking at least 40 ms (so the figure must include the write, not just the code)
    from lambda_src.adapters.repositories import dynamodb

    real_transact = dynamodb.transact_guarded

    def slow_transact(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.04)
        real_transact(*args, **kwargs)

    monkeypatch.setattr(dynamodb, "transact_guarded", slow_transact)
    # When a session is created on $connect and another as a message, and listeners join both ways
    session_id, _speaker = create_session()
    created_on_connect = emf.read()
    as_message = send({"action": "createSession", "sourceLanguage": "en"}, plain(user_id="user-2"), user_id="user-2")
    assert body_of(as_message)["type"] == "sessionCreated"
    created_as_message = emf.read()
    join(session_id)
    joined_on_connect = emf.read()
    assert body_of(send({"action": "joinSession", "sessionId": session_id, "targetLanguage": "de"}, plain()))[
        "type"
    ] == ("sessionJoined")
    joined_as_message = emf.read()

    # Then each success published its latency once, in milliseconds, on the default dimensions only
    for lines, name in (
        (created_on_connect, "SessionCreationLatency"),
        (created_as_message, "SessionCreationLatency"),
        (joined_on_connect, "ListenerJoinLatency"),
        (joined_as_message, "ListenerJoinLatency"),
    ):
        for line in lines:
            assert_well_formed(line)
        (value,) = emf.values(name, lines)
        assert 40 <= value < 10_000, (name, value)
        other = ({"SessionCreationLatency", "ListenerJoinLatency"} - {name}).pop()
        assert emf.values(other, lines) == []
    # (beside the counts they always came with)
    assert emf.counts(created_on_connect + created_as_message) == {("SessionsCreated", None): 2}
    assert emf.counts(joined_on_connect + joined_as_message) == {("ListenersJoined", None): 2}


def test_a_refused_join_or_creation_publishes_no_latency(tables, gateway, emf: Emf) -> None:
    connection = plain()
    emf.read()
    # When a join names no such session, and a creation comes without a token
    join_refused = send({"action": "joinSession", "sessionId": "no-such-101", "targetLanguage": "es"}, connection)
    assert error_of(join_refused)[1] == "SESSION_NOT_FOUND"
    assert error_of(send({"action": "createSession", "sourceLanguage": "en"}, connection))[1] == "UNAUTHORIZED"
    # Then only the rejections are counted: a refusal's time is not the operation's latency
    lines = emf.read()
    assert emf.values("ListenerJoinLatency", lines) == emf.values("SessionCreationLatency", lines) == []
    assert emf.counts(lines) == {("Rejections", "SESSION_NOT_FOUND"): 1, ("Rejections", "UNAUTHORIZED"): 1}


def test_each_sweep_publishes_the_active_sessions_and_their_listeners(tables, gateway, emf: Emf) -> None:
    # Given two active sessions with two and one listeners, and an ended one whose listener is still attached
    two, _ = create_session()
    one, _ = create_session()
    ended, ender = create_session()
    for session_id in (two, two, one, ended):
        join(session_id)
    assert body_of(send({"action": "endSession"}, ender))["type"] == "sessionEnded"
    assert tables.session(ended)["listenerCount"] == 1  # (its $disconnect has not come yet)
    emf.read()

    # When the sweeper runs
    assert sweeper.handler({"source": "aws.events"}, None) == {"ended": 0}
    lines = emf.read()

    # Then it published each level once, on the default dimensions: two active sessions, three listeners in them
    for line in lines:
        assert_well_formed(line)
    assert emf.values("ActiveSessions", lines) == [2]
    assert emf.values("ConnectedListeners", lines) == [3]
    # And the next sweep publishes the levels again (a gauge per minute, not a count)
    join(one)
    assert sweeper.handler({"source": "aws.events"}, None) == {"ended": 0}
    lines = emf.read()
    assert (emf.values("ActiveSessions", lines), emf.values("ConnectedListeners", lines)) == ([2], [4])


def test_sessions_the_sweep_ends_are_not_counted_active(tables, gateway, emf: Emf, clock: Clock) -> None:
    # Given a session whose lifetime is over by the time the sweeper runs, and one created just before it
    expiring, _ = create_session()
    join(expiring)
    clock.advance(3 * 3600 + 1)
    fresh, _ = create_session()
    join(fresh)
    emf.read()
    # When the sweeper runs / Then it ends the first before it measures: one active session, one listener
    assert sweeper.handler({"source": "aws.events"}, None) == {"ended": 1}
    lines = emf.read()
    assert (emf.values("ActiveSessions", lines), emf.values("ConnectedListeners", lines)) == ([1], [1])


def test_a_sweep_that_cannot_read_the_levels_publishes_none_and_still_sweeps(
    tables, gateway, emf: Emf, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_src.adapters.repositories import dynamodb

    # Given DynamoDB leaving every BatchGetItem key unprocessed (throttled), and a session due to end
    real_request = dynamodb.request
    batch_gets: list[int] = []

    def throttled(operation: str, **arguments: Any) -> Any:
        if operation == "batch_get_item":
            batch_gets.append(1)
            return {"Responses": {}, "UnprocessedKeys": arguments["RequestItems"]}
        return real_request(operation, **arguments)

    monkeypatch.setattr(dynamodb, "request", throttled)
    monkeypatch.setattr(sessions_repository.time, "sleep", lambda _seconds: None)
    expiring, _ = create_session()
    clock.advance(3 * 3600 + 1)
    emf.read()
    # When the sweeper runs
    assert sweeper.handler({"source": "aws.events"}, None) == {"ended": 1}
    lines = emf.read()
    # Then the keys were asked again a few times, then no level was published (a gap, not a wrong level)
    assert len(batch_gets) == sessions_repository.BATCH_GET_ATTEMPTS
    assert emf.values("ActiveSessions", lines) == emf.values("ConnectedListeners", lines) == []
    # And the sweep did its work all the same
    assert emf.counts(lines) == {("SessionsEnded", "expired"): 1}
    assert tables.session(expiring)["isActive"] is False


def test_unprocessed_keys_are_asked_again_and_counted_once(
    tables, gateway, emf: Emf, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_src.adapters.repositories import dynamodb

    # Given DynamoDB processing only the first key of each BatchGetItem
    real_request = dynamodb.request

    def partial(operation: str, **arguments: Any) -> Any:
        if operation != "batch_get_item":
            return real_request(operation, **arguments)
        ((table, request),) = arguments["RequestItems"].items()
        first, *rest = request["Keys"]
        response = real_request(operation, RequestItems={table: {**request, "Keys": [first]}})
        if rest:
            response["UnprocessedKeys"] = {table: {**request, "Keys": rest}}
        return response

    monkeypatch.setattr(dynamodb, "request", partial)
    monkeypatch.setattr(sessions_repository.time, "sleep", lambda _seconds: None)
    for _ in range(3):
        join(create_session()[0])
    emf.read()
    # When the sweeper runs / Then every session was read, once
    assert sweeper.handler({"source": "aws.events"}, None) == {"ended": 0}
    lines = emf.read()
    assert (emf.values("ActiveSessions", lines), emf.values("ConnectedListeners", lines)) == ([3], [3])


def test_a_duplicate_audio_chunk_is_counted_once(tables, gateway, emf: Emf) -> None:
    # Given a speaker's stored chunk
    _, speaker = create_session()
    chunk = {"action": "sendAudio", "audioData": base64.b64encode(bytes(200)).decode("ascii"), "sequenceNumber": 0}
    connected_at = handshake_done_ms()
    assert body_of(send(chunk, speaker, connected_at_ms=connected_at))["accepted"] is True
    emf.read()
    # When the same chunk comes again
    assert body_of(send(chunk, speaker, connected_at_ms=connected_at))["reason"] == "duplicate"
    # Then it is counted as a duplicate, once
    assert emf.counts() == {("DuplicateAudioChunks", None): 1}
