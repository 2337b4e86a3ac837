"""The Sessions, Connections, RateLimits, AudioChunks and Transcripts tables: keys, TTL, encryption, stream, index
and data protection."""

from __future__ import annotations

from aws_cdk.assertions import Match

from lambda_src.contract import schema
from tests.infrastructure.template_support import EXPECTED, TABLE_TYPE, Synthesized, get_att


def expected_encryption(deployed: Synthesized) -> dict:
    """A table's SSESpecification: the stack's tables key where the environment uses customer managed keys
    (prod), else the AWS managed key (SSE on, no key named, no explicit KMS type)."""
    if not EXPECTED[deployed.name].customer_managed_keys:
        assert deployed.tables_key_id is None
        return {"SSEEnabled": True}
    assert deployed.tables_key_id is not None
    return {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": get_att(deployed.tables_key_id, "Arn")}


def _properties(deployed: Synthesized, logical_id: str) -> dict:
    return deployed.resource(logical_id)["Properties"]


def _declared_types(properties: dict) -> dict[str, str]:
    """A table's AttributeDefinitions as name -> type."""
    return {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}


def _schema_indexes(definition: schema.TableDefinition) -> list[dict]:
    """The GlobalSecondaryIndexes a table built from ``definition`` must have, in template form."""
    return [
        {
            "IndexName": index.name,
            "KeySchema": [{"AttributeName": index.partition_key.name, "KeyType": "HASH"}]
            + ([{"AttributeName": index.sort_key.name, "KeyType": "RANGE"}] if index.sort_key else []),
            "Projection": {"ProjectionType": index.projection},
        }
        for index in definition.indexes
    ]


def _schema_index_key_types(definition: schema.TableDefinition) -> dict[str, str]:
    """The type ``definition`` gives each index key attribute."""
    return {
        key.name: key.type
        for index in definition.indexes
        for key in (index.partition_key, index.sort_key)
        if key is not None
    }


def test_exactly_five_tables(deployed: Synthesized) -> None:
    # Given the synthesized stack
    # When / Then it defines the five tables and no other
    deployed.template.resource_count_is(TABLE_TYPE, 5)
    ids = {
        deployed.sessions_table_id,
        deployed.connections_table_id,
        deployed.rate_limits_table_id,
        deployed.audio_chunks_table_id,
        deployed.transcripts_table_id,
    }
    assert len(ids) == 5


def test_transcripts_table_shape_in_every_environment(deployed_any: Synthesized) -> None:
    # Given an environment's Transcripts table
    properties = _properties(deployed_any, deployed_any.transcripts_table_id)

    # Then it is keyed by sessionId and the segment's ordered key (a string), on demand, expiring on expiresAt,
    # encrypted like the other tables of that environment, with no index or stream
    assert properties["KeySchema"] == [
        {"AttributeName": "sessionId", "KeyType": "HASH"},
        {"AttributeName": "segment", "KeyType": "RANGE"},
    ]
    assert _declared_types(properties) == {"sessionId": "S", "segment": "S"}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert properties["SSESpecification"] == expected_encryption(deployed_any)
    assert (
        properties["SSESpecification"] == _properties(deployed_any, deployed_any.sessions_table_id)["SSESpecification"]
    )
    assert "GlobalSecondaryIndexes" not in properties
    assert "StreamSpecification" not in properties
    # And its point-in-time recovery, deletion protection and retention are the environment's
    expected = EXPECTED[deployed_any.name]
    recovery = properties.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False)
    assert recovery is expected.point_in_time_recovery
    assert properties.get("DeletionProtectionEnabled", False) is expected.deletion_protection
    assert deployed_any.resource(deployed_any.transcripts_table_id).get("DeletionPolicy") == expected.removal_policy


def test_audio_chunks_table_shape(deployed: Synthesized) -> None:
    # Given the AudioChunks table
    properties = _properties(deployed, deployed.audio_chunks_table_id)

    # Then it is keyed by sessionId and the chunk's ordered key (a string), on demand, expiring on expiresAt,
    # encrypted, with no index or stream
    assert properties["KeySchema"] == [
        {"AttributeName": "sessionId", "KeyType": "HASH"},
        {"AttributeName": "sequence", "KeyType": "RANGE"},
    ]
    assert _declared_types(properties) == {"sessionId": "S", "sequence": "S"}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert properties["SSESpecification"] == expected_encryption(deployed)
    assert "GlobalSecondaryIndexes" not in properties
    assert "StreamSpecification" not in properties


def test_rate_limits_table_shape(deployed: Synthesized) -> None:
    # Given the RateLimits table
    properties = _properties(deployed, deployed.rate_limits_table_id)

    # Then it is keyed by limitKey alone, on demand, expiring on expiresAt, encrypted, with no index or stream
    assert properties["KeySchema"] == [{"AttributeName": "limitKey", "KeyType": "HASH"}]
    assert properties["KeySchema"][0]["AttributeName"] == schema.RATE_LIMITS_PARTITION_KEY
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert properties["SSESpecification"] == expected_encryption(deployed)
    assert "GlobalSecondaryIndexes" not in properties
    assert "StreamSpecification" not in properties


def test_sessions_table_shape(deployed: Synthesized) -> None:
    # Given the Sessions table
    properties = _properties(deployed, deployed.sessions_table_id)

    # Then it is keyed by sessionId alone, on demand, expiring on expiresAt, encrypted as the environment says
    assert properties["KeySchema"] == [{"AttributeName": schema.SESSIONS_PARTITION_KEY, "KeyType": "HASH"}]
    assert properties["KeySchema"] == [{"AttributeName": "sessionId", "KeyType": "HASH"}]
    # (sessionId a string; sweepAt, the key of its one index, a number)
    assert sorted(properties["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == [
        {"AttributeName": "sessionId", "AttributeType": "S"},
        {"AttributeName": "sweepAt", "AttributeType": "N"},
    ]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in properties
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": schema.SESSIONS_TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert properties["TimeToLiveSpecification"]["AttributeName"] == "expiresAt"
    assert properties["SSESpecification"] == expected_encryption(deployed)
    assert [index["IndexName"] for index in properties["GlobalSecondaryIndexes"]] == ["bySweepTime"]
    assert "StreamSpecification" not in properties


def test_sessions_index_lists_sessions_by_sweep_time(deployed: Synthesized) -> None:
    # Given the Sessions table
    properties = _properties(deployed, deployed.sessions_table_id)

    # Then its indexes are exactly the schema's (the definition the repositories and the local tables use)
    assert properties["GlobalSecondaryIndexes"] == _schema_indexes(schema.SESSIONS)
    # And that is the sweeper's one index: keyed by sweepAt alone, projecting only the keys (the sweeper
    # needs the session id and its sweep time, nothing else)
    assert properties["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "bySweepTime",
            "KeySchema": [{"AttributeName": "sweepAt", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ]
    assert (schema.SESSIONS_BY_SWEEP_TIME_INDEX, schema.SESSIONS_SWEEP_AT_ATTRIBUTE) == ("bySweepTime", "sweepAt")
    # And sweepAt is declared with the schema's type, a number (seconds since the epoch, compared with now)
    sweep_at = schema.SESSIONS_SWEEP_AT_ATTRIBUTE
    types = _declared_types(properties)
    assert types[sweep_at] == _schema_index_key_types(schema.SESSIONS)[sweep_at]
    assert types["sweepAt"] == "N"


def test_connections_table_shape(deployed: Synthesized) -> None:
    # Given the Connections table
    properties = _properties(deployed, deployed.connections_table_id)

    # Then it is keyed by connectionId, on demand, expiring on expiresAt, encrypted, streaming new images
    assert properties["KeySchema"] == [{"AttributeName": schema.CONNECTIONS_PARTITION_KEY, "KeyType": "HASH"}]
    assert properties["KeySchema"] == [{"AttributeName": "connectionId", "KeyType": "HASH"}]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert properties["TimeToLiveSpecification"]["AttributeName"] == schema.CONNECTIONS_TTL_ATTRIBUTE
    assert properties["SSESpecification"] == expected_encryption(deployed)
    assert properties["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_connections_index_lists_listeners_by_session_and_language(deployed: Synthesized) -> None:
    # Given the Connections table
    properties = _properties(deployed, deployed.connections_table_id)

    # Then its indexes are exactly the schema's
    assert properties["GlobalSecondaryIndexes"] == _schema_indexes(schema.CONNECTIONS)
    # And that is the one the repositories query: sessionId, then targetLanguage, keys only (fan-out and
    # listener counts need nothing but the connection ids and languages)
    assert properties["GlobalSecondaryIndexes"] == [
        {
            "IndexName": schema.CONNECTIONS_BY_SESSION_INDEX,
            "KeySchema": [
                {"AttributeName": "sessionId", "KeyType": "HASH"},
                {"AttributeName": "targetLanguage", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ]
    assert schema.CONNECTIONS_BY_SESSION_INDEX == "bySessionLanguage"
    assert schema.CONNECTIONS_BY_SESSION_PARTITION_KEY == "sessionId"
    assert schema.CONNECTIONS_BY_SESSION_SORT_KEY == "targetLanguage"
    # And every key attribute is declared as a string
    assert sorted(properties["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == [
        {"AttributeName": "connectionId", "AttributeType": "S"},
        {"AttributeName": "sessionId", "AttributeType": "S"},
        {"AttributeName": "targetLanguage", "AttributeType": "S"},
    ]
    assert {name: _declared_types(properties)[name] for name in ("sessionId", "targetLanguage")} == (
        _schema_index_key_types(schema.CONNECTIONS)
    )


def test_local_tables_are_created_like_the_deployed_ones(deployed: Synthesized) -> None:
    # Given each schema definition and the table the stack builds from it
    for definition, logical_id in (
        (schema.SESSIONS, deployed.sessions_table_id),
        (schema.CONNECTIONS, deployed.connections_table_id),
        (schema.RATE_LIMITS, deployed.rate_limits_table_id),
        (schema.AUDIO_CHUNKS, deployed.audio_chunks_table_id),
        (schema.TRANSCRIPTS, deployed.transcripts_table_id),
    ):
        properties = _properties(deployed, logical_id)

        # When the definition's CreateTable request (the local run's and unit tests' tables) is built
        request = definition.create_table_request("any-name")

        # Then it has the deployed table's keys, attribute types, indexes and stream
        assert request["KeySchema"] == properties["KeySchema"], definition.construct_id
        assert _declared_types(request) == _declared_types(properties), definition.construct_id
        assert request.get("GlobalSecondaryIndexes") == properties.get("GlobalSecondaryIndexes")
        assert request.get("StreamSpecification", {}).get("StreamViewType") == (
            properties.get("StreamSpecification", {}).get("StreamViewType")
        ), definition.construct_id


def test_connections_index_through_template_matchers(deployed: Synthesized) -> None:
    # Given the synthesized stack
    # When / Then exactly one table matches the Connections table's key, stream and index
    matches = deployed.template.find_resources(
        TABLE_TYPE,
        {
            "Properties": {
                "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
                "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
                "GlobalSecondaryIndexes": Match.array_with(
                    [Match.object_like({"IndexName": schema.CONNECTIONS_BY_SESSION_INDEX})]
                ),
            }
        },
    )
    assert list(matches) == [deployed.connections_table_id]


def test_point_in_time_recovery_per_environment(deployed_any: Synthesized) -> None:
    # Given an environment's tables
    expected = EXPECTED[deployed_any.name].point_in_time_recovery

    # Then point-in-time recovery is on in staging and prod, off in dev
    for logical_id in deployed_any.resources(TABLE_TYPE):
        properties = _properties(deployed_any, logical_id)
        enabled = properties.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False)
        assert enabled is expected, f"{logical_id}: PointInTimeRecoveryEnabled={enabled!r} in {deployed_any.name}"


def test_deletion_protection_only_in_prod(deployed_any: Synthesized) -> None:
    # Given an environment's tables
    expected = EXPECTED[deployed_any.name].deletion_protection

    # Then deletion protection is on in prod only
    for logical_id in deployed_any.resources(TABLE_TYPE):
        enabled = _properties(deployed_any, logical_id).get("DeletionProtectionEnabled", False)
        assert enabled is expected, f"{logical_id}: DeletionProtectionEnabled={enabled!r} in {deployed_any.name}"


def test_tables_are_retained_in_prod_and_deleted_elsewhere(deployed_any: Synthesized) -> None:
    # Given an environment's tables, as raw template resources
    expected = EXPECTED[deployed_any.name].removal_policy
    tables = deployed_any.template.find_resources(TABLE_TYPE)
    assert len(tables) == 5

    # Then deleting the stack or replacing a table keeps the data in prod only
    for logical_id, table in tables.items():
        assert table.get("DeletionPolicy") == expected, f"{logical_id} in {deployed_any.name}"
        assert table.get("UpdateReplacePolicy") == expected, f"{logical_id} in {deployed_any.name}"
