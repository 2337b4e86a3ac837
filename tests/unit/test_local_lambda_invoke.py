"""The local gateway's stand-in for Lambda's Invoke API (how one function starts another in the local run, as
the message function starts a session's transcription consumer): by name or ARN, ``Event`` answered 202 at once
and run in the background, ``RequestResponse`` answered with the result, an unknown function 404; only for the
functions' own SigV4-signed requests, never a browser's. And the functions' worker processes it invokes: one that
exits before or during an invocation costs that invocation at most, never the pool."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import textwrap
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from local_run import gateway
from local_run.assembly import FunctionDefinition
from local_run.gateway import LAMBDA_INVOKE_PREFIX, LAMBDA_INVOKE_SUFFIX, FunctionError, FunctionRuntime, LocalGateway
from tests.unit.test_local_schedules import FakeRuntime, _gateway

ARN = "arn:aws:lambda:local:000000000000:function:Transcriber"
HTTP_PORT = 8081
# What botocore's lambda client sends (SigV4), beside the invocation type
SIGNED = {
    "host": f"127.0.0.1:{HTTP_PORT}",
    "authorization": "AWS4-HMAC-SHA256 Credential=local/20250101/local/lambda/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0123",
    "x-amz-date": "20250101T000000Z",
}


def gateway_with(runtime: FakeRuntime) -> LocalGateway:
    gateway = _gateway([], schedule_interval=None)
    gateway.http_port = HTTP_PORT
    runtime.env = {"LOCAL_FUNCTION_ARN": ARN}  # type: ignore[attr-defined]
    gateway.runtimes = {"TranscriberFn": runtime}  # type: ignore[dict-item]
    return gateway


def invoke(
    gateway: LocalGateway,
    name: str,
    event: Any,
    invocation_type: str,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, str, bytes]:
    path = f"{LAMBDA_INVOKE_PREFIX}{name}{LAMBDA_INVOKE_SUFFIX}"
    sent = {**(SIGNED if headers is None else headers), "x-amz-invocation-type": invocation_type}
    return asyncio.run(_then_settle(gateway._http_route(method, path, json.dumps(event).encode(), sent)))


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


# -- not from a browser ----------------------------------------------------------------------------------------
CROSS_SITE_TEXT_PLAIN = {  # fetch(url, {method: "POST", mode: "no-cors", body}) from a page elsewhere: no preflight
    "host": f"127.0.0.1:{HTTP_PORT}",
    "origin": "https://attacker.example",
    "content-type": "text/plain;charset=UTF-8",
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "no-cors",
    "sec-fetch-dest": "empty",
}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (CROSS_SITE_TEXT_PLAIN, "Origin 'https://attacker.example' is not the console's"),
        # the console's own page is a browser too: it has no business invoking functions
        (
            {**CROSS_SITE_TEXT_PLAIN, "origin": f"http://127.0.0.1:{HTTP_PORT}", "sec-fetch-site": "same-origin"},
            "a browser's request (origin) for an AWS API",
        ),
        # even carrying a signature's header, and with no Origin
        (
            {**SIGNED, "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"},
            "a browser's request (sec-fetch-site) for an AWS API",
        ),
        ({"host": f"127.0.0.1:{HTTP_PORT}"}, "an AWS API request must be SigV4-signed"),
    ],
    ids=["cross-site-text-plain", "console-page", "browser-navigation", "unsigned"],
)
def test_a_request_not_signed_by_a_function_invokes_nothing(headers: dict[str, str], reason: str) -> None:
    # Given the Invoke stand-in, and a request a web page (or anything but botocore) can send
    runtime = FakeRuntime("SessionService-dev-Transcriber")
    gateway = gateway_with(runtime)
    # When it asks to invoke a function with an event it crafted
    status, _headers, body = invoke(
        gateway, "SessionService-dev-Transcriber", {"sessionId": "golden-eagle-427"}, "Event", headers
    )
    # Then it is refused with 403 and its reason, and the function never runs
    assert (status, json.loads(body)) == (HTTPStatus.FORBIDDEN, {"message": "Forbidden", "reason": reason})
    assert runtime.calls == []


def test_a_cors_preflight_for_the_invoke_api_is_refused() -> None:
    # Given a page that would send the signature's header cross-site: its browser asks first, with OPTIONS
    gateway = gateway_with(FakeRuntime("SessionService-dev-Transcriber"))
    preflight = {
        "host": f"127.0.0.1:{HTTP_PORT}",
        "origin": f"http://localhost:{HTTP_PORT}",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization",
        "sec-fetch-mode": "cors",
    }
    status, headers, _body = invoke(gateway, "SessionService-dev-Transcriber", {}, "Event", preflight, "OPTIONS")
    # Then the answer allows nothing
    assert status == HTTPStatus.FORBIDDEN and "access-control" not in headers.lower()


# -- the functions' worker processes ------------------------------------------------------------------------------
HANDLER = """
    import sys
    import time

    def handler(event, context):
        if event.get("log"):
            print(event["log"])  # as Powertools' logger writes its JSON lines (to stdout, the run's log)
            print(event["log"] + " (stderr)", file=sys.stderr)
        if event.get("wait"):
            time.sleep(60)  # until its process is stopped
        return event.get("echo")
"""


@pytest.fixture()
def runtime(tmp_path: Path) -> FunctionRuntime:
    """A function whose handler echoes its event's ``echo``, or waits when asked to, in real worker processes."""
    (tmp_path / "echo.py").write_text(textwrap.dedent(HANDLER))
    definition = FunctionDefinition(
        logical_id="EchoFn",
        name="Demo-dev-Echo",
        handler="echo.handler",
        code_dir=tmp_path,
        environment={},
        timeout_seconds=30,
        memory_mb=128,
    )
    return FunctionRuntime(definition, {"PATH": os.environ.get("PATH", "")})


def test_an_invocation_whose_worker_exits_as_the_run_stops_fails_as_a_function_error(
    runtime: FunctionRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function's warm worker, busy with an invocation that notices its worker's exit only after the run
    # has closed the function (as when the workers die with the run's process group, and close() finds them gone)
    noticed = asyncio.Event()
    call = gateway._Worker.call

    async def call_noticed_late(worker: gateway._Worker, payload: dict[str, Any], timeout: float) -> Any:
        await noticed.wait()
        return await call(worker, payload, timeout)

    monkeypatch.setattr(gateway._Worker, "call", call_noticed_late)

    async def scenario() -> tuple[BaseException | None, Any]:
        await runtime.warm()
        busy = asyncio.create_task(runtime.invoke({"wait": True}))
        while not busy.done() and runtime._idle.qsize():  # until the invocation has taken the worker
            await asyncio.sleep(0)
        # When the run closes the function (its worker exits mid-invocation), and the invocation notices
        await runtime.close()
        noticed.set()
        failure = (await asyncio.gather(busy, return_exceptions=True))[0]
        # Then the function can still be invoked afterwards, on a new worker
        try:
            return failure, await runtime.invoke({"echo": "after"})
        finally:
            await runtime.close()

    failure, after = asyncio.run(scenario())
    # And the interrupted invocation failed as a function error (what every caller handles), nothing else
    assert isinstance(failure, FunctionError), repr(failure)
    assert after == "after"


def test_an_idle_worker_that_exited_is_replaced_and_the_invocation_runs(runtime: FunctionRuntime) -> None:
    # Given a function's warm worker whose process has exited while idle
    async def scenario() -> Any:
        await runtime.warm()
        (worker,) = runtime._all
        worker.process.kill()
        await worker.process.wait()
        # When the function is invoked
        try:
            return await runtime.invoke({"echo": "ran"})
        finally:
            await runtime.close()

    # Then the invocation runs on a new worker instead of failing on the dead one
    assert asyncio.run(scenario()) == "ran"


def test_a_functions_log_lines_are_records_of_the_function_log_not_the_runs_own_stderr(
    runtime: FunctionRuntime, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given a function that writes a log line (to stdout, as Powertools does, and to stderr)
    async def scenario() -> Any:
        try:
            return await runtime.invoke({"log": '{"level":"INFO","message":"hello"}', "echo": "done"})
        finally:
            await runtime.close()  # its last lines are forwarded before close() returns

    # When it is invoked
    with caplog.at_level(logging.INFO, logger=gateway.FUNCTION_LOG.name):
        assert asyncio.run(scenario()) == "done"
    # Then each line is a record of the function log, naming the function, as written
    lines = [(record.getMessage(), getattr(record, "function", None)) for record in caplog.records]
    assert ('{"level":"INFO","message":"hello"}', "Demo-dev-Echo") in lines
    assert ('{"level":"INFO","message":"hello"} (stderr)', "Demo-dev-Echo") in lines
    # And nothing of it went to the run's own output streams (pytest's progress output, make local's terminal)
    written = capfd.readouterr()
    assert "hello" not in written.out + written.err


def test_a_function_counts_every_invocation_it_was_given_failed_ones_included(runtime: FunctionRuntime) -> None:
    # Given a function's runtime, invoked twice successfully and once with an event whose worker is stopped under it
    async def scenario() -> tuple[int, int]:
        before = runtime.invocations
        try:
            await runtime.invoke({"echo": "one"})
            await runtime.invoke({"echo": "two"})
            busy = asyncio.create_task(runtime.invoke({"wait": True}))
            while not busy.done() and not any(w.process.returncode is None for w in runtime._all):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            for worker in list(runtime._all):
                worker.process.kill()
            await asyncio.gather(busy, return_exceptions=True)
            return before, runtime.invocations
        finally:
            await runtime.close()

    # Then it counted each of the three, as Lambda's Invocations metric does (an errored one too)
    assert asyncio.run(scenario()) == (0, 3)
