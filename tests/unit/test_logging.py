"""Logging hygiene over a whole session's life: every line the service writes while a speaker authenticates
with a real token, creates a session on connect, gets its first message, a listener joins, heartbeats, the
speaker changes the configuration, requests are refused, the listener leaves, connections close, the
speaker ends the session and the sweeper ends another.

Every line must carry the correlation ids of its invocation (``request_id``; ``connection_id`` on a WebSocket
route or the authorizer; ``session_id`` once the request concerns a session, and never one left over from an
earlier invocation), and no line may carry the token, the client's IP address or a frame as received.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext as PowertoolsLambdaContext

from lambda_src.adapters import auth
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.rate_limits import SOURCE_ADDRESS_SECRET_KEY
from lambda_src.contract import function_settings, telemetry
from lambda_src.handlers import authorizer, connect, disconnect, message, sweeper, welcome
from lambda_src.platform import log, metrics
from lambda_src.platform.log import logger
from local_run.dev_issuer import DevIssuer
from tests.support.fakes import serve_jwks
from tests.support.helpers import (
    RATE_LIMITS_TABLE,
    body_of,
    connect_event,
    disconnect_event,
    message_event,
    new_connection_id,
)
from tests.unit.flows import Clock, welcome_of_row

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_LogHygiene"
CLIENT_ID = "log-hygiene-client"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/dev/$connect"
SOURCE_IP = "203.0.113.77"  # TEST-NET-3: distinctive, and in every event's requestContext.identity
MARKER = "marker-5b1e0c"  # in a frame that is not JSON: it must not come back in a log line
OUTCOMES = {"request handled", "request refused", "unhandled error"}


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def issuer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DevIssuer]:
    """The local dev issuer, its JWKS served on loopback, and the authorizer's environment pointing at it."""
    issuer = DevIssuer(tmp_path, ISSUER, CLIENT_ID)
    with serve_jwks(issuer.jwks()) as server:
        monkeypatch.setenv(function_settings.ENV_JWKS_URL, server.url)
        monkeypatch.setenv(function_settings.ENV_ISSUER, ISSUER)
        monkeypatch.setenv(function_settings.ENV_CLIENT_ID, CLIENT_ID)
        auth.verifier_from_environment.cache_clear()
        try:
            yield issuer
        finally:
            auth.verifier_from_environment.cache_clear()


@dataclass
class Step:
    name: str
    lines: list[dict[str, Any]]


class Capture:
    """Every Powertools log line (formatted exactly as in Lambda), grouped by the invocation that wrote it.

    Powertools' handler keeps the stdout it found at import time, which capsys cannot see, so a second
    handler with the same formatter writes to a buffer; stdout (the EMF lines) is read through capsys.
    """

    def __init__(self, buffer: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
        self._buffer = buffer
        self._capsys = capsys
        self.steps: list[Step] = []
        self.stdout = ""

    def raw_lines(self) -> list[str]:
        return self._buffer.getvalue().splitlines()

    def step(self, name: str, call: Callable[[], Any]) -> tuple[Any, Step]:
        """Run one invocation; its result (or the exception it raised) and the lines it wrote."""
        start = len(self.raw_lines())
        try:
            result: Any = call()
        except Exception as error:  # the authorizer refuses by raising
            result = error
        new = [json.loads(line) for line in self.raw_lines()[start:]]
        self.stdout += self._capsys.readouterr().out
        step = Step(name, new)
        self.steps.append(step)
        # No correlation key outlives its invocation (a warm Lambda's next request must not inherit it)
        assert not set(log.CORRELATION_KEYS) & set(logger.get_current_keys()), (name, logger.get_current_keys())
        return result, step

    def all_text(self) -> str:
        return self._buffer.getvalue() + "\n" + self.stdout


@pytest.fixture
def capture(capsys: pytest.CaptureFixture[str]) -> Iterator[Capture]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_handler.formatter)
    logging.getLogger(logger.name).addHandler(handler)
    metrics.reset()
    capsys.readouterr()
    try:
        yield Capture(buffer, capsys)
    finally:
        logging.getLogger(logger.name).removeHandler(handler)
        metrics.reset()


# ----------------------------------------------------------------------------------------------- events


def with_source_ip(event: dict[str, Any]) -> dict[str, Any]:
    """The event as API Gateway sends it from a client at SOURCE_IP (identity, and the forwarding header)."""
    event["requestContext"]["identity"] = {"sourceIp": SOURCE_IP, "userAgent": "log-hygiene-test/1.0"}
    event["headers"] = {**event.get("headers", {}), "X-Forwarded-For": SOURCE_IP, "Host": "example.com"}
    return event


def authorizer_event(connection_id: str, query: dict[str, str] | None) -> dict[str, Any]:
    return with_source_ip(
        {
            "type": "REQUEST",
            "methodArn": METHOD_ARN,
            "queryStringParameters": query,
            "requestContext": {
                "routeKey": "$connect",
                "eventType": "CONNECT",
                "connectionId": connection_id,
                "requestId": f"auth-{connection_id}",
            },
        }
    )


class LambdaContext(PowertoolsLambdaContext):
    """Lambda's context with its request id. The time left is what gives the invocation's DynamoDB waits the
    budget of a run without a context (Powertools' own answer, 0, would allow none)."""

    def __init__(self, aws_request_id: str) -> None:
        self._aws_request_id = aws_request_id

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return int((dynamodb.INVOCATION_BUDGET_SECONDS + dynamodb.REPLY_MARGIN_SECONDS) * 1000)


def request_id_of(event: dict[str, Any]) -> str:
    return event["requestContext"]["requestId"]


# ------------------------------------------------------------------------------------------- assertions


def assert_correlated(step: Step, *, request_id: str, connection_id: str | None, session_id: str | None) -> None:
    if connection_id is not None and not step.name.startswith("authorizer"):
        # A WebSocket route writes exactly one outcome line, so every invocation is checked on at least one
        outcomes = [line["message"] for line in step.lines if line["message"] in OUTCOMES]
        assert outcomes in (["request handled"], ["request refused"]), (step.name, outcomes)
    for line in step.lines:
        assert line.get("request_id") == request_id, (step.name, line)
        if connection_id is not None:
            assert line.get("connection_id") == connection_id, (step.name, line)
        if session_id is None:
            assert "session_id" not in line, (step.name, line)
        else:
            assert line.get("session_id") == session_id, (step.name, line)


# ------------------------------------------------------------------------------------------------- test


def test_a_whole_session_logs_correlated_lines_without_secrets_addresses_or_frames(
    tables, gateway, issuer: DevIssuer, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock.install(monkeypatch)
    token = issuer.mint("speaker-7")
    forged = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
    frames: list[str] = []

    def send(connection_id: str, body: Any, route_key: str = "$default") -> tuple[dict[str, Any], Step, str]:
        event = with_source_ip(message_event(body, connection_id=connection_id, route_key=route_key))
        frames.append(event["body"])
        response, step = capture.step(f"{route_key} on {connection_id}", lambda: message.handler(event, None))
        return response, step, request_id_of(event)

    def connect_as(connection_id: str, query: dict[str, str] | None, user_id: str | None) -> tuple[dict, Step, str]:
        event = with_source_ip(connect_event(query, connection_id=connection_id, user_id=user_id))
        response, step = capture.step(f"$connect {connection_id}", lambda: connect.handler(event, None))
        return response, step, request_id_of(event)

    def authorize(connection_id: str, query: dict[str, str] | None) -> tuple[Any, Step]:
        event = authorizer_event(connection_id, query)
        result, step = capture.step(f"authorizer {connection_id}", lambda: authorizer.handler(event, None))
        assert_correlated(step, request_id=request_id_of(event), connection_id=connection_id, session_id=None)
        return result, step

    def close(connection_id: str, session_id: str | None) -> Step:
        event = with_source_ip(disconnect_event(connection_id))
        response, step = capture.step(f"$disconnect {connection_id}", lambda: disconnect.handler(event, None))
        assert response["statusCode"] == 200
        assert_correlated(step, request_id=request_id_of(event), connection_id=connection_id, session_id=session_id)
        return step

    # --- a speaker authenticates with a real token and creates a session on connect -----------------------
    speaker = new_connection_id()
    create_query = {"action": "createSession", "sourceLanguage": "en", "minStability": "0.85", "token": token}
    policy, step = authorize(speaker, create_query)
    assert policy["context"]["role"] == "speaker", policy
    assert [line["message"] for line in step.lines] == ["speaker connection allowed"]
    user_id = policy["context"]["userId"]
    response, step, request_id = connect_as(speaker, create_query, user_id)
    assert response["statusCode"] == 200, response
    session_id = welcome_of_row(speaker)["sessionId"]
    assert_correlated(step, request_id=request_id, connection_id=speaker, session_id=session_id)

    # --- its first message is delivered after the handshake -------------------------------------------
    row = tables.client.get_item(TableName=tables.connections, Key={"connectionId": {"S": speaker}})["Item"]
    stream = {"Records": [{"eventName": "INSERT", "dynamodb": {"NewImage": row}}]}
    result, step = capture.step("welcome", lambda: welcome.handler(stream, LambdaContext("welcome-req-1")))
    assert result == {"delivered": 1}
    assert_correlated(step, request_id="welcome-req-1", connection_id=None, session_id=None)

    # --- listeners connect anonymously and join -------------------------------------------------------
    listener, other_listener = new_connection_id(), new_connection_id()
    join_query = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
    for connection in (listener, other_listener):
        policy, step = authorize(connection, join_query)
        assert policy["context"]["role"] == "anonymous"
        response, step, request_id = connect_as(connection, join_query, None)
        assert response["statusCode"] == 200, response
        assert_correlated(step, request_id=request_id, connection_id=connection, session_id=session_id)

    # --- heartbeat, and a configuration change ---------------------------------------------------------
    response, step, request_id = send(listener, {"action": "heartbeat"}, "heartbeat")
    assert body_of(response)["type"] == "heartbeatAck"
    assert_correlated(step, request_id=request_id, connection_id=listener, session_id=None)

    response, step, request_id = send(
        speaker,
        {"action": "updateSessionConfig", "minStability": 0.9, "partialResults": "false"},
        "updateSessionConfig",
    )
    assert body_of(response)["type"] == "sessionConfigUpdated"
    assert [line["message"] for line in step.lines] == ["session configuration updated", "request handled"]
    assert_correlated(step, request_id=request_id, connection_id=speaker, session_id=session_id)

    # --- refusals: a listener acting as the speaker, a token in a frame, a frame that is not JSON, a forgery --
    response, step, request_id = send(listener, {"action": "updateSessionConfig", "minStability": 0.8})
    assert body_of(response)["code"] == "FORBIDDEN"
    assert [line["message"] for line in step.lines] == ["request refused"]
    assert_correlated(step, request_id=request_id, connection_id=listener, session_id=session_id)

    anonymous = new_connection_id()
    authorize(anonymous, None)
    response, step, request_id = connect_as(anonymous, None, None)
    assert response["statusCode"] == 200
    assert_correlated(step, request_id=request_id, connection_id=anonymous, session_id=None)
    response, step, request_id = send(anonymous, {"action": "createSession", "sourceLanguage": "en", "token": token})
    assert body_of(response)["code"] == "UNAUTHORIZED"
    assert_correlated(step, request_id=request_id, connection_id=anonymous, session_id=None)
    response, step, request_id = send(anonymous, '{"action": "heartbeat", "note": "' + MARKER + " " + SOURCE_IP)
    assert body_of(response)["code"] == "INVALID_MESSAGE"
    assert_correlated(step, request_id=request_id, connection_id=anonymous, session_id=None)

    forger = new_connection_id()
    refusal, step = authorize(forger, {**create_query, "token": forged})
    assert str(refusal) == "Unauthorized"
    assert [line["message"] for line in step.lines] == ["connection refused"]

    # --- the listener leaves, then closes; the anonymous connection closes -----------------------------
    response, step, request_id = send(listener, {"action": "leaveSession"}, "leaveSession")
    assert body_of(response)["type"] == "sessionLeft"
    assert_correlated(step, request_id=request_id, connection_id=listener, session_id=session_id)
    close(listener, session_id=None)  # it left: a plain connection now
    close(anonymous, session_id=None)

    # --- the speaker ends the session; the dismissed listener's and the speaker's connections close ------
    response, step, request_id = send(speaker, {"action": "endSession"}, "endSession")
    assert body_of(response)["type"] == "sessionEnded"
    assert [line["message"] for line in step.lines] == ["listeners notified", "session ended", "request handled"]
    assert_correlated(step, request_id=request_id, connection_id=speaker, session_id=session_id)
    assert gateway.closed() == [other_listener]
    close(other_listener, session_id=session_id)
    close(speaker, session_id=session_id)

    # --- another session whose speaker drops for good: the sweeper ends it ------------------------------
    second_speaker, second_listener = new_connection_id(), new_connection_id()
    second_query = {**create_query, "sourceLanguage": "de"}
    authorize(second_speaker, second_query)
    connect_as(second_speaker, second_query, user_id)
    second_session = welcome_of_row(second_speaker)["sessionId"]
    connect_as(second_listener, {**join_query, "sessionId": second_session}, None)
    step = close(second_speaker, session_id=second_session)
    assert [line["message"] for line in step.lines] == ["listeners notified", "request handled"]
    clock.advance(function_settings.load().speaker_grace_seconds + 1)
    result, step = capture.step("sweeper", lambda: sweeper.handler({"source": "aws.events"}, LambdaContext("sweep-1")))
    assert result == {"ended": 1}
    # (the first session, ended by its speaker, is due once more: the sweeper looks for listeners left)
    assert step.lines[-1]["message"] == "sessions swept"
    by_session = {
        sid: Step(f"sweeper: {sid}", [line for line in step.lines[:-1] if line.get("session_id") == sid])
        for sid in (session_id, second_session)
    }
    assert sum(len(lines.lines) for lines in by_session.values()) == len(step.lines) - 1
    assert [line["message"] for line in by_session[second_session].lines] == ["listeners notified", "session ended"]
    assert [line["message"] for line in by_session[session_id].lines] == [
        "listeners notified",
        "ended session revisited",
    ]
    for sid, per_session in by_session.items():
        assert_correlated(per_session, request_id="sweep-1", connection_id=None, session_id=sid)
    summary = Step("sweeper: summary", step.lines[-1:])
    assert_correlated(summary, request_id="sweep-1", connection_id=None, session_id=None)
    close(second_listener, session_id=second_session)

    # --- and over everything written: no token (or a piece of it), no address, no frame as received ------
    text = capture.all_text()
    lines = [line for line in capture.raw_lines() if line.strip()]
    assert len(lines) >= 30 and all(json.loads(line)["service"] == telemetry.SERVICE_NAME for line in lines)
    header, payload, signature = token.split(".")
    for secret in (token, forged, payload, signature, forged.split(".")[2]):
        assert secret not in text
    assert SOURCE_IP not in text
    # nor the secret that keys source addresses (created by the first $connect above), in any encoding
    secret = tables.client.get_item(
        TableName=RATE_LIMITS_TABLE, Key={"limitKey": {"S": SOURCE_ADDRESS_SECRET_KEY}}, ConsistentRead=True
    )["Item"]["secret"]["B"]
    for encoded in (secret.hex(), base64.b64encode(secret).decode(), repr(secret)[2:-1]):
        assert encoded not in text
    assert MARKER not in text
    for frame in frames:  # as received, or as a JSON string inside a line
        assert frame not in text and json.dumps(frame)[1:-1] not in text, frame
    # (the EMF lines were read too: metrics were printed, with none of the above in them)
    assert '"_aws"' in capture.stdout
