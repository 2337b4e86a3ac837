"""Every function enters through one wrapper (``handlers.common.entry_point``): each invocation is bounded by
the function's remaining time, logs with its correlation keys, publishes its metrics once and leaves no key
behind for the next invocation of a warm instance, whatever its body does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_src.adapters.repositories import dynamodb
from lambda_src.app import connections, speaker_status
from lambda_src.app import sweeper as app_sweeper
from lambda_src.app import welcome as app_welcome
from lambda_src.handlers import authorizer, common, connect, disconnect, message, status, sweeper, welcome
from lambda_src.platform import metrics
from lambda_src.platform.log import CORRELATION_KEYS, logger


class Context(LambdaContext):
    """Lambda's context as the entry points read it: the request id and the time left (the handlers are typed
    with Powertools' class; Lambda passes an object of the same shape)."""

    def __init__(self) -> None:
        self._aws_request_id = "lambda-request-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 7_000


@dataclass
class Observed:
    started_with: list[Any] = field(default_factory=list)
    flushes: int = 0
    keys_in_body: dict[str, Any] = field(default_factory=dict)


WEBSOCKET_EVENT = {"requestContext": {"connectionId": "conn-1", "requestId": "api-request-1", "routeKey": "$connect"}}

# entry point -> (the module attribute its body calls, the event, the keys its body logs with, whether it raises)
CASES: dict[str, tuple[tuple[Any, str], dict[str, Any], dict[str, str], bool]] = {
    "connect": (
        (connect.validation, "check_field_sizes"),
        WEBSOCKET_EVENT,
        {"connection_id": "conn-1", "request_id": "api-request-1", "route": "$connect"},
        False,
    ),
    "message": (
        (message, "message_body"),
        WEBSOCKET_EVENT,
        {"connection_id": "conn-1", "request_id": "api-request-1", "route": "$connect"},
        False,
    ),
    "disconnect": (
        (connections, "disconnect"),
        WEBSOCKET_EVENT,
        {"connection_id": "conn-1", "request_id": "api-request-1", "route": "$connect"},
        False,
    ),
    "authorizer": (
        (authorizer, "_authorize"),
        WEBSOCKET_EVENT,
        {"connection_id": "conn-1", "request_id": "api-request-1", "route": "$authorizer"},
        True,
    ),
    "welcome": ((app_welcome, "pending_welcomes"), {"Records": []}, {"request_id": "lambda-request-1"}, True),
    "sweeper": ((app_sweeper, "sweep"), {}, {"request_id": "lambda-request-1"}, True),
    "status": ((speaker_status, "push_changes"), {"Records": []}, {"request_id": "lambda-request-1"}, True),
}
HANDLERS = {
    "connect": connect.handler,
    "message": message.handler,
    "disconnect": disconnect.handler,
    "authorizer": authorizer.handler,
    "welcome": welcome.handler,
    "sweeper": sweeper.handler,
    "status": status.handler,
}


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> Observed:
    seen = Observed()
    real_start = dynamodb.start_invocation

    def start(context: Any) -> None:
        seen.started_with.append(context)
        real_start(context)

    def flush() -> None:
        seen.flushes += 1

    monkeypatch.setattr(dynamodb, "start_invocation", start)
    monkeypatch.setattr(metrics, "flush", flush)
    monkeypatch.setattr(common.metrics, "flush", flush)
    return seen


def test_every_function_is_checked() -> None:
    assert (
        sorted(HANDLERS)
        == sorted(CASES)
        == [
            "authorizer",
            "connect",
            "disconnect",
            "message",
            "status",
            "sweeper",
            "welcome",
        ]
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_entry_point_starts_its_invocation_and_cleans_up_after_a_failure(
    name: str, observed: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    (owner, attribute), event, expected_keys, raises = CASES[name]

    def failing_body(*_args: Any, **_kwargs: Any) -> Any:
        current = logger.get_current_keys()
        observed.keys_in_body.update({key: current[key] for key in CORRELATION_KEYS if key in current})
        raise RuntimeError("the body failed")

    monkeypatch.setattr(owner, attribute, failing_body)
    context = Context()
    if raises:
        with pytest.raises(RuntimeError):
            HANDLERS[name](event, context)
    else:
        response = HANDLERS[name](event, context)
        assert response["statusCode"] == 500  # a WebSocket route turns the failure into INTERNAL_ERROR

    assert observed.started_with == [context]  # DynamoDB waits bounded by this invocation's remaining time
    assert dynamodb._invocation_wait_left == pytest.approx(7.0 - dynamodb.REPLY_MARGIN_SECONDS)
    assert observed.keys_in_body == expected_keys
    assert observed.flushes == 1
    assert not set(CORRELATION_KEYS) & set(logger.get_current_keys())
