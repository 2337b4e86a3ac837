"""The deployable unit: tables, the WebSocket API, the HTTP session API, the audio bucket, their alarms and dashboard,
composed; outputs for operators and downstream."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_app.audio_bucket import AudioBucket
from cdk_app.config import EnvironmentConfig
from cdk_app.encryption import ServiceKeys
from cdk_app.http_api import SessionHttpApi
from cdk_app.monitoring import ServiceAlarms, ServiceDashboard
from cdk_app.permissions import DOWNSTREAM_BROADCAST
from cdk_app.tables import SessionTables
from cdk_app.websocket_api import SessionWebSocketApi
from lambda_src.contract import schema


class SessionServiceStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.keys = ServiceKeys(self, "Keys", config=config)
        self.tables = SessionTables(self, "Tables", config=config, key=self.keys.tables)
        self.websocket = SessionWebSocketApi(
            self, "WebSocket", config=config, tables=self.tables, logs_key=self.keys.logs
        )
        # One function behind every HTTP route, built and granted as the WebSocket functions are (it ends sessions,
        # so it tells their listeners through the WebSocket stage, or a big audience through the fan-out function).
        http_function = self.websocket.add_function("HttpApi", "http_api")
        self.websocket.grant_fanout(http_function)
        self.http = SessionHttpApi(
            self,
            "Http",
            config=config,
            function=http_function,
            auth=self.websocket.auth,
            logs_key=self.keys.logs,
        )
        # The listeners' spoken translations, stored by the transcriber (decision record 0039).
        self.audio = AudioBucket(self, "Audio", config=config, key=self.keys.audio)
        self.audio.grant_speech(self.websocket.transcriber_function)
        self.monitoring = ServiceAlarms(
            self,
            "Monitoring",
            config=config,
            functions=self.websocket.functions,
            api=self.websocket.api,
            stage=self.websocket.stage,
            failure_queues=self.websocket.failure_queues,
            schedules={"sweeper": self.websocket.sweeper_schedule},
        )
        self.dashboard = ServiceDashboard(self, "Dashboard", config=config, functions=self.websocket.functions)

        CfnOutput(self, "WebSocketUrl", value=self.websocket.stage.url, description="Clients connect here")
        CfnOutput(
            self,
            "HttpApiUrl",
            value=self.http.url,
            description="The HTTP session API (POST sessions, GET/PATCH/DELETE sessions/{sessionId}, GET health)",
        )
        CfnOutput(self, "CallbackUrl", value=self.websocket.stage.callback_url, description="@connections API")
        CfnOutput(self, "SessionsTableName", value=self.tables.sessions.table_name)
        CfnOutput(self, "SessionsTableArn", value=self.tables.sessions.table_arn)
        CfnOutput(self, "ConnectionsTableName", value=self.tables.connections.table_name)
        CfnOutput(self, "ConnectionsTableArn", value=self.tables.connections.table_arn)
        CfnOutput(
            self,
            "ListenersIndexName",
            value=schema.CONNECTIONS_BY_SESSION_INDEX,
            description="The Connections table's index of listeners by session and target language",
        )
        speakers = self.websocket.auth
        CfnOutput(
            self,
            "UserPoolId",
            value=speakers.user_pool.user_pool_id,
            description="The speakers' Cognito user pool (created by the stack, or the one given as userPoolId)",
        )
        CfnOutput(
            self,
            "UserPoolClientId",
            value=speakers.user_pool_client_id,
            description="The app client speakers sign in with (their tokens name it)",
        )
        CfnOutput(
            self,
            "AudioBucketName",
            value=self.audio.bucket.bucket_name,
            description="The listeners' spoken translations (objects deleted after a day)",
        )
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn, description="Alarms notify this")
        CfnOutput(
            self,
            "DashboardName",
            value=self.dashboard.dashboard.dashboard_name,
            description="The operators' CloudWatch dashboard",
        )
        for module, queue in sorted(self.websocket.failure_queues.items()):
            CfnOutput(
                self,
                f"{module.capitalize()}FailureQueueUrl",
                value=queue.queue_url,
                description=f"What the {module} function failed to do (inspect, then redrive or purge)",
            )
        CfnOutput(
            self, "AccessLogGroupName", value=self.websocket.access_logs.log_group_name, description="Stage access logs"
        )
        CfnOutput(
            self,
            "HttpAccessLogGroupName",
            value=self.http.access_logs.log_group_name,
            description="The HTTP API stage's access logs",
        )

    def grant_downstream_read(self, grantee: iam.IGrantable) -> None:
        """Wire a downstream processor (transcription, translation) to read session settings."""
        self.tables.grant_downstream_read(grantee)

    def grant_downstream(self, function: lambda_.Function) -> None:
        """Wire a downstream stage that posts to listeners (``lambda_src.downstream.broadcast``, captions): exactly
        the listener index query (and the session read that tells a session's seat shards), ``execute-api:
        ManageConnections`` on the stage, and the write that counts a vanished listener out
        (``permissions.DOWNSTREAM_BROADCAST``); and the environment ``lambda_src`` reads
        (table names, callback URL, settings, the metrics' dimensions)."""
        self.tables.grant_access(function, DOWNSTREAM_BROADCAST)
        for name, value in self.websocket.service_environment().items():
            function.add_environment(name, value)
        self.websocket.grant_connections(function)
