"""The two DynamoDB tables, built from the definitions in ``lambda_src.schema`` (which the repositories and
the unit tests' tables use too); the local run creates its tables from the synthesized template."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_app.config import EnvironmentConfig
from lambda_src import schema

_ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}
_PROJECTIONS = {"ALL": dynamodb.ProjectionType.ALL, "KEYS_ONLY": dynamodb.ProjectionType.KEYS_ONLY}
_STREAMS = {
    "NEW_IMAGE": dynamodb.StreamViewType.NEW_IMAGE,
    "NEW_AND_OLD_IMAGES": dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
}


class SessionTables(Construct):
    """Sessions (one item per session) and Connections (one row per open WebSocket connection)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.sessions = self._build_table(schema.SESSIONS)
        self.connections = self._build_table(schema.CONNECTIONS)

    def _build_table(self, definition: schema.TableDefinition) -> dynamodb.Table:
        config = self._config
        table = dynamodb.Table(
            self,
            definition.construct_id,
            partition_key=_attribute(definition.partition_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=definition.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=config.point_in_time_recovery
            ),
            deletion_protection=config.deletion_protection,
            removal_policy=config.removal_policy,
            stream=_STREAMS[definition.stream] if definition.stream else None,
        )
        for index in definition.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition_key),
                sort_key=_attribute(index.sort_key) if index.sort_key else None,
                projection_type=_PROJECTIONS[index.projection],
            )
        return table

    def grant_downstream_read(self, grantee: iam.IGrantable) -> None:
        """Let a downstream processor read session settings and list listeners by language."""
        self.sessions.grant_read_data(grantee)
        self.connections.grant_read_data(grantee)


def _attribute(key: schema.KeyAttribute) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])
