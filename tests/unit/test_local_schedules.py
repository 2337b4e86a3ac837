"""The local run's scheduled rules: read from a cloud assembly, and run by the gateway on their interval."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from local_run import assembly as cloud_assembly
from local_run.assembly import LOCAL_ACCOUNT, LOCAL_REGION, ScheduledTrigger, rate_seconds
from local_run.gateway import FunctionError, LocalGateway

STACK = "Demo-dev"
ASSET = "0123abcd"


def _function(handler: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Runtime": "python3.12",
            "Handler": handler,
            "Code": {"S3Bucket": "bucket", "S3Key": f"{ASSET}.zip"},
        },
    }


def _rule(expression: str, *targets: dict[str, Any], state: str | None = "ENABLED") -> dict[str, Any]:
    props: dict[str, Any] = {"ScheduleExpression": expression, "Targets": list(targets)}
    if state is not None:
        props["State"] = state
    return {"Type": "AWS::Events::Rule", "Properties": props}


def _target(function: str, **extra: Any) -> dict[str, Any]:
    return {"Arn": {"Fn::GetAtt": [function, "Arn"]}, "Id": f"Target-{function}", **extra}


def write_cdk_out(tmp_path: Path, rules: dict[str, dict[str, Any]]) -> Path:
    """The least a cdk.out needs for ``assembly.load``: one stack template with a WebSocket API, and the
    stack's assets manifest naming the functions' code directory."""
    resources = {
        "Api": {
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {"ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.action"},
        },
        "Stage": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {"ApiId": {"Ref": "Api"}, "StageName": "dev"}},
        "SweeperFn": _function("handlers.sweeper.handler"),
        "OtherFn": _function("handlers.other.handler"),
        "NodeFn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"Runtime": "nodejs20.x", "Handler": "index.handler", "Code": {"ZipFile": "x"}},
        },
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "SweeperPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Fn::GetAtt": ["SweeperFn", "Arn"]},
                "Principal": "events.amazonaws.com",
                "SourceArn": {"Fn::GetAtt": ["EveryMinute", "Arn"]},
            },
        },
        **rules,
    }
    (tmp_path / f"{STACK}.template.json").write_text(json.dumps({"Resources": resources}))
    (tmp_path / f"asset.{ASSET}").mkdir()
    (tmp_path / f"{STACK}.assets.json").write_text(
        json.dumps({"version": "55.0.0", "files": {ASSET: {"source": {"path": f"asset.{ASSET}", "packaging": "zip"}}}})
    )
    return tmp_path


def load(cdk_out: Path) -> cloud_assembly.Assembly:
    return cloud_assembly.load(cdk_out, cloud_assembly.LocalAddresses(8080, 8081))


# -- reading the assembly ------------------------------------------------------------------------------
def test_enabled_rate_rules_targeting_local_functions_become_schedules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given rules at rate(1 minute) and rate(2 hours), a cron rule, a disabled rule, and rules whose only
    # targets are not functions of the assembly
    cdk_out = write_cdk_out(
        tmp_path,
        {
            "EveryMinute": _rule("rate(1 minute)", _target("SweeperFn")),
            "EveryTwoHours": _rule(
                "rate(2 hours)", _target("OtherFn", Input='{"mode": "full", "limit": 5}'), state=None
            ),
            "Nightly": _rule("cron(0 3 * * ? *)", _target("SweeperFn")),
            "Disabled": _rule("rate(5 minutes)", _target("SweeperFn"), state="DISABLED"),
            "ToNode": _rule("rate(1 day)", _target("NodeFn")),
            "ToQueue": _rule("rate(1 day)", {"Arn": {"Fn::GetAtt": ["Queue", "Arn"]}, "Id": "Q"}),
        },
    )
    # When the assembly is read
    schedules = {s.function: s for s in load(cdk_out).schedules}
    # Then the two rate rules are schedules of their functions, at their intervals, with their inputs
    assert set(schedules) == {"SweeperFn", "OtherFn"}
    sweeper, other = schedules["SweeperFn"], schedules["OtherFn"]
    assert (sweeper.interval_seconds, sweeper.input) == (60.0, None)
    assert sweeper.rule_arn == f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT}:rule/{STACK}-EveryMinute"
    assert (other.interval_seconds, other.input) == (7200.0, {"mode": "full", "limit": 5})
    # And the cron rule is skipped with a warning that names it
    assert "Nightly" in capsys.readouterr().err


def test_one_rule_with_two_function_targets_schedules_both(tmp_path: Path) -> None:
    cdk_out = write_cdk_out(
        tmp_path,
        {
            "Both": _rule("rate(3 days)", _target("SweeperFn"), {"Arn": {"Ref": "OtherFn"}, "Id": "ByRef"}),
        },
    )
    schedules = load(cdk_out).schedules
    assert sorted((s.function, s.interval_seconds) for s in schedules) == [
        ("OtherFn", 259200.0),
        ("SweeperFn", 259200.0),
    ]


@pytest.mark.parametrize(
    "expression, seconds",
    [
        ("rate(1 minute)", 60.0),
        ("rate(5 minutes)", 300.0),
        ("rate(1 hour)", 3600.0),
        ("rate(2 hours)", 7200.0),
        ("rate(1 day)", 86400.0),
        ("rate(7 days)", 604800.0),
        ("cron(0/5 * * * ? *)", None),
        ("rate(0 minutes)", None),
        ("rate(10 seconds)", None),
        ("rate(minute)", None),
    ],
)
def test_rate_expressions(expression: str, seconds: float | None) -> None:
    assert rate_seconds(expression) == seconds


def test_without_input_the_event_is_eventbridges_scheduled_event() -> None:
    trigger = ScheduledTrigger("Fn", 60.0, None, rule_arn="arn:aws:events:us-east-1:000000000000:rule/r")
    event = trigger.event(datetime(2024, 5, 1, 12, 30, 5, tzinfo=UTC))
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert (event["version"], event["account"], event["region"]) == ("0", LOCAL_ACCOUNT, LOCAL_REGION)
    assert event["time"] == "2024-05-01T12:30:05Z"
    assert event["resources"] == ["arn:aws:events:us-east-1:000000000000:rule/r"] and event["detail"] == {}
    assert event["id"] != trigger.event()["id"]


def test_with_input_the_event_is_the_input() -> None:
    assert ScheduledTrigger("Fn", 60.0, {"a": 1}).event() == {"a": 1}


# -- running the schedules ---------------------------------------------------------------------------
class FakeRuntime:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.definition = type("Definition", (), {"name": name})()
        self.calls: list[tuple[float, Any]] = []
        self.fail = fail

    async def invoke(self, event: Any) -> Any:
        self.calls.append((time.monotonic(), event))
        if self.fail:
            raise FunctionError("boom")
        return None

    async def close(self) -> None:
        pass


def _gateway(schedules: list[ScheduledTrigger], schedule_interval: float | None) -> LocalGateway:
    assembly = cloud_assembly.Assembly(
        stack_name=STACK,
        stage="dev",
        route_selection_expression="$request.body.action",
        routes={},
        functions={},
        tables={},
        triggers=[],
        schedules=schedules,
    )
    return LocalGateway(assembly, websocket_port=0, http_port=0, base_env={}, schedule_interval=schedule_interval)


def test_schedules_invoke_their_function_every_overridden_interval_until_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a gateway whose rules run at rate(1 minute) and rate(1 day), overridden to every 0.1 s
    gateway = _gateway(
        [
            ScheduledTrigger("SweeperFn", 60.0, None, rule_arn="arn:rule"),
            ScheduledTrigger("FailingFn", 86400.0, {"k": "v"}),
        ],
        schedule_interval=0.1,
    )
    sweeper, failing = FakeRuntime("sweeper"), FakeRuntime("failing", fail=True)
    gateway.runtimes = {"SweeperFn": sweeper, "FailingFn": failing}  # type: ignore[dict-item]

    async def scenario() -> float:
        started = time.monotonic()
        gateway._start_schedules()  # what start() does once its servers are up
        while (len(sweeper.calls) < 3 or len(failing.calls) < 3) and time.monotonic() - started < 1.5:
            await asyncio.sleep(0.01)
        await gateway.stop()
        stopped_with = len(sweeper.calls), len(failing.calls)
        await asyncio.sleep(0.25)
        assert (len(sweeper.calls), len(failing.calls)) == stopped_with  # stop cancels the schedules
        return started

    started = asyncio.run(scenario())
    # Then each function ran every 0.1 s (not every minute or day), the first time one interval after the start
    assert len(sweeper.calls) >= 3 and len(failing.calls) >= 3
    times = [at - started for at, _ in sweeper.calls]
    assert all(at >= 0.1 * (n + 1) - 0.01 for n, at in enumerate(times))
    assert times[2] < 1.0
    # And with the scheduled event, or the target's input
    assert all(
        event["detail-type"] == "Scheduled Event" and event["resources"] == ["arn:rule"] for _, event in sweeper.calls
    )
    assert all(event == {"k": "v"} for _, event in failing.calls)
    # And a failing run is logged to stderr without stopping its schedule
    assert "scheduled failing failed: boom" in capsys.readouterr().err


def test_without_override_the_rules_rate_is_the_interval() -> None:
    gateway = _gateway([], schedule_interval=None)
    assert gateway.schedule_interval(ScheduledTrigger("Fn", 120.0, None)) == 120.0
    assert _gateway([], schedule_interval=2.5).schedule_interval(ScheduledTrigger("Fn", 120.0, None)) == 2.5
