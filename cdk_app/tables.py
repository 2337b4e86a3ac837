"""The two DynamoDB tables. Key, index and TTL names come from ``lambda_src.schema``, which the
repositories use too; the local run creates its tables from the synthesized template."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_app.config import EnvironmentConfig
from lambda_src import schema


class SessionTables(Construct):
    """Sessions (one item per session) and Connections (one row per open WebSocket connection)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.sessions = self._build_table(
            "Sessions", schema.SESSIONS_PARTITION_KEY, schema.SESSIONS_TTL_ATTRIBUTE
        )
        self.connections = self._build_table(
            "Connections",
            schema.CONNECTIONS_PARTITION_KEY,
            schema.CONNECTIONS_TTL_ATTRIBUTE,
            # New rows feed the function that delivers a connection's first message after its handshake.
            stream=dynamodb.StreamViewType.NEW_IMAGE,
        )
        self.connections.add_global_secondary_index(
            index_name=schema.CONNECTIONS_BY_SESSION_INDEX,
            partition_key=dynamodb.Attribute(
                name=schema.CONNECTIONS_BY_SESSION_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            sort_key=dynamodb.Attribute(
                name=schema.CONNECTIONS_BY_SESSION_SORT_KEY, type=dynamodb.AttributeType.STRING
            ),
            projection_type=dynamodb.ProjectionType.ALL,
        )

    def _build_table(
        self,
        construct_id: str,
        partition_key: str,
        ttl_attribute: str,
        stream: dynamodb.StreamViewType | None = None,
    ) -> dynamodb.Table:
        config = self._config
        return dynamodb.Table(
            self,
            construct_id,
            partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=config.point_in_time_recovery
            ),
            deletion_protection=config.deletion_protection,
            removal_policy=config.removal_policy,
            stream=stream,
        )

    def grant_downstream_read(self, grantee: iam.IGrantable) -> None:
        """Let a downstream processor read session settings and list listeners by language."""
        self.sessions.grant_read_data(grantee)
        self.connections.grant_read_data(grantee)
