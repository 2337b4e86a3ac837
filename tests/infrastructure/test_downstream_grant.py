"""``SessionServiceStack.grant_downstream_read``: a downstream processor reads sessions and listeners."""

from __future__ import annotations

import pytest
from aws_cdk import aws_lambda as lambda_

from cdk_app import nag
from cdk_app.stack import SessionServiceStack
from lambda_src.contract import schema
from tests.infrastructure.template_support import (
    FUNCTION_TYPE,
    TABLE_MODULES,
    Synthesized,
    allowed_actions,
    allowed_pairs,
    index_arn,
    synthesize,
    table_arn,
)

DOWNSTREAM_ID = "DownstreamProcessor"
WRITE_ACTIONS = {
    "dynamodb:*",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
    "dynamodb:DeleteTable",
    "dynamodb:UpdateTable",
}


def _add_downstream_reader(stack: SessionServiceStack) -> None:
    function = lambda_.Function(
        stack,
        DOWNSTREAM_ID,
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
    )
    # A stand-in, not a deployed function: its own findings (runtime, CDK's default role) are not the point.
    nag.acknowledge(function, "L1", "test stand-in for a downstream processor")
    nag.acknowledge_managed_policy(
        function, "service-role/AWSLambdaBasicExecutionRole", "test stand-in for a downstream processor"
    )
    stack.grant_downstream_read(function)


@pytest.fixture(scope="module")
def with_downstream() -> tuple[Synthesized, str]:
    # Given the dev stack with a separate function granted downstream read access
    synthesized = synthesize({"env": "dev"}, customize=_add_downstream_reader)
    found = [
        logical_id
        for logical_id, function in synthesized.resources(FUNCTION_TYPE).items()
        if function["Properties"].get("Handler") == "index.handler"
    ]
    assert len(found) == 1, found
    return synthesized, found[0]


def test_downstream_reader_gets_sessions_and_queries_listeners(with_downstream: tuple[Synthesized, str]) -> None:
    synthesized, function_id = with_downstream

    # When its role's DynamoDB grants are read
    pairs = allowed_pairs(synthesized.statements_of_role(synthesized.function_role_id(function_id)))
    dynamodb = {pair for pair in pairs if pair[0].startswith("dynamodb:")}

    # Then it may read a session (GetItem, what lambda_src.downstream calls) and list a session's listeners
    # by language (Query on the listeners index), and nothing else: no scan, no other index, no other table
    assert dynamodb == {
        ("dynamodb:GetItem", table_arn(synthesized.sessions_table_id)),
        ("dynamodb:BatchGetItem", table_arn(synthesized.sessions_table_id)),
        ("dynamodb:Query", index_arn(synthesized.connections_table_id, schema.CONNECTIONS_BY_SESSION_INDEX)),
    }


def test_downstream_reader_cannot_write(with_downstream: tuple[Synthesized, str]) -> None:
    synthesized, function_id = with_downstream

    # When its role's policies are read
    actions = allowed_actions(synthesized.statements_of_role(synthesized.function_role_id(function_id)))

    # Then no write action, nor the @connections API, is among them
    assert actions, "the downstream reader was granted nothing"
    assert not actions & WRITE_ACTIONS, sorted(actions & WRITE_ACTIONS)
    assert not {action for action in actions if action.startswith("execute-api:")}


def test_downstream_grant_leaves_the_service_functions_alone(
    with_downstream: tuple[Synthesized, str], synthesized_environment
) -> None:
    synthesized, function_id = with_downstream
    plain = synthesized_environment("dev")

    # When the service's functions are compared with those of the plain dev stack
    # Then each holds exactly the same grants as before
    for module in sorted(TABLE_MODULES):
        before = allowed_pairs(plain.statements_of_function(plain.function_id(module)))
        after = allowed_pairs(synthesized.statements_of_function(synthesized.function_id(module)))
        assert after == before, module
    assert synthesized.function_role_id(function_id) not in {
        synthesized.function_role_id(synthesized.function_id(module)) for module in TABLE_MODULES
    }
