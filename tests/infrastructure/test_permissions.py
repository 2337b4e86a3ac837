"""Least privilege: each function's own role holds exactly the DynamoDB actions its code calls, on exactly the
tables and indexes it touches; nothing on ``*`` but what has no resource-level permission; no managed policy.

The expectations are written out here, read off ``lambda_src`` (handlers, service, repositories), not taken
from ``cdk_app.permissions``: a grant that drifts from this table fails, whichever side moved.
"""

from __future__ import annotations

import pytest

from cdk_app.permissions import GET, TableAccess
from cdk_app.stack import SessionServiceStack
from lambda_src.contract import schema
from tests.infrastructure.template_support import (
    ALL_MODULES,
    LOG_GROUP_TYPE,
    Synthesized,
    allowed_pairs,
    as_list,
    canonical,
    get_att,
    index_arn,
    ref,
    synthesize,
    table_arn,
)

# Handler module -> resource -> the exact DynamoDB actions (without the "dynamodb:" prefix) it may call.
# Transactions need the per-item actions (Put/Update/Delete/ConditionCheck) on each table they touch.
EXPECTED_DYNAMODB_ACCESS: dict[str, dict[str, set[str]]] = {
    # create (session Put + row Put + counters), join (session read, count Update + row Put + counters),
    # refresh (session read; count Update or ConditionCheck + old row Delete + new row Put), resume (session
    # read, speaker Update + row Put), plain connection (row Put + counter); a resume tells the listeners
    # (index Query) and counts out the gone ones (row read, Delete, session Update); the secret that keys
    # source addresses (read, or created by a conditional Put); the speaker's active sessions (Update in the
    # create transaction; at the limit, the listed sessions read with BatchGetItem, the gone ones taken out).
    "connect": {
        "Sessions": {"GetItem", "BatchGetItem", "PutItem", "UpdateItem", "ConditionCheckItem"},
        "Connections": {"GetItem", "PutItem", "DeleteItem"},
        "Connections/index/bySessionLanguage": {"Query"},
        "RateLimits": {"GetItem", "PutItem", "UpdateItem"},
    },
    # createSession / joinSession on an open connection (row attached by Update), heartbeat notices (row
    # Update), leave (row read, detach Update, count Update), config / status / end (row read, session read
    # or Update, index Query), and the gone listeners of an ended session (row read, Delete); the speaker's
    # active sessions as on connect, and taken from by the end transaction; sendAudio (session read, the
    # chunk's conditional PutItem into the audio buffer, nothing else there).
    "message": {
        "Sessions": {"GetItem", "BatchGetItem", "PutItem", "UpdateItem"},
        "Connections": {"GetItem", "UpdateItem", "DeleteItem"},
        "Connections/index/bySessionLanguage": {"Query"},
        "RateLimits": {"UpdateItem"},
        "AudioChunks": {"PutItem"},
    },
    # Row read; row Delete with the count Update (the session's or its seat's), or the speaker's window Update;
    # listeners told (the session read when nobody is under its own key: its listeners may be under its seat shards').
    "disconnect": {
        "Sessions": {"GetItem", "BatchGetItem", "UpdateItem"},
        "Connections": {"GetItem", "DeleteItem"},
        "Connections/index/bySessionLanguage": {"Query"},
    },
    # Due sessions from the sparse sweep index (Scan), each read and ended; listeners told and dismissed; the
    # indexed sessions' activity for the gauges (BatchGetItem); an ended session leaves its speaker's active
    # sessions in the same transaction (RateLimits Update); an ended session's seats closed (Update; a Put replacing
    # one an earlier session of the id left), the sharded sessions' seats read for the gauges (BatchGetItem).
    "sweeper": {
        "Sessions": {"GetItem", "BatchGetItem", "PutItem", "UpdateItem"},
        "Sessions/index/bySweepTime": {"Scan"},
        "Connections": {"GetItem", "DeleteItem"},
        "Connections/index/bySessionLanguage": {"Query"},
        "RateLimits": {"UpdateItem"},
    },
    # The Connections stream only (its event source); ListStreams has no resource-level permission. The
    # listener counts of a batch's sessions for its sessionJoined messages (BatchGetItem).
    "welcome": {
        "Sessions": {"BatchGetItem"},
        "Connections/stream": {"DescribeStream", "GetRecords", "GetShardIterator"},
        "*": {"ListStreams"},
    },
    # The Connections stream, the same way; the session read, the push recorded on it, its listeners by language
    # (the index, or a sharded session's seats: BatchGetItem).
    "status": {
        "Sessions": {"GetItem", "BatchGetItem", "UpdateItem"},
        "Connections/index/bySessionLanguage": {"Query"},
        "Connections/stream": {"DescribeStream", "GetRecords", "GetShardIterator"},
        "*": {"ListStreams"},
    },
    # The transcription consumer: its lease on the session (conditional Update returning the item), the audio
    # buffer read in order (Query on the table's own key), the captions' fan-out: listeners by language, a gone
    # one's row read and removed and the session counted down, the listeners' delivery choices (BatchGetItem of their
    # rows; the session read when nobody is under its own key); the spoken segments' numbers (the session's Update);
    # and the transcript's batched puts (no read).
    "transcriber": {
        "Sessions": {"GetItem", "BatchGetItem", "UpdateItem"},
        "AudioChunks": {"Query"},
        "Connections": {"GetItem", "BatchGetItem", "DeleteItem"},
        "Connections/index/bySessionLanguage": {"Query"},
        "Transcripts": {"BatchWriteItem"},
    },
    # The HTTP session API: create (session Put, the speaker's active sessions and creation count Update; at the
    # limit, the listed sessions read with BatchGetItem), read (GetItem), the settings (Update), end (session read,
    # the end Update with the active sessions' Update), the listeners told (index Query) and a gone one counted out
    # (row read, Delete, session Update). No row of its own: it holds no connection. The owner's transcript read
    # (Query) and deleted (BatchWriteItem).
    "http_api": {
        "Sessions": {"GetItem", "BatchGetItem", "PutItem", "UpdateItem"},
        "Connections": {"GetItem", "DeleteItem"},
        "Connections/index/bySessionLanguage": {"Query"},
        "RateLimits": {"UpdateItem"},
        "Transcripts": {"Query", "BatchWriteItem"},
    },
    # The fan-out per shard: its shards' listeners (index Query) and their delivery choices (BatchGetItem of their
    # rows); a gone one's row read and removed with its seat counted down. Never the session.
    "fanout": {
        "Sessions": {"UpdateItem"},
        "Connections": {"GetItem", "BatchGetItem", "DeleteItem"},
        "Connections/index/bySessionLanguage": {"Query"},
    },
    "authorizer": {},
}

# With customer managed keys: handler module -> the exact KMS actions (without "kms:") on the tables' key, and
# how. DynamoDB decrypts the table key with the caller's permission on every request, read or write, so each
# function with item or index actions holds kms:Decrypt, through DynamoDB only; the welcome function reads the
# stream, whose records the same key protects. Nothing else (no Encrypt, GenerateDataKey, DescribeKey).
VIA_DYNAMODB = "via DynamoDB"
FOR_THE_STREAM = "unconditioned"
EXPECTED_TABLE_KEY_ACCESS: dict[str, set[tuple[str, str]]] = {
    "connect": {("Decrypt", VIA_DYNAMODB)},
    "message": {("Decrypt", VIA_DYNAMODB)},
    "disconnect": {("Decrypt", VIA_DYNAMODB)},
    "sweeper": {("Decrypt", VIA_DYNAMODB)},
    "welcome": {("Decrypt", VIA_DYNAMODB), ("Decrypt", FOR_THE_STREAM)},
    "status": {("Decrypt", VIA_DYNAMODB), ("Decrypt", FOR_THE_STREAM)},
    "transcriber": {("Decrypt", VIA_DYNAMODB)},
    "fanout": {("Decrypt", VIA_DYNAMODB)},
    "http_api": {("Decrypt", VIA_DYNAMODB)},
    "authorizer": set(),
}
DYNAMODB_VIA_SERVICE = {
    "StringEquals": {"kms:ViaService": {"Fn::Join": ["", ["dynamodb.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}
}

# Actions that may be granted on "*": their services support no resource-level permission.
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
LIST_STREAMS = "dynamodb:ListStreams"
TRANSCRIBER_UNSCOPED = {
    "transcribe:StartStreamTranscriptionWebSocket",
    "translate:TranslateText",
    "polly:SynthesizeSpeech",
}
TRACED_ENVIRONMENTS = {"staging", "prod"}


def _labels(deployed: Synthesized) -> dict[str, str]:
    """Canonical IAM resource -> the label the expectations use."""
    return {
        table_arn(deployed.sessions_table_id): "Sessions",
        index_arn(deployed.sessions_table_id, "bySweepTime"): "Sessions/index/bySweepTime",
        table_arn(deployed.connections_table_id): "Connections",
        index_arn(deployed.connections_table_id, "bySessionLanguage"): "Connections/index/bySessionLanguage",
        canonical(get_att(deployed.connections_table_id, "StreamArn")): "Connections/stream",
        table_arn(deployed.rate_limits_table_id): "RateLimits",
        table_arn(deployed.audio_chunks_table_id): "AudioChunks",
        table_arn(deployed.transcripts_table_id): "Transcripts",
        canonical("*"): "*",
    }


def _dynamodb_access(deployed: Synthesized, module: str) -> dict[str, set[str]]:
    """Resource label (or the raw resource, when unknown) -> DynamoDB actions granted to the module's role."""
    labels = _labels(deployed)
    access: dict[str, set[str]] = {}
    for action, resource in allowed_pairs(deployed.statements_of_function(deployed.function_id(module))):
        if action.startswith("dynamodb:"):
            access.setdefault(labels.get(resource, resource), set()).add(action.removeprefix("dynamodb:"))
    return access


def test_the_expectations_cover_every_function() -> None:
    assert set(EXPECTED_DYNAMODB_ACCESS) == ALL_MODULES
    assert set(EXPECTED_TABLE_KEY_ACCESS) == ALL_MODULES
    # (the labels name the schema's indexes)
    assert schema.SESSIONS_BY_SWEEP_TIME_INDEX == "bySweepTime"
    assert schema.CONNECTIONS_BY_SESSION_INDEX == "bySessionLanguage"


@pytest.mark.parametrize("module", sorted(EXPECTED_DYNAMODB_ACCESS))
def test_each_function_holds_exactly_the_dynamodb_actions_it_calls(deployed: Synthesized, module: str) -> None:
    # Given the function's role, as deployed
    access = _dynamodb_access(deployed, module)

    # Then it holds exactly the expected actions, table by table and index by index: no other action (no
    # Scan of a table, no BatchWriteItem, no dynamodb:*), no other table, no index wildcard
    assert access == EXPECTED_DYNAMODB_ACCESS[module], module


def _kms_access(synthesized: Synthesized, module: str) -> set[tuple[str, str, str]]:
    """(action, resource label, condition label) for every KMS action the module's role is allowed on any key but
    the audio bucket's (test_audio_bucket holds the transcriber's use of that one)."""
    labels = {canonical(get_att(synthesized.tables_key_id, "Arn")): "tables key"} if synthesized.tables_key_id else {}
    audio_key = canonical(get_att(synthesized.audio_key_id, "Arn")) if synthesized.audio_key_id else None
    found = set()
    for statement in synthesized.statements_of_function(synthesized.function_id(module)):
        if statement.get("Effect") != "Allow":
            continue
        condition = statement.get("Condition")
        condition_label = (
            FOR_THE_STREAM
            if condition is None
            else VIA_DYNAMODB
            if condition == DYNAMODB_VIA_SERVICE
            else canonical(condition)
        )
        for action in as_list(statement.get("Action", [])):
            if action.startswith("kms:"):
                for resource in as_list(statement.get("Resource", [])):
                    if canonical(resource) == audio_key:
                        continue
                    found.add(
                        (
                            action.removeprefix("kms:"),
                            labels.get(canonical(resource), canonical(resource)),
                            condition_label,
                        )
                    )
    return found


@pytest.mark.parametrize("module", sorted(EXPECTED_TABLE_KEY_ACCESS))
def test_each_function_holds_exactly_the_kms_actions_its_table_access_needs(deployed: Synthesized, module: str) -> None:
    # Given the function's role, in dev (AWS managed keys) and prod (customer managed keys)
    access = _kms_access(deployed, module)

    # Then with customer managed keys it holds exactly the expected actions on the tables' key, each with the
    # expected condition; with AWS managed keys it holds no KMS action at all
    if deployed.config.customer_managed_keys:
        expected = {(action, "tables key", how) for action, how in EXPECTED_TABLE_KEY_ACCESS[module]}
    else:
        expected = set()
    assert access == expected, (deployed.name, module)


def test_customer_managed_keys_grant_the_same_kms_actions_when_overridden() -> None:
    # Given dev with -c customerManagedKeys=true
    synthesized = synthesize({"env": "dev", "customerManagedKeys": "true"})

    # Then every function holds exactly the expected KMS actions, as in prod
    for module, expected in EXPECTED_TABLE_KEY_ACCESS.items():
        assert _kms_access(synthesized, module) == {(action, "tables key", how) for action, how in expected}, module


def test_no_table_action_is_granted_on_every_index(deployed: Synthesized) -> None:
    # Given every function's grants
    every_index = {index_arn(table_id) for table_id in (deployed.sessions_table_id, deployed.connections_table_id)}
    for module in sorted(ALL_MODULES):
        pairs = allowed_pairs(deployed.statements_of_function(deployed.function_id(module)))

        # Then none names <table>/index/* (each Query or Scan names its one index)
        assert not {pair for pair in pairs if pair[1] in every_index}, module


def test_nothing_on_star_but_what_has_no_resource_level_permission(deployed_any: Synthesized) -> None:
    # Given every function of an environment
    traced = deployed_any.name in TRACED_ENVIRONMENTS
    for module in sorted(ALL_MODULES):
        pairs = allowed_pairs(deployed_any.statements_of_function(deployed_any.function_id(module)))
        on_star = {action for action, resource in pairs if resource == canonical("*")}

        # Then the only actions on "*" are X-Ray's (where tracing is on), the stream functions'
        # dynamodb:ListStreams, and the transcriber's Transcribe stream, Translate and Polly calls
        expected = (
            (XRAY_ACTIONS if traced else set())
            | ({LIST_STREAMS} if module in ("welcome", "status") else set())
            | (TRANSCRIBER_UNSCOPED if module == "transcriber" else set())
        )
        assert on_star == expected, (deployed_any.name, module)


def test_roles_have_no_managed_policy_and_write_only_their_own_logs(deployed_any: Synthesized) -> None:
    # Given every function and its role
    for module in sorted(ALL_MODULES):
        function_id = deployed_any.function_id(module)
        role = deployed_any.resource(deployed_any.function_role_id(function_id))
        log_group_id = deployed_any.functions[function_id]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]

        # Then the role trusts Lambda only and carries no AWS managed policy
        assert "ManagedPolicyArns" not in role["Properties"], module
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
        ], module
        # And its only logs actions write to its function's own log group
        logs_pairs = {
            pair
            for pair in allowed_pairs(deployed_any.statements_of_function(function_id))
            if pair[0].startswith("logs:")
        }
        assert deployed_any.resource(log_group_id)["Type"] == LOG_GROUP_TYPE
        assert logs_pairs == {
            ("logs:CreateLogStream", canonical(get_att(log_group_id, "Arn"))),
            ("logs:PutLogEvents", canonical(get_att(log_group_id, "Arn"))),
        }, module


def test_tracing_is_active_where_configured(deployed_any: Synthesized) -> None:
    # Given every function of an environment
    traced = deployed_any.name in TRACED_ENVIRONMENTS
    assert deployed_any.config.tracing_enabled is traced
    for logical_id, function in deployed_any.functions.items():
        # Then X-Ray tracing is Active in staging and prod, and not configured in dev
        tracing = function["Properties"].get("TracingConfig")
        assert tracing == ({"Mode": "Active"} if traced else None), (deployed_any.name, logical_id)


def test_tracing_override_from_context() -> None:
    # Given dev with -c tracingEnabled=true
    synthesized = synthesize({"env": "dev", "tracingEnabled": "true"})

    # Then every function traces, and may write its traces
    for logical_id, function in synthesized.functions.items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, logical_id
        pairs = allowed_pairs(synthesized.statements_of_function(logical_id))
        assert {(action, canonical("*")) for action in XRAY_ACTIONS} <= pairs, logical_id


def test_a_grant_naming_an_index_the_table_lacks_is_refused() -> None:
    # Given a grant naming an index the Sessions table does not have
    def grant(stack: SessionServiceStack) -> None:
        function = stack.websocket.authorizer_function
        stack.tables.grant_access(function, [TableAccess(schema.SESSIONS, {GET}, {"noSuchIndex": {GET}})])

    # When / Then the synth refuses it, naming the index
    with pytest.raises(ValueError, match="noSuchIndex"):
        synthesize({"env": "dev"}, customize=grant)


def test_function_role_ids_are_the_functions_own(deployed: Synthesized) -> None:
    # Given every function
    for logical_id in deployed.functions:
        role_id = deployed.function_role_id(logical_id)

        # Then its role's policies are attached to that role alone
        for policy in deployed.policies_of_role(role_id).values():
            assert policy["Properties"]["Roles"] == [ref(role_id)], logical_id
