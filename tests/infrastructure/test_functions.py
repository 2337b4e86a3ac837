"""The functions: runtime, sizing, handlers, log groups, environment, permissions, the welcome stream and
the sweeper's schedule."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cdk_app import constants
from lambda_src.contract import function_settings, limits, schema, voices
from lambda_src.contract.schema import WELCOME_ATTRIBUTE
from tests.infrastructure.template_support import (
    ACCOUNT,
    ALL_MODULES,
    API_ID,
    AUTHORIZER_MODULE,
    EVENT_INVOKE_CONFIG_TYPE,
    EVENT_SOURCE_MAPPING_TYPE,
    EVENTS_PRINCIPAL,
    EXPECTED,
    FANOUT_MODULE,
    HANDLER_PREFIX,
    HANDLERS_DIR,
    LOG_GROUP_TYPE,
    PERMISSION_TYPE,
    POLICY_TYPE,
    POSTING_MODULES,
    QUEUE_POLICY_TYPE,
    QUEUE_TYPE,
    REGION,
    ROLE_TYPE,
    RULE_TYPE,
    STATUS_MODULE,
    SWEEPER_MODULE,
    TABLE_MODULES,
    TRANSCRIBER_MODULE,
    WELCOME_MODULE,
    WRITER_MODULES,
    Synthesized,
    allowed_actions,
    allowed_pairs,
    arn_like,
    as_list,
    canonical,
    execute_api_arn_parts,
    get_att,
    index_arn,
    join_parts,
    ref,
    synthesize,
    table_arn,
)

ROUTE_TIMEOUT_SECONDS = 10
WELCOME_TIMEOUT_SECONDS = 30
SWEEPER_TIMEOUT_SECONDS = 50
API_GATEWAY_INTEGRATION_LIMIT_SECONDS = 29
MANAGE_CONNECTIONS = "execute-api:ManageConnections"
DEFAULT_SPEAKER_GRACE_SECONDS = "120"


def _variables(deployed: Synthesized, function_id: str) -> dict:
    return deployed.functions[function_id]["Properties"].get("Environment", {}).get("Variables", {})


def _execute_api_actions(deployed: Synthesized, function_id: str) -> set[str]:
    return {
        action
        for action in allowed_actions(deployed.statements_of_function(function_id))
        if action.startswith("execute-api:")
    }


# --- every function --------------------------------------------------------------------------------


def test_one_function_per_handler_module(deployed: Synthesized) -> None:
    # Given the stack's functions and the handler module each runs
    modules = [deployed.function_module(logical_id) for logical_id in deployed.functions]

    # Then connect, disconnect, message, welcome, sweeper and authorizer each run in exactly one function,
    # and there is no other function
    for module in sorted(ALL_MODULES):
        assert modules.count(module) == 1, f"{module}: {modules}"
    assert len(set(modules)) == len(modules), modules
    assert set(modules) == ALL_MODULES


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

        # Then the functions API Gateway calls (routes, authorizer) stop after 10 s (inside its 29 s), the
        # welcome function after 30 s, and the sweeper after 50 s, before the next sweep starts
        if module in (WELCOME_MODULE, STATUS_MODULE):  # the stream functions
            assert timeout == WELCOME_TIMEOUT_SECONDS, logical_id
        elif module == SWEEPER_MODULE:
            assert timeout == SWEEPER_TIMEOUT_SECONDS, logical_id
            assert timeout < limits.SWEEP_INTERVAL_MINUTES * 60
        elif module == TRANSCRIBER_MODULE:  # as long as Lambda allows; it hands over before the end
            assert timeout == 15 * 60, logical_id
            assert timeout > limits.TRANSCRIBER_HANDOVER_SECONDS * 10
        elif module == FANOUT_MODULE:  # an invocation posts ~1,000 listeners in well under a second
            assert timeout == 30, logical_id
        else:
            assert timeout == ROUTE_TIMEOUT_SECONDS, logical_id
            assert timeout < API_GATEWAY_INTEGRATION_LIMIT_SECONDS
    assert constants.ROUTE_TIMEOUT.to_seconds() == ROUTE_TIMEOUT_SECONDS
    assert constants.WELCOME_TIMEOUT.to_seconds() == constants.STATUS_TIMEOUT.to_seconds() == WELCOME_TIMEOUT_SECONDS
    assert constants.SWEEPER_TIMEOUT.to_seconds() == SWEEPER_TIMEOUT_SECONDS


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
    # Given the environment of every function that works on the tables (route, welcome and sweeper functions)
    table_functions = deployed.functions_running(TABLE_MODULES)
    assert len(table_functions) == len(TABLE_MODULES)
    for logical_id, function in table_functions.items():
        variables = function["Properties"]["Environment"]["Variables"]

        # Then the table names are the tables' own names, and the limits are the defaults
        assert variables["SESSIONS_TABLE"] == ref(deployed.sessions_table_id), logical_id
        assert variables["CONNECTIONS_TABLE"] == ref(deployed.connections_table_id), logical_id
        assert variables["TRANSCRIPTS_TABLE"] == ref(deployed.transcripts_table_id), logical_id
        assert variables["SESSION_LIFETIME_HOURS"] == "3", logical_id
        assert variables["TRANSCRIPT_RETENTION_DAYS"] == "7", logical_id
        assert variables["MAX_LISTENERS_PER_SESSION"] == "500", logical_id
        # And no language override is set unless configured
        assert function_settings.ENV_SUPPORTED_LANGUAGES not in variables, logical_id
    # (the names are the ones the functions read)
    assert (function_settings.ENV_SESSIONS_TABLE, function_settings.ENV_CONNECTIONS_TABLE) == (
        "SESSIONS_TABLE",
        "CONNECTIONS_TABLE",
    )
    assert (function_settings.ENV_SESSION_LIFETIME_HOURS, function_settings.ENV_MAX_LISTENERS) == (
        "SESSION_LIFETIME_HOURS",
        "MAX_LISTENERS_PER_SESSION",
    )


def test_no_function_is_given_a_connection_time_scale(deployed: Synthesized) -> None:
    # Given every function of the stack, Then none is told to scale the connections' clocks (the local run's
    # GATEWAY_TIME_SCALE only): deployed, the refresh notice and the warnings follow API Gateway's own 2 hours
    for logical_id in deployed.functions:
        assert function_settings.ENV_CONNECTION_TIME_SCALE not in _variables(deployed, logical_id), logical_id


def test_every_table_function_gets_every_declared_setting_at_its_default(deployed: Synthesized) -> None:
    # Given the environment of every function that works on the tables
    table_functions = deployed.functions_running(TABLE_MODULES)
    for logical_id in table_functions:
        variables = _variables(deployed, logical_id)
        # Then each setting lambda_src.contract.function_settings declares is set to its default (unset when that is
        # empty)
        for setting in function_settings.FUNCTION_SETTINGS:
            expected = setting.environment_value(setting.default)
            assert variables.get(setting.env_var) == expected, (logical_id, setting.env_var)


def test_every_declared_setting_override_reaches_every_table_function() -> None:
    # Given every setting overridden by its context key
    texts = {"supported_languages": "en,de", "polly_voices": "de:Daniel"}
    overrides = {
        setting.context_key: (
            setting.choices[-1] if setting.choices else texts[setting.name] if setting.kind is str else "7"
        )
        for setting in function_settings.FUNCTION_SETTINGS
    }
    synthesized = synthesize({"env": "dev", **overrides})

    # Then every function that works on the tables is told each value, under the setting's variable
    for logical_id in synthesized.functions_running(TABLE_MODULES):
        variables = _variables(synthesized, logical_id)
        for setting in function_settings.FUNCTION_SETTINGS:
            assert variables[setting.env_var] == overrides[setting.context_key], (logical_id, setting.env_var)


def test_every_table_function_gets_the_default_speaker_grace_window(deployed_any: Synthesized) -> None:
    # Given the environment of every function that works on the tables, in each environment
    table_functions = deployed_any.functions_running(TABLE_MODULES)
    assert len(table_functions) == len(TABLE_MODULES)
    for logical_id in table_functions:
        variables = _variables(deployed_any, logical_id)

        # Then a dropped speaker may resume within the default 120 s
        assert variables["SPEAKER_GRACE_SECONDS"] == DEFAULT_SPEAKER_GRACE_SECONDS, logical_id
    # (the name the functions read, and the default they fall back to)
    assert function_settings.ENV_SPEAKER_GRACE_SECONDS == "SPEAKER_GRACE_SECONDS"
    assert str(limits.DEFAULT_SPEAKER_GRACE_SECONDS) == DEFAULT_SPEAKER_GRACE_SECONDS


def test_posting_functions_get_the_stage_callback_url(deployed: Synthesized) -> None:
    # Given the functions that post to connections
    posting = deployed.functions_running(POSTING_MODULES)
    assert len(posting) == len(POSTING_MODULES)
    assert function_settings.ENV_CALLBACK_URL == "CALLBACK_URL"
    for logical_id in sorted(posting):
        callback_url = _variables(deployed, logical_id)["CALLBACK_URL"]

        # Then CALLBACK_URL is this stage's @connections endpoint, the same as the CallbackUrl output
        assert callback_url == deployed.json["Outputs"]["CallbackUrl"]["Value"], logical_id
        assert deployed.rendered(callback_url) == (
            f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/{deployed.name}"
        ), logical_id


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
        assert variables["SPEAKER_GRACE_SECONDS"] == DEFAULT_SPEAKER_GRACE_SECONDS, logical_id
        assert function_settings.ENV_SUPPORTED_LANGUAGES not in variables, logical_id


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


def test_polly_voices_reach_every_function_that_speaks_or_tells_a_listener_its_language_has_no_voice() -> None:
    # Given -c pollyVoices=es:Lucia,ro:Carmen:standard
    synthesized = synthesize({"env": "prod", "pollyVoices": "es:Lucia,ro:Carmen:standard"})

    # Then the transcriber (which speaks) and every other function on the tables (the joins, which tell a listener
    # whose language has no voice) are told the overrides in POLLY_VOICES, as the functions read it
    table_functions = synthesized.functions_running(TABLE_MODULES)
    assert synthesized.function_id(TRANSCRIBER_MODULE) in table_functions
    for logical_id in table_functions:
        value = _variables(synthesized, logical_id)[function_settings.ENV_POLLY_VOICES]
        assert value == "es:Lucia,ro:Carmen:standard", logical_id
        assert function_settings.POLLY_VOICES_SETTING.parse(value) == {
            "es": voices.PollyVoice("Lucia", neural=True),
            "ro": voices.PollyVoice("Carmen", neural=False),
        }


def test_without_polly_voices_no_function_is_given_the_variable(deployed: Synthesized) -> None:
    # (the code's table speaks)
    for logical_id in deployed.functions:
        assert function_settings.ENV_POLLY_VOICES not in _variables(deployed, logical_id), logical_id


@pytest.fixture(scope="module")
def speaker_grace_override() -> Synthesized:
    # Given -c env=prod -c speakerGraceSeconds=45
    return synthesize({"env": "prod", "speakerGraceSeconds": "45"})


def test_speaker_grace_override_reaches_every_table_function(speaker_grace_override: Synthesized) -> None:
    # When the stack is synthesized with the override
    # Then every function that works on the tables is told the overridden window, and nothing else changes
    table_functions = speaker_grace_override.functions_running(TABLE_MODULES)
    assert len(table_functions) == len(TABLE_MODULES)
    for logical_id in table_functions:
        variables = _variables(speaker_grace_override, logical_id)
        assert variables["SPEAKER_GRACE_SECONDS"] == "45", logical_id
        assert variables["SESSION_LIFETIME_HOURS"] == "3", logical_id
        assert variables["MAX_LISTENERS_PER_SESSION"] == "500", logical_id
        assert function_settings.ENV_SUPPORTED_LANGUAGES not in variables, logical_id
    # And the authorizer, which works on no table, is not told it
    authorizer_id = speaker_grace_override.function_id(AUTHORIZER_MODULE)
    assert function_settings.ENV_SPEAKER_GRACE_SECONDS not in _variables(speaker_grace_override, authorizer_id)


# --- permissions -----------------------------------------------------------------------------------


def test_each_function_has_its_own_role(deployed: Synthesized) -> None:
    # Given every function
    roles = [deployed.function_role_id(logical_id) for logical_id in deployed.functions]

    # Then each assumes a role of its own, defined in the stack
    assert len(set(roles)) == len(roles)
    for role_id in roles:
        assert deployed.resource(role_id)["Type"] == ROLE_TYPE


def _connections_arn_parts(deployed: Synthesized) -> list:
    """This stage's @connections API, any method and connection: ``.../<api>/<env>/*/@connections/*``."""
    return execute_api_arn_parts(deployed.api_id, f"/{deployed.name}/*/@connections/*")


def test_posting_functions_may_manage_connections_of_this_stage(deployed: Synthesized) -> None:
    # Given the functions that post to connections (connect, disconnect, message, sweeper and welcome)
    posting = deployed.functions_running(POSTING_MODULES)
    assert len(posting) == len(POSTING_MODULES) == 9
    base = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}"
    for logical_id in sorted(posting):
        statements = [
            statement
            for statement in deployed.statements_of_function(logical_id)
            if any(action.startswith("execute-api:") for action in as_list(statement.get("Action", [])))
        ]

        # Then each holds exactly one execute-api statement, allowing ManageConnections alone
        assert len(statements) == 1, (logical_id, statements)
        statement = statements[0]
        assert statement["Effect"] == "Allow", logical_id
        assert as_list(statement["Action"]) == [MANAGE_CONNECTIONS], logical_id

        # And it is scoped to this API's stage: .../<api>/<env>/*/@connections/*
        assert join_parts(statement["Resource"]) == _connections_arn_parts(deployed), logical_id
        pattern = deployed.rendered(statement["Resource"])
        assert arn_like(pattern, f"{base}/{deployed.name}/POST/@connections/Abc123="), logical_id
        assert not arn_like(pattern, f"{base}/other/POST/@connections/Abc123="), logical_id
        assert not arn_like(pattern, f"{base}/{deployed.name}/POST/createSession"), logical_id


def test_only_the_posting_functions_can_manage_connections(deployed: Synthesized) -> None:
    # Given every function that may call any execute-api action
    holders = {logical_id for logical_id in deployed.functions if _execute_api_actions(deployed, logical_id)}

    # Then they are exactly the posting functions
    assert holders == set(deployed.functions_running(POSTING_MODULES))
    # And every policy statement allowing ManageConnections is attached to one posting function's role only
    posting_roles = {deployed.function_role_id(logical_id) for logical_id in holders}
    granted = [
        policy["Properties"]["Roles"]
        for policy in deployed.resources(POLICY_TYPE).values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if MANAGE_CONNECTIONS in as_list(statement.get("Action", []))
    ]
    assert sorted(canonical(roles) for roles in granted) == sorted(canonical([ref(r)]) for r in posting_roles)


def test_authorizer_can_neither_manage_connections_nor_reach_them(deployed: Synthesized) -> None:
    # Given the speaker authorizer
    authorizer_id = deployed.function_id(AUTHORIZER_MODULE)

    # Then it may call no execute-api action
    assert not _execute_api_actions(deployed, authorizer_id)
    # And it is told neither the @connections endpoint nor the tables
    variables = _variables(deployed, authorizer_id)
    for name in (
        function_settings.ENV_CALLBACK_URL,
        function_settings.ENV_SESSIONS_TABLE,
        function_settings.ENV_CONNECTIONS_TABLE,
        function_settings.ENV_SPEAKER_GRACE_SECONDS,
    ):
        assert name not in variables, name


def test_welcome_function_reads_the_stream_and_only_the_sessions_counts(deployed: Synthesized) -> None:
    # Given the welcome function's grants
    pairs = allowed_pairs(deployed.statements_of_function(deployed.function_id(WELCOME_MODULE)))
    # Then it reads the sessions' counts for its sessionJoined messages (BatchGetItem), nothing else of a table
    assert ("dynamodb:BatchGetItem", table_arn(deployed.sessions_table_id)) in pairs
    pairs = {pair for pair in pairs if pair != ("dynamodb:BatchGetItem", table_arn(deployed.sessions_table_id))}

    # And it reads the Connections stream
    stream = canonical(get_att(deployed.connections_table_id, "StreamArn"))
    for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
        assert (action, stream) in pairs, action
    table_resources = {
        table_arn(deployed.sessions_table_id),
        table_arn(deployed.connections_table_id),
        table_arn(deployed.rate_limits_table_id),
        table_arn(deployed.audio_chunks_table_id),
        table_arn(deployed.transcripts_table_id),
        index_arn(deployed.sessions_table_id),
        index_arn(deployed.connections_table_id),
        index_arn(deployed.sessions_table_id, schema.SESSIONS_BY_SWEEP_TIME_INDEX),
        index_arn(deployed.connections_table_id, schema.CONNECTIONS_BY_SESSION_INDEX),
    }
    assert not {pair for pair in pairs if pair[1] in table_resources}


# --- the welcome stream ----------------------------------------------------------------------------


def _mapping_of(deployed: Synthesized, module: str) -> dict:
    """The event source mapping that feeds ``module``'s function."""
    (mapping,) = [
        mapping
        for mapping in deployed.resources(EVENT_SOURCE_MAPPING_TYPE).values()
        if mapping["Properties"]["FunctionName"] == ref(deployed.function_id(module))
    ]
    return mapping


def test_welcome_function_consumes_new_connections_with_a_first_message(deployed: Synthesized) -> None:
    # Given the welcome function's event source mapping (one of the stack's two)
    assert len(deployed.resources(EVENT_SOURCE_MAPPING_TYPE)) == 2
    properties = _mapping_of(deployed, WELCOME_MODULE)["Properties"]

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


def test_welcome_stream_isolates_bad_records_gives_up_within_a_minute_and_keeps_a_record(
    deployed: Synthesized,
) -> None:
    # Given the welcome function's event source mapping
    properties = _mapping_of(deployed, WELCOME_MODULE)["Properties"]

    # Then a failing batch is split in two (a bad record cannot hold back the others), retried twice at most,
    # and a record older than a minute (a first message nobody waits for any more) is given up on
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["MaximumRetryAttempts"] == 2
    assert properties["MaximumRecordAgeInSeconds"] == 60
    # And what is given up on is recorded in the welcome failure queue
    queue_id = _queue_of(properties["DestinationConfig"]["OnFailure"]["Destination"])
    assert queue_id == _failure_queue_id(deployed, "Welcome")


def test_status_function_consumes_listener_row_changes_in_batches_and_keeps_a_record_of_failures(
    deployed: Synthesized,
) -> None:
    # Given the status function's event source mapping
    properties = _mapping_of(deployed, STATUS_MODULE)["Properties"]
    # Then it reads the Connections stream from now on, gathering a batching window's changes
    assert properties["EventSourceArn"] == get_att(deployed.connections_table_id, "StreamArn")
    assert properties["StartingPosition"] == "LATEST"
    assert properties["MaximumBatchingWindowInSeconds"] == limits.STATUS_BATCH_WINDOW_SECONDS
    # And its filters admit a listener row before or after a change (inserted, removed or changed)
    patterns = [json.loads(f["Pattern"]) for f in properties["FilterCriteria"]["Filters"]]
    assert patterns == [
        {"dynamodb": {"NewImage": {"role": {"S": ["listener"]}}}},
        {"dynamodb": {"OldImage": {"role": {"S": ["listener"]}}}},
    ]
    # And a failing batch is split, retried twice, given up after a minute into the status failure queue
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["MaximumRetryAttempts"] == 2
    assert properties["MaximumRecordAgeInSeconds"] == 60
    queue_id = _queue_of(properties["DestinationConfig"]["OnFailure"]["Destination"])
    assert queue_id == _failure_queue_id(deployed, "Status")


def _queue_of(destination: dict) -> str:
    assert list(destination) == ["Fn::GetAtt"] and destination["Fn::GetAtt"][1] == "Arn", destination
    return destination["Fn::GetAtt"][0]


def _failure_queue_id(deployed: Synthesized, prefix: str) -> str:
    (queue_id,) = [logical_id for logical_id in deployed.resources(QUEUE_TYPE) if f"{prefix}Failures" in logical_id]
    return queue_id


def test_fanout_failures_are_not_retried_and_are_recorded(deployed: Synthesized) -> None:
    # Given the fan-out function's asynchronous invocation settings (the transcriber invokes it with InvocationType
    # Event, once per group of a big session's shards and segment)
    (config,) = [
        config
        for config in deployed.resources(EVENT_INVOKE_CONFIG_TYPE).values()
        if config["Properties"]["FunctionName"] == ref(deployed.function_id(FANOUT_MODULE))
    ]
    properties = config["Properties"]
    # Then a failed invocation is not retried (a retry would post the segment again to the listeners the first
    # reached), an event that waited a minute is dropped, and either goes to its failure queue
    assert properties["MaximumRetryAttempts"] == 0
    assert properties["MaximumEventAgeInSeconds"] == 60
    queue_id = _queue_of(properties["DestinationConfig"]["OnFailure"]["Destination"])
    assert queue_id == _failure_queue_id(deployed, "Fanout")


def test_the_transcriber_and_the_session_writers_are_told_the_fanout_function_and_may_invoke_it_alone(
    deployed: Synthesized,
) -> None:
    # The transcriber hands a big session's segments to the fan-out function; the functions that write session
    # state (and so tell listeners what happened to it: a notice, a dismissal) hand it a big audience's notices
    invoking = WRITER_MODULES | {TRANSCRIBER_MODULE}
    assert invoking == {"connect", "disconnect", "message", "sweeper", "http_api", "transcriber"}
    fanout_id = deployed.function_id(FANOUT_MODULE)
    for logical_id, function in deployed.functions.items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        if deployed.function_module(logical_id) in invoking:
            assert variables["FANOUT_FUNCTION"] == ref(fanout_id), logical_id
        else:
            assert "FANOUT_FUNCTION" not in variables, logical_id
    invokers = {
        role
        for policy in deployed.resources(POLICY_TYPE).values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "lambda:InvokeFunction"
        and get_att(fanout_id, "Arn") in as_list(statement["Resource"])
        for role in map(json.dumps, policy["Properties"]["Roles"])
    }
    assert invokers == {
        json.dumps(ref(deployed.function_role_id(deployed.function_id(module)))) for module in sorted(invoking)
    }


def test_sweeper_failures_are_not_retried_and_are_recorded(deployed: Synthesized) -> None:
    # Given the sweeper's asynchronous invocation settings (its schedule invokes it asynchronously)
    (config,) = [
        config
        for config in deployed.resources(EVENT_INVOKE_CONFIG_TYPE).values()
        if config["Properties"]["FunctionName"] == ref(deployed.function_id(SWEEPER_MODULE))
    ]
    properties = config["Properties"]

    # Then a failed sweep is not retried and one that waited over a minute is dropped (the next minute's sweep
    # redoes its work), and either is recorded in the sweeper failure queue
    assert properties["FunctionName"] == ref(deployed.function_id(SWEEPER_MODULE))
    assert properties["Qualifier"] == "$LATEST"
    assert properties["MaximumRetryAttempts"] == 0
    assert properties["MaximumEventAgeInSeconds"] == 60
    assert _queue_of(properties["DestinationConfig"]["OnFailure"]["Destination"]) == _failure_queue_id(
        deployed, "Sweeper"
    )


def test_failure_queues_are_encrypted_tls_only_and_kept_two_weeks(deployed_any: Synthesized) -> None:
    # Given the stack's queues
    queues = deployed_any.resources(QUEUE_TYPE)
    assert set(queues) == {
        _failure_queue_id(deployed_any, prefix) for prefix in ("Welcome", "Sweeper", "Status", "Fanout")
    }
    policies = deployed_any.resources(QUEUE_POLICY_TYPE)
    for queue_id, queue in queues.items():
        # Then each is encrypted (SQS managed keys), keeps a record 14 days, and stays with the data
        assert queue["Properties"] == {"MessageRetentionPeriod": 14 * 24 * 3600, "SqsManagedSseEnabled": True}
        assert queue.get("DeletionPolicy") == EXPECTED[deployed_any.name].removal_policy, queue_id
        # And its policy refuses every request not made over TLS
        (policy,) = [p for p in policies.values() if p["Properties"]["Queues"] == [ref(queue_id)]]
        assert policy["Properties"]["PolicyDocument"]["Statement"] == [
            {
                "Action": "sqs:*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Resource": get_att(queue_id, "Arn"),
            }
        ], queue_id


def test_only_each_failing_function_may_send_to_its_failure_queue(deployed: Synthesized) -> None:
    # Given every function's grants on the failure queues
    owners = {WELCOME_MODULE: "Welcome", SWEEPER_MODULE: "Sweeper"}
    queue_arns = {
        canonical(get_att(_failure_queue_id(deployed, prefix), "Arn")): module for module, prefix in owners.items()
    }
    for module in sorted(ALL_MODULES):
        pairs = allowed_pairs(deployed.statements_of_function(deployed.function_id(module)))
        on_queues = {(action, queue_arns[resource]) for action, resource in pairs if resource in queue_arns}

        # Then the welcome and sweeper functions may send to their own queue (Lambda sends with their role),
        # and no function may do anything else to any queue
        expected = (
            {(action, module) for action in ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")}
            if module in owners
            else set()
        )
        assert on_queues == expected, module


# --- reserved concurrency --------------------------------------------------------------------------


def _reserved(synthesized: Synthesized) -> dict[str, int]:
    return {
        synthesized.function_module(logical_id) or logical_id: function["Properties"]["ReservedConcurrentExecutions"]
        for logical_id, function in synthesized.functions.items()
        if "ReservedConcurrentExecutions" in function["Properties"]
    }


def test_reserved_concurrency_per_environment(deployed_any: Synthesized) -> None:
    # Given every function of an environment
    reserved = _reserved(deployed_any)

    # Then each reserves (and is capped at) the environment's value: nothing in dev, where a new account's
    # quota may be 10; in staging and prod every function, the welcome and sweeper functions included
    assert reserved == EXPECTED[deployed_any.name].reserved_concurrency
    if reserved:
        assert set(reserved) == ALL_MODULES
        # And the reservations leave Lambda's minimum of 100 unreserved in an account of the default 1000
        assert sum(reserved.values()) <= 1000 - 100


def test_reserved_concurrency_override_from_context() -> None:
    # Given prod with two reservations changed, and staging with none
    changed = synthesize({"env": "prod", "reservedConcurrency": "connect:300,sweeper:3"})
    cleared = synthesize({"env": "staging", "reservedConcurrency": "none"})

    # Then the named functions take the new values and the others keep prod's; "none" reserves nothing
    assert _reserved(changed) == EXPECTED["prod"].reserved_concurrency | {"connect": 300, "sweeper": 3}
    assert _reserved(cleared) == {}


# --- the sweeper's schedule ------------------------------------------------------------------------


def test_sweeper_runs_every_minute_without_retries(deployed: Synthesized) -> None:
    # Given the stack's one EventBridge rule
    _, rule = deployed.only(RULE_TYPE)
    properties = rule["Properties"]

    # Then it fires every minute, on a schedule rather than on events
    assert properties["ScheduleExpression"] == "rate(1 minute)"
    assert limits.SWEEP_INTERVAL_MINUTES == 1
    assert "EventPattern" not in properties
    assert properties.get("State", "ENABLED") == "ENABLED"

    # And its one target is the sweeper function, not retried (the next sweep, a minute later, covers it)
    targets = properties["Targets"]
    assert len(targets) == 1, targets
    assert targets[0]["Arn"] == get_att(deployed.function_id(SWEEPER_MODULE), "Arn")
    assert targets[0]["RetryPolicy"] == {"MaximumRetryAttempts": 0}


def test_eventbridge_may_invoke_the_sweeper_from_its_rule_only(deployed: Synthesized) -> None:
    # Given the Lambda permissions granted to EventBridge
    rule_id, _ = deployed.only(RULE_TYPE)
    found = [
        permission["Properties"]
        for permission in deployed.resources(PERMISSION_TYPE).values()
        if permission["Properties"].get("Principal") == EVENTS_PRINCIPAL
    ]

    # Then there is exactly one: invoking the sweeper function, from the sweeper's rule
    assert len(found) == 1, found
    assert found[0]["Action"] == "lambda:InvokeFunction"
    assert found[0]["FunctionName"] == get_att(deployed.function_id(SWEEPER_MODULE), "Arn")
    assert found[0]["SourceArn"] == get_att(rule_id, "Arn")


# --- the speakers' user pool -----------------------------------------------------------------------


def test_authorizer_trusts_the_stacks_user_pool(deployed: Synthesized) -> None:
    # Given the authorizer's environment and the stack's user pool
    variables = _variables(deployed, deployed.function_id(AUTHORIZER_MODULE))
    pool_id, pool = deployed.only("AWS::Cognito::UserPool")

    # Then it verifies tokens of that pool (its issuer, and the issuer's JWKS)
    assert variables[function_settings.ENV_ISSUER] == {"Fn::Join": ["", ["https://", get_att(pool_id, "ProviderURL")]]}
    assert variables[function_settings.ENV_JWKS_URL] == {
        "Fn::Join": ["", ["https://", get_att(pool_id, "ProviderURL"), "/.well-known/jwks.json"]]
    }
    # And the pool takes only strong passwords, from accounts administrators create
    properties = pool["Properties"]
    assert properties["Policies"]["PasswordPolicy"] == {
        "MinimumLength": 12,
        "RequireLowercase": True,
        "RequireUppercase": True,
        "RequireNumbers": True,
        "RequireSymbols": True,
    }
    assert properties["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}


def test_authorizer_trusts_an_imported_user_pool() -> None:
    # Given -c userPoolId=... -c userPoolClientId=... (an existing pool)
    synthesized = synthesize({"env": "prod", "userPoolId": "eu-west-1_AbC123", "userPoolClientId": "client-1"})

    # Then the stack creates no pool, and the authorizer trusts that pool's issuer and client
    assert not synthesized.resources("AWS::Cognito::UserPool")
    variables = _variables(synthesized, synthesized.function_id(AUTHORIZER_MODULE))
    assert synthesized.rendered(variables[function_settings.ENV_ISSUER]) == (
        f"https://cognito-idp.{REGION}.amazonaws.com/eu-west-1_AbC123"
    )
    assert synthesized.rendered(variables[function_settings.ENV_JWKS_URL]) == (
        f"https://cognito-idp.{REGION}.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json"
    )
    assert variables[function_settings.ENV_CLIENT_ID] == "client-1"
