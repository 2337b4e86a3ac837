"""The DynamoDB tables, built from the definitions in ``lambda_src.contract.schema`` (which the repositories and
the unit tests' tables use too); the local run creates its tables from the synthesized template."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Aws
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk_app import nag
from cdk_app.config import EnvironmentConfig
from cdk_app.permissions import DOWNSTREAM_READ, STREAM_KEY_ACTIONS, TABLE_KEY_ACTIONS, TableAccess
from lambda_src.contract import schema

_ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}
_PROJECTIONS = {"ALL": dynamodb.ProjectionType.ALL, "KEYS_ONLY": dynamodb.ProjectionType.KEYS_ONLY}
_STREAMS = {
    "NEW_IMAGE": dynamodb.StreamViewType.NEW_IMAGE,
    "NEW_AND_OLD_IMAGES": dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
}


class SessionTables(Construct):
    """Sessions (one item per session), Connections (one row per open WebSocket connection), RateLimits
    (one counter per limit and time window), AudioChunks (the speaker's audio of each session, in order, kept
    minutes) and Transcripts (each session's final segments, kept days). ``key``: the customer managed key that
    encrypts them, or None for the AWS managed key."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, key: kms.IKey | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.key = key
        self._by_definition: dict[str, dynamodb.Table] = {}
        self.sessions = self._build_table(schema.SESSIONS)
        self.connections = self._build_table(schema.CONNECTIONS)
        self.rate_limits = self._build_table(schema.RATE_LIMITS)
        self.audio_chunks = self._build_table(schema.AUDIO_CHUNKS)
        self.transcripts = self._build_table(schema.TRANSCRIPTS)

    def _build_table(self, definition: schema.TableDefinition) -> dynamodb.Table:
        config = self._config
        table = dynamodb.Table(
            self,
            definition.construct_id,
            partition_key=_attribute(definition.partition_key),
            sort_key=_attribute(definition.sort_key) if definition.sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=(
                dynamodb.TableEncryption.CUSTOMER_MANAGED if self.key else dynamodb.TableEncryption.AWS_MANAGED
            ),
            encryption_key=self.key,
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
        if not config.point_in_time_recovery:
            nag.acknowledge(
                table,
                "DDB3",
                f"point-in-time recovery is off for {config.name} by its configuration (point_in_time_recovery, "
                "on by default in staging and prod only): that environment's data is disposable",
            )
        self._by_definition[definition.construct_id] = table
        return table

    def table(self, definition: schema.TableDefinition) -> dynamodb.Table:
        """The deployed table built from ``definition``."""
        return self._by_definition[definition.construct_id]

    def grant_access(self, grantee: iam.IGrantable, accesses: Iterable[TableAccess]) -> None:
        """Grant exactly ``accesses``: item actions on each table, index actions on each named index; and, with a
        customer managed key, what DynamoDB needs of the caller on that key (``TABLE_KEY_ACTIONS``)."""
        accesses = tuple(accesses)
        for access in accesses:
            table = self.table(access.table)
            if access.actions:
                iam.Grant.add_to_principal(
                    grantee=grantee, actions=sorted(access.actions), resource_arns=[table.table_arn]
                )
            indexes = {index.name for index in access.table.indexes}
            for index_name, actions in access.index_actions.items():
                if index_name not in indexes:
                    raise ValueError(f"table {access.table.construct_id} has no index {index_name!r}")
                iam.Grant.add_to_principal(
                    grantee=grantee, actions=sorted(actions), resource_arns=[f"{table.table_arn}/index/{index_name}"]
                )
        if self.key is not None and any(access.actions or access.index_actions for access in accesses):
            grantee.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=sorted(TABLE_KEY_ACTIONS),
                    resources=[self.key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{Aws.REGION}.amazonaws.com"}},
                )
            )

    def stream_source(self, scope: Construct, construct_id: str, definition: schema.TableDefinition) -> dynamodb.ITable:
        """The table ``definition`` as a stream event source sees it: its ARNs without its key. Given the table
        itself, the event source would grant ``kms:DescribeKey`` besides ``kms:Decrypt`` on a customer managed
        key; ``grant_stream_key`` grants exactly what reading the stream needs."""
        table = self.table(definition)
        if table.table_stream_arn is None:
            raise ValueError(f"table {definition.construct_id} has no stream")
        return dynamodb.Table.from_table_attributes(
            scope, construct_id, table_arn=table.table_arn, table_stream_arn=table.table_stream_arn
        )

    def grant_stream_key(self, grantee: iam.IGrantable) -> None:
        """With a customer managed key, what a stream reader needs of it (``STREAM_KEY_ACTIONS``)."""
        if self.key is not None:
            iam.Grant.add_to_principal(
                grantee=grantee, actions=sorted(STREAM_KEY_ACTIONS), resource_arns=[self.key.key_arn]
            )

    def grant_downstream_read(self, grantee: iam.IGrantable) -> None:
        """Let a downstream processor read a session's settings and list its listeners by language."""
        self.grant_access(grantee, DOWNSTREAM_READ)


def _attribute(key: schema.KeyAttribute) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])
