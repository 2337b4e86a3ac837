"""The local gateway's stand-in for Lambda's Invoke API (how one function starts another in the local run, as
the message function starts a session's transcription consumer): by name or ARN, ``Event`` answered 202 at once
and run in the background, ``RequestResponse`` answered with the result, an unknown function 404."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from local_run.gateway import LAMBDA_INVOKE_PREFIX, LAMBDA_INVOKE_SUFFIX, LocalGateway
from tests.unit.test_local_schedules import FakeRuntime, _gateway

ARN = "arn:aws:lambda:local:000000000000:function:Transcriber"


def gateway_with(runtime: FakeRuntime) -> LocalGateway:
    gateway = _gateway([], schedule_interval=None)
    runtime.env = {"LOCAL_FUNCTION_ARN": ARN}  # type: ignore[attr-defined]
    gateway.runtimes = {"TranscriberFn": runtime}  # type: ignore[dict-item]
    return gateway


def invoke(gateway: LocalGateway, name: str, event: Any, invocation_type: str) -> tuple[int, str, bytes]:
    path = f"{LAMBDA_INVOKE_PREFIX}{name}{LAMBDA_INVOKE_SUFFIX}"
    headers = {"x-amz-invocation-type": invocation_type}
    return asyncio.run(_then_settle(gateway._http_route("POST", path, json.dumps(event).encode(), headers)))


async def _then_settle(call: Any) -> Any:
    answer = await call
    await asyncio.sleep(0.05)  # let an asynchronous invocation run
    return answer


def test_an_event_invocation_is_answered_202_and_runs_the_function_with_the_event() -> None:
    runtime = FakeRuntime("SessionService-dev-Transcriber")
    gateway = gateway_with(runtime)
    status, _headers, body = invoke(
        gateway, "SessionService-dev-Transcriber", {"sessionId": "golden-eagle-427"}, "Event"
    )
    assert (status, body) == (202, b"")
    assert [event for _at, event in runtime.calls] == [{"sessionId": "golden-eagle-427"}]


def test_a_function_is_found_by_its_arn_and_a_request_response_call_returns_its_result() -> None:
    runtime = FakeRuntime("SessionService-dev-Transcriber")
    gateway = gateway_with(runtime)
    status, _headers, body = invoke(gateway, ARN, {"k": 1}, "RequestResponse")
    assert (status, json.loads(body)) == (200, None)
    assert [event for _at, event in runtime.calls] == [{"k": 1}]


def test_a_failing_function_reports_its_error_as_lambda_does() -> None:
    gateway = gateway_with(FakeRuntime("SessionService-dev-Transcriber", fail=True))
    status, headers, body = invoke(gateway, "SessionService-dev-Transcriber", {}, "RequestResponse")
    assert (status, "X-Amz-Function-Error: Unhandled" in headers, json.loads(body)) == (
        200,
        True,
        {"errorMessage": "boom"},
    )


def test_an_unknown_function_is_404_and_nothing_runs() -> None:
    runtime = FakeRuntime("SessionService-dev-Transcriber")
    gateway = gateway_with(runtime)
    status, headers, _body = invoke(gateway, "Nobody", {}, "Event")
    assert (status, "ResourceNotFoundException" in headers, runtime.calls) == (404, True, [])
