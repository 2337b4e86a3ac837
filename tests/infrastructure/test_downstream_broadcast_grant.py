"""``SessionServiceStack.grant_downstream`` (a stage that posts to listeners) and ``permissions.grant_translate``,
each given to a throwaway function added to the dev stack."""

from __future__ import annotations

import pytest
from aws_cdk import aws_lambda as lambda_

from cdk_app import nag, permissions
from cdk_app.stack import SessionServiceStack
from lambda_src.contract import function_settings, schema
from tests.infrastructure.template_support import (
    FUNCTION_TYPE,
    TABLE_MODULES,
    Synthesized,
    allowed_pairs,
    as_list,
    execute_api_arn_parts,
    index_arn,
    join_parts,
    ref,
    synthesize,
    table_arn,
)

POSTER_HANDLER = "poster.handler"
TRANSLATOR_HANDLER = "translator.handler"


def _throwaway(stack: SessionServiceStack, construct_id: str, handler: str) -> lambda_.Function:
    function = lambda_.Function(
        stack,
        construct_id,
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler=handler,
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
    )
    # A stand-in, not a deployed function: its own findings (runtime, CDK's default role) are not the point.
    nag.acknowledge(function, "L1", "test stand-in for a downstream stage")
    nag.acknowledge_managed_policy(
        function, "service-role/AWSLambdaBasicExecutionRole", "test stand-in for a downstream stage"
    )
    return function


def _add_functions(stack: SessionServiceStack) -> None:
    stack.grant_downstream(_throwaway(stack, "DownstreamPoster", POSTER_HANDLER))
    permissions.grant_translate(_throwaway(stack, "CaptionTranslator", TRANSLATOR_HANDLER))


@pytest.fixture(scope="module")
def granted() -> Synthesized:
    return synthesize({"env": "dev"}, customize=_add_functions)


def _function_id(synthesized: Synthesized, handler: str) -> str:
    (found,) = [
        logical_id
        for logical_id, function in synthesized.resources(FUNCTION_TYPE).items()
        if function["Properties"].get("Handler") == handler
    ]
    return found


def _statements(synthesized: Synthesized, handler: str) -> list[dict]:
    return synthesized.statements_of_role(synthesized.function_role_id(_function_id(synthesized, handler)))


def test_a_downstream_poster_gets_the_listener_index_and_the_count_out_write_only(granted: Synthesized) -> None:
    pairs = allowed_pairs(_statements(granted, POSTER_HANDLER))
    dynamodb = {pair for pair in pairs if pair[0].startswith("dynamodb:")}
    # The listener index query (and the session read when nobody is under its own key: its listeners may be under its
    # seat shards'), and what a listener's $disconnect does: its row read and removed, the count decremented
    assert dynamodb == {
        ("dynamodb:GetItem", table_arn(granted.sessions_table_id)),
        ("dynamodb:BatchGetItem", table_arn(granted.sessions_table_id)),
        ("dynamodb:Query", index_arn(granted.connections_table_id, schema.CONNECTIONS_BY_SESSION_INDEX)),
        ("dynamodb:GetItem", table_arn(granted.connections_table_id)),
        ("dynamodb:DeleteItem", table_arn(granted.connections_table_id)),
        ("dynamodb:UpdateItem", table_arn(granted.sessions_table_id)),
    }


def test_a_downstream_poster_may_manage_this_stages_connections_and_nothing_else_of_the_api(
    granted: Synthesized,
) -> None:
    statements = [
        statement
        for statement in _statements(granted, POSTER_HANDLER)
        if any(action.startswith("execute-api:") for action in as_list(statement.get("Action", [])))
    ]
    assert len(statements) == 1, statements
    assert as_list(statements[0]["Action"]) == ["execute-api:ManageConnections"]
    assert join_parts(statements[0]["Resource"]) == execute_api_arn_parts(
        granted.api_id, f"/{granted.name}/*/@connections/*"
    )


def test_a_downstream_poster_is_told_the_tables_and_the_callback_url(granted: Synthesized) -> None:
    variables = granted.resource(_function_id(granted, POSTER_HANDLER))["Properties"]["Environment"]["Variables"]
    assert variables[function_settings.ENV_SESSIONS_TABLE] == ref(granted.sessions_table_id)
    assert variables[function_settings.ENV_CONNECTIONS_TABLE] == ref(granted.connections_table_id)
    status_function = granted.resource(granted.function_id("status"))["Properties"]["Environment"]["Variables"]
    assert variables[function_settings.ENV_CALLBACK_URL] == status_function[function_settings.ENV_CALLBACK_URL]
    # (the same settings as the service's own functions, so it accepts the same languages; the status function
    # has nothing of its own, where the message function is also told the transcriber's name)
    assert {name: value for name, value in variables.items() if name != function_settings.ENV_CALLBACK_URL} == {
        name: value
        for name, value in status_function.items()
        if name != function_settings.ENV_CALLBACK_URL and name != "TRACE_AWS_CALLS"
    }


def test_the_translate_grant_is_translate_text_alone(granted: Synthesized) -> None:
    statements = _statements(granted, TRANSLATOR_HANDLER)
    translate = {pair for pair in allowed_pairs(statements) if pair[0].startswith("translate:")}
    assert translate == {(permissions.TRANSLATE_TEXT, '"*"')}
    assert not {pair for pair in allowed_pairs(statements) if pair[0].startswith(("dynamodb:", "execute-api:"))}


def test_the_grants_leave_the_service_functions_alone(granted: Synthesized, synthesized_environment) -> None:
    plain = synthesized_environment("dev")
    for module in sorted(TABLE_MODULES):
        before = allowed_pairs(plain.statements_of_function(plain.function_id(module)))
        after = allowed_pairs(granted.statements_of_function(granted.function_id(module)))
        assert after == before, module


def test_the_listeners_index_name_is_an_output(granted: Synthesized) -> None:
    granted.template.has_output("ListenersIndexName", {"Value": schema.CONNECTIONS_BY_SESSION_INDEX})
