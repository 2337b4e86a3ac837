"""X-Ray tracing of botocore's calls (``lambda_src.platform.tracing``): a function loaded with ``TRACE_AWS_CALLS`` in
Lambda
records a subsegment per AWS call; without it, the X-Ray SDK is never imported. Each case runs in a fresh
interpreter, as Lambda loads a function (the patch is process-wide and cannot be undone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lambda_src.contract import telemetry
from lambda_src.platform import tracing

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# What Lambda sets for a sampled invocation of a function whose tracing is Active.
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

_PROBE = """
import json, sys
import lambda_src.handlers.connect
from botocore.stub import Stubber
from lambda_src.adapters.repositories import dynamodb

sent = []
if "aws_xray_sdk" in sys.modules:
    from aws_xray_sdk.core import xray_recorder

    class Collector:
        def send_entity(self, entity):
            sent.append(json.loads(entity.serialize()))

        def set_daemon_address(self, address):
            pass

    xray_recorder._emitter = Collector()

client = dynamodb.client()
with Stubber(client) as stubber:
    stubber.add_response("list_tables", {"TableNames": []})
    client.list_tables()
print(json.dumps({
    "xray_loaded": "aws_xray_sdk" in sys.modules,
    "boto3_loaded": "boto3" in sys.modules,
    "subsegments": [(entity.get("name"), entity.get("aws", {}).get("operation")) for entity in sent],
}))
"""


def _load_and_call(**variables: str) -> dict:
    """A fresh interpreter loads the connect function with ``variables`` in its environment and makes one
    (stubbed) DynamoDB call; what it loaded and which subsegments it sent."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "AWS_", "_X_"))}
    environment |= {
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    environment.pop("LAMBDA_TASK_ROOT", None)
    environment |= variables
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_traced_function_records_a_subsegment_for_each_aws_call() -> None:
    # Given a function loaded in Lambda with tracing on, during a sampled invocation
    loaded = _load_and_call(
        **{telemetry.ENV_TRACE_AWS_CALLS: "true", "LAMBDA_TASK_ROOT": "/var/task", "_X_AMZN_TRACE_ID": TRACE_HEADER}
    )
    # When it calls DynamoDB
    # Then the call is a subsegment of the invocation's trace, named by service and operation
    assert loaded["subsegments"] == [["dynamodb", "ListTables"]]
    # And tracing brings in no boto3
    assert loaded["xray_loaded"] is True and loaded["boto3_loaded"] is False


def test_untraced_function_never_loads_the_xray_sdk() -> None:
    # Given a function loaded in Lambda without TRACE_AWS_CALLS (dev)
    loaded = _load_and_call(LAMBDA_TASK_ROOT="/var/task", _X_AMZN_TRACE_ID=TRACE_HEADER)
    # Then the X-Ray SDK was never imported, so its cold-start cost is not paid, and nothing is traced
    assert loaded == {"xray_loaded": False, "boto3_loaded": False, "subsegments": []}


def test_traced_function_outside_lambda_sends_nothing() -> None:
    # Given a function of a traced stack run locally (make local: no LAMBDA_TASK_ROOT, no X-Ray daemon)
    loaded = _load_and_call(**{telemetry.ENV_TRACE_AWS_CALLS: "true"})
    # Then its calls still work and no subsegment is sent
    assert loaded["subsegments"] == []


def test_only_true_asks_for_tracing() -> None:
    # Then the switch is the stack's "true" (any case), and nothing else patches botocore
    assert tracing.instrument_from_environment({}) is False
    assert tracing.instrument_from_environment({telemetry.ENV_TRACE_AWS_CALLS: "false"}) is False
