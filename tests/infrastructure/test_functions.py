"""The functions: runtime, sizing, handlers, log groups, environment, permissions and the welcome stream."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cdk_app import constants
from lambda_src import settings
from lambda_src.repositories.connections import WELCOME_ATTRIBUTE
from tests.infrastructure.template_support import (
    EVENT_SOURCE_MAPPING_TYPE,
    EXPECTED,
    HANDLER_PREFIX,
    HANDLERS_DIR,
    LOG_GROUP_TYPE,
    POLICY_TYPE,
    ROLE_TYPE,
    ROUTE_MODULES,
    TABLE_MODULES,
    WELCOME_MODULE,
    Synthesized,
    allowed_actions,
    allowed_pairs,
    arn_like,
    as_list,
    canonical,
    get_att,
    join_parts,
    ref,
    render,
    synthesize,
)

ROUTE_TIMEOUT_SECONDS = 10
WELCOME_TIMEOUT_SECONDS = 30
API_GATEWAY_INTEGRATION_LIMIT_SECONDS = 29
MANAGE_CONNECTIONS = "execute-api:ManageConnections"


def _table_arn(logical_id: str) -> str:
    return canonical(get_att(logical_id, "Arn"))


def _index_arn(logical_id: str) -> str:
    return canonical({"Fn::Join": ["", [get_att(logical_id, "Arn"), "/index/*"]]})


# --- every function --------------------------------------------------------------------------------


def test_one_function_per_handler_module(deployed: Synthesized) -> None:
    # Given the stack's functions and the handler module each runs
    modules = [deployed.function_module(logical_id) for logical_id in deployed.functions]

    # Then connect, disconnect, message and welcome each run in exactly one function, and no module twice
    for module in sorted(TABLE_MODULES):
        assert modules.count(module) == 1, f"{module}: {modules}"
    assert len(set(modules)) == len(modules), modules


def test_every_function_runs_python_312_on_arm64(deployed: Synthesized) -> None:
    # Given every function of the stack
    assert deployed.functions
    for logical_id, function in deployed.functions.items():
        properties = function["Properties"]

        # Then it runs the shared runtime, architecture and memory size
        assert properties["Runtime"] == constants.RUNTIME.name == "python3.12", logical_id
        assert properties["Architectures"] == ["arm64"], logical_id
        assert properties["MemorySize"] == constants.MEMORY_MB, logical_id


def test_function_timeouts(deployed: Synthesized) -> None:
    # Given every function and the module it runs
    for logical_id, function in deployed.functions.items():
        module = deployed.function_module(logical_id)
        timeout = function["Properties"].get("Timeout")

        # Then route functions stop after 10 s (inside API Gateway's 29 s) and the welcome function after 30 s
        if module == WELCOME_MODULE:
            assert timeout == WELCOME_TIMEOUT_SECONDS, logical_id
        else:
            assert timeout == ROUTE_TIMEOUT_SECONDS, logical_id
            assert timeout < API_GATEWAY_INTEGRATION_LIMIT_SECONDS
    assert constants.ROUTE_TIMEOUT.to_seconds() == ROUTE_TIMEOUT_SECONDS
    assert constants.WELCOME_TIMEOUT.to_seconds() == WELCOME_TIMEOUT_SECONDS


def test_every_handler_names_an_existing_handler_function(deployed: Synthesized) -> None:
    # Given every function's Handler setting
    for logical_id, function in deployed.functions.items():
        handler = function["Properties"]["Handler"]

        # Then it is lambda_src.handlers.<module>.handler, and that module defines handler()
        assert handler.startswith(HANDLER_PREFIX), handler
        module, _, attribute = handler[len(HANDLER_PREFIX) :].partition(".")
        assert attribute == "handler", handler
        source = HANDLERS_DIR / f"{module}.py"
        assert source.is_file(), f"{logical_id}: {handler} names a missing module {source}"
        top_level = {node.name for node in ast.parse(source.read_text()).body if isinstance(node, ast.FunctionDef)}
        assert "handler" in top_level, f"{source} defines no top-level handler()"


def test_every_handler_is_in_the_deployed_code_asset(deployed: Synthesized) -> None:
    # Given every function's code asset, as staged by the synth
    for logical_id, function in deployed.functions.items():
        properties = function["Properties"]
        s3_key = properties["Code"]["S3Key"]
        assert s3_key.endswith(".zip"), s3_key
        asset_dir = Path(deployed.app.outdir) / f"asset.{s3_key[: -len('.zip')]}"
        assert asset_dir.is_dir(), f"{logical_id}: no staged asset {asset_dir}"

        # Then the package holds the handler's module at the path Lambda imports it from
        module_path = properties["Handler"].rpartition(".")[0].replace(".", "/") + ".py"
        assert (asset_dir / module_path).is_file(), f"{logical_id}: {module_path} is not in the code asset"
        # And nothing but the lambda_src package (no tests, CDK app, virtualenv or caches)
        assert sorted(entry.name for entry in asset_dir.iterdir()) == ["lambda_src"], logical_id
        assert not list(asset_dir.rglob("__pycache__")), logical_id


def test_every_function_logs_to_its_own_retained_log_group(deployed_any: Synthesized) -> None:
    # Given every function of an environment
    expected = EXPECTED[deployed_any.name]
    log_groups = deployed_any.resources(LOG_GROUP_TYPE)
    used = []
    for logical_id, function in deployed_any.functions.items():
        log_group_ref = function["Properties"]["LoggingConfig"]["LogGroup"]

        # Then it logs to a log group of the stack, kept 7 days in dev, 30 in staging, 90 in prod
        assert isinstance(log_group_ref, dict) and list(log_group_ref) == ["Ref"], log_group_ref
        log_group_id = log_group_ref["Ref"]
        assert log_group_id in log_groups, f"{logical_id} logs to {log_group_id}, not a log group of the stack"
        log_group = log_groups[log_group_id]
        assert log_group["Properties"]["RetentionInDays"] == expected.log_retention_days, logical_id
        # And the log group outlives the stack where the data does
        assert log_group.get("DeletionPolicy") == expected.removal_policy, log_group_id
        used.append(log_group_id)

    # And no two functions share a log group
    assert len(set(used)) == len(used)


# --- environment -----------------------------------------------------------------------------------


def test_every_table_function_gets_the_table_names_and_limits(deployed: Synthesized) -> None:
    # Given the environment of every function that works on the tables (the route and welcome functions)
    table_functions = deployed.functions_running(TABLE_MODULES)
    assert len(table_functions) == len(TABLE_MODULES)
    for logical_id, function in table_functions.items():
        variables = function["Properties"]["Environment"]["Variables"]

        # Then the table names are the tables' own names, and the limits are the defaults
        assert variables["SESSIONS_TABLE"] == ref(deployed.sessions_table_id), logical_id
        assert variables["CONNECTIONS_TABLE"] == ref(deployed.connections_table_id), logical_id
        assert variables["SESSION_LIFETIME_HOURS"] == "3", logical_id
        assert variables["MAX_LISTENERS_PER_SESSION"] == "500", logical_id
        # And no language override is set unless configured
        assert settings.ENV_SUPPORTED_LANGUAGES not in variables, logical_id
    # (the names are the ones the functions read)
    assert (settings.ENV_SESSIONS_TABLE, settings.ENV_CONNECTIONS_TABLE) == ("SESSIONS_TABLE", "CONNECTIONS_TABLE")
    assert (settings.ENV_SESSION_LIFETIME_HOURS, settings.ENV_MAX_LISTENERS) == (
        "SESSION_LIFETIME_HOURS",
        "MAX_LISTENERS_PER_SESSION",
    )


def test_welcome_function_gets_the_stage_callback_url(deployed: Synthesized) -> None:
    # Given the welcome function's environment
    welcome_id = deployed.function_id(WELCOME_MODULE)
    variables = deployed.functions[welcome_id]["Properties"]["Environment"]["Variables"]

    # Then CALLBACK_URL is this stage's @connections endpoint, the same as the CallbackUrl output
    assert settings.ENV_CALLBACK_URL == "CALLBACK_URL"
    callback_url = variables["CALLBACK_URL"]
    assert callback_url == deployed.json["Outputs"]["CallbackUrl"]["Value"]
    names = {deployed.api_id: "abc123", "AWS::Region": "eu-west-1", "AWS::URLSuffix": "amazonaws.com"}
    assert render(callback_url, names) == f"https://abc123.execute-api.eu-west-1.amazonaws.com/{deployed.name}"


@pytest.fixture(scope="module")
def listener_cap_override() -> Synthesized:
    # Given -c env=dev -c maxListenersPerSession=42
    return synthesize({"env": "dev", "maxListenersPerSession": "42"})


def test_listener_cap_override_reaches_every_function(listener_cap_override: Synthesized) -> None:
    # When the stack is synthesized with the override
    # Then every function that works on the tables is told the overridden cap, and nothing else changes
    table_functions = listener_cap_override.functions_running(TABLE_MODULES)
    assert len(table_functions) == len(TABLE_MODULES)
    for logical_id, function in table_functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["MAX_LISTENERS_PER_SESSION"] == "42", logical_id
        assert variables["SESSION_LIFETIME_HOURS"] == "3", logical_id
        assert settings.ENV_SUPPORTED_LANGUAGES not in variables, logical_id


def test_lifetime_and_language_overrides_reach_every_function() -> None:
    # Given -c env=prod -c sessionLifetimeHours=6 -c supportedLanguages=en,es
    synthesized = synthesize({"env": "prod", "sessionLifetimeHours": "6", "supportedLanguages": "en,es"})

    # Then every function that works on the tables is told both
    table_functions = synthesized.functions_running(TABLE_MODULES)
    assert len(table_functions) == len(TABLE_MODULES)
    for logical_id, function in table_functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["SESSION_LIFETIME_HOURS"] == "6", logical_id
        assert variables["SUPPORTED_LANGUAGES"] == "en,es", logical_id
        assert variables["MAX_LISTENERS_PER_SESSION"] == "500", logical_id


# --- permissions -----------------------------------------------------------------------------------


def test_each_function_has_its_own_role(deployed: Synthesized) -> None:
    # Given every function
    roles = [deployed.function_role_id(logical_id) for logical_id in deployed.functions]

    # Then each assumes a role of its own, defined in the stack
    assert len(set(roles)) == len(roles)
    for role_id in roles:
        assert deployed.resource(role_id)["Type"] == ROLE_TYPE


def test_manage_connections_is_granted_once_to_the_welcome_function_for_its_stage(deployed: Synthesized) -> None:
    # Given every statement of every IAM policy that allows posting to connections
    found = [
        (policy_id, statement)
        for policy_id, policy in deployed.resources(POLICY_TYPE).items()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if MANAGE_CONNECTIONS in as_list(statement.get("Action", []))
    ]

    # Then there is exactly one, allowing that action alone
    assert len(found) == 1, found
    policy_id, statement = found[0]
    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == [MANAGE_CONNECTIONS]

    # And it is scoped to this API's stage: .../<api>/<env>/*/@connections/*
    assert join_parts(statement["Resource"]) == [
        "arn:",
        ref("AWS::Partition"),
        ":execute-api:",
        ref("AWS::Region"),
        ":",
        ref("AWS::AccountId"),
        ":",
        ref(deployed.api_id),
        f"/{deployed.name}/*/@connections/*",
    ]
    names = {
        "AWS::Partition": "aws",
        "AWS::Region": "eu-west-1",
        "AWS::AccountId": "123456789012",
        deployed.api_id: "abc",
    }
    pattern = render(statement["Resource"], names)
    base = "arn:aws:execute-api:eu-west-1:123456789012:abc"
    assert arn_like(pattern, f"{base}/{deployed.name}/POST/@connections/Abc123=")
    assert not arn_like(pattern, f"{base}/other/POST/@connections/Abc123=")

    # And only the welcome function's role holds it
    welcome_role = deployed.function_role_id(deployed.function_id(WELCOME_MODULE))
    assert deployed.resource(policy_id)["Properties"]["Roles"] == [ref(welcome_role)]


def test_no_other_function_can_manage_connections(deployed: Synthesized) -> None:
    # Given the functions behind the routes (and any other but the welcome function)
    others = set(deployed.functions) - {deployed.function_id(WELCOME_MODULE)}
    assert {deployed.function_module(logical_id) for logical_id in others} >= ROUTE_MODULES
    for logical_id in sorted(others):
        actions = allowed_actions(deployed.statements_of_function(logical_id))

        # Then none may call the @connections API
        assert not {action for action in actions if action.startswith("execute-api:")}, logical_id


@pytest.mark.parametrize(
    "action",
    [
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    ],
)
def test_route_functions_read_and_write_both_tables(deployed: Synthesized, action: str) -> None:
    # Given the functions behind the routes
    for module in sorted(ROUTE_MODULES):
        pairs = allowed_pairs(deployed.statements_of_function(deployed.function_id(module)))

        # Then each may use the action on both tables (transactions span both) and on the Connections index
        assert (action, _table_arn(deployed.sessions_table_id)) in pairs, (module, action)
        assert (action, _table_arn(deployed.connections_table_id)) in pairs, (module, action)
        assert (action, _index_arn(deployed.connections_table_id)) in pairs, (module, action)


def test_welcome_function_reads_no_table_data(deployed: Synthesized) -> None:
    # Given the welcome function's grants
    pairs = allowed_pairs(deployed.statements_of_function(deployed.function_id(WELCOME_MODULE)))

    # Then it reads the Connections stream, and no table items
    stream = canonical(get_att(deployed.connections_table_id, "StreamArn"))
    for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
        assert (action, stream) in pairs, action
    table_resources = {
        _table_arn(deployed.sessions_table_id),
        _table_arn(deployed.connections_table_id),
        _index_arn(deployed.connections_table_id),
    }
    assert not {pair for pair in pairs if pair[1] in table_resources}


# --- the welcome stream ----------------------------------------------------------------------------


def test_welcome_function_consumes_new_connections_with_a_first_message(deployed: Synthesized) -> None:
    # Given the stack's one event source mapping
    mapping_id, mapping = deployed.only(EVENT_SOURCE_MAPPING_TYPE)
    properties = mapping["Properties"]

    # Then it feeds the welcome function from the Connections table's stream, from now on
    assert properties["FunctionName"] == ref(deployed.function_id(WELCOME_MODULE))
    assert properties["EventSourceArn"] == get_att(deployed.connections_table_id, "StreamArn")
    assert properties["StartingPosition"] == "LATEST"

    # And its one filter admits inserted rows carrying a welcome message, and nothing else
    filters = properties["FilterCriteria"]["Filters"]
    assert len(filters) == 1, filters
    pattern = json.loads(filters[0]["Pattern"])
    assert WELCOME_ATTRIBUTE == "welcome"
    assert pattern == {
        "eventName": ["INSERT"],
        "dynamodb": {"NewImage": {WELCOME_ATTRIBUTE: {"S": [{"exists": True}]}}},
    }
