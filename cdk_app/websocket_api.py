"""The WebSocket API, its stage and the functions behind its routes."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_app import constants, nag, permissions
from cdk_app.access_logs import JsonAccessLogs
from cdk_app.auth import SpeakerAuth
from cdk_app.bundling import dependencies_layer, lambda_code
from cdk_app.config import EnvironmentConfig
from cdk_app.permissions import FUNCTION_TABLE_ACCESS
from cdk_app.tables import SessionTables
from lambda_src.contract import function_settings, limits, routes, schema, telemetry
from lambda_src.contract.schema import WELCOME_ATTRIBUTE

# One JSON object per request or message. Correlation ids, what happened and how it ended; never the
# client's address or anything else from $context.identity (no full IP address is ever logged).
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "requestTimeEpoch": "$context.requestTimeEpoch",
    "stage": "$context.stage",
    "connectionId": "$context.connectionId",
    "connectedAt": "$context.connectedAt",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "messageId": "$context.messageId",
    "status": "$context.status",
    "errorMessage": "$context.error.message",
    "errorResponseType": "$context.error.responseType",
    "authorizeStatus": "$context.authorize.status",
    "authorizerError": "$context.authorizer.error",
    "integrationStatus": "$context.integration.status",
    "integrationError": "$context.integration.error",
    "integrationLatency": "$context.integration.latency",
    "integrationRequestId": "$context.integration.requestId",
}

_NO_RESOURCE_LEVEL_XRAY = (
    "Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level "
    "permissions, so CDK grants them on * (the AWS documented policy for Lambda tracing)"
)


class SessionWebSocketApi(Construct):
    """Routes: ``$connect``, ``$disconnect``, ``$default`` and one route per message action; the welcome
    function (first messages) and the sweeper (sessions nobody ended), each with a queue for what it failed
    to do. ``logs_key``: the customer managed key of every log group, or None for CloudWatch Logs' own."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        tables: SessionTables,
        logs_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._tables = tables
        self._logs_key = logs_key
        self._code = lambda_code()
        # Why each role holds a permission on "*" (services without resource-level permissions), by role.
        self._unscoped: dict[iam.IRole, list[str]] = {}
        self._layer = dependencies_layer(self, "Dependencies")

        self.connect_function = self._build_function("Connect", "connect")
        self.disconnect_function = self._build_function("Disconnect", "disconnect")
        self.message_function = self._build_function("Message", "message")
        self.welcome_function = self._build_function("Welcome", "welcome", timeout=constants.WELCOME_TIMEOUT)
        self.sweeper_function = self._build_function("Sweeper", "sweeper", timeout=constants.SWEEPER_TIMEOUT)
        self.status_function = self._build_function("Status", "status", timeout=constants.STATUS_TIMEOUT)
        self.transcriber_function = self._build_function(
            "Transcriber", "transcriber", timeout=constants.TRANSCRIBER_TIMEOUT
        )
        self.fanout_function = self._build_function("Fanout", "fanout", timeout=constants.FANOUT_TIMEOUT)
        self.authorizer_function = self._build_function("Authorizer", "authorizer", tables=False)
        self.auth = SpeakerAuth(self, "SpeakerAuth", config=config, authorizer_function=self.authorizer_function)
        # Every function by the handler module it runs (the alarms watch each).
        self.functions: dict[str, lambda_.Function] = {
            "connect": self.connect_function,
            "disconnect": self.disconnect_function,
            "message": self.message_function,
            "welcome": self.welcome_function,
            "sweeper": self.sweeper_function,
            "authorizer": self.authorizer_function,
            "status": self.status_function,
            "transcriber": self.transcriber_function,
            "fanout": self.fanout_function,
        }
        # Functions that write session state; each of them may also have to tell the connections about it.
        self.posting_functions = (
            self.connect_function,
            self.disconnect_function,
            self.message_function,
            self.sweeper_function,
        )

        self.api = self._build_api()
        self.stage = self._build_stage()
        for function in (
            *self.posting_functions,
            self.welcome_function,
            self.status_function,
            self.transcriber_function,
            self.fanout_function,
        ):
            self.grant_connections(function)
        # Handler module -> the queue that receives what its function failed to do (alarmed on).
        self.failure_queues: dict[str, sqs.Queue] = {}
        self._wire_welcome()
        self._wire_status()
        self._wire_transcriber()
        self._wire_fanout()
        self.sweeper_schedule = self._schedule_sweeper()
        for role, reasons in self._unscoped.items():
            nag.acknowledge_wildcard_resource(role, "*", "; ".join(reasons))

    def add_function(self, construct_id: str, module: str) -> lambda_.Function:
        """Another function running ``lambda_src.handlers.<module>`` as the routes' functions do (its own role and
        log group, the layer, the tables it needs by ``cdk_app.permissions``), that may post to this stage's
        connections; watched by the alarms with the others (``functions``)."""
        function = self._build_function(construct_id, module)
        self.grant_connections(function)
        self.functions[module] = function
        assert function.role is not None
        reasons = self._unscoped.pop(function.role, [])
        if reasons:
            nag.acknowledge_wildcard_resource(function.role, "*", "; ".join(reasons))
        return function

    def grant_fanout(self, function: lambda_.Function) -> None:
        """Let ``function`` invoke the fan-out function (the function itself, not its versions: CDK's grant_invoke
        adds "<arn>:*"), and tell it which (``FANOUT_FUNCTION``)."""
        function.add_environment(function_settings.ENV_FANOUT_FUNCTION, self.fanout_function.function_name)
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.fanout_function.function_arn])
        )

    def grant_connections(self, function: lambda_.Function) -> None:
        """Let ``function`` post to, ask about and close this stage's connections (``@connections``), and tell it
        where (``CALLBACK_URL``)."""
        connections_arn = (
            f"arn:{Aws.PARTITION}:execute-api:{Aws.REGION}:{Aws.ACCOUNT_ID}:{self.api.api_id}"
            f"/{self.stage.stage_name}/*/@connections/*"
        )
        function.add_environment(function_settings.ENV_CALLBACK_URL, self.stage.callback_url)
        self.stage.grant_management_api_access(function)
        assert function.role is not None
        nag.acknowledge_wildcard_resource(
            function.role,
            connections_arn,
            "execute-api:ManageConnections on this API's stage only: the first * is the HTTP method (POST "
            "sends, GET asks, DELETE closes), the last the connection id, which each client gets at run time",
        )

    def service_environment(self) -> dict[str, str]:
        """What a function running ``lambda_src`` against the tables needs in its environment: the metrics'
        service and environment, the table names and every per-environment setting."""
        config = self._config
        environment = {
            constants.ENV_SERVICE_NAME: telemetry.SERVICE_NAME,
            constants.ENV_METRICS_NAMESPACE: telemetry.NAMESPACE,
            telemetry.ENV_ENVIRONMENT_NAME: config.name,
            function_settings.ENV_SESSIONS_TABLE: self._tables.sessions.table_name,
            function_settings.ENV_CONNECTIONS_TABLE: self._tables.connections.table_name,
            function_settings.ENV_RATE_LIMITS_TABLE: self._tables.rate_limits.table_name,
            function_settings.ENV_AUDIO_CHUNKS_TABLE: self._tables.audio_chunks.table_name,
            function_settings.ENV_TRANSCRIPTS_TABLE: self._tables.transcripts.table_name,
        }
        # Every per-environment setting, from the one table the functions read them by.
        for setting in function_settings.FUNCTION_SETTINGS:
            value = setting.environment_value(config.function_settings[setting.name])
            if value is not None:
                environment[setting.env_var] = value
        return environment

    def _build_function(
        self, construct_id: str, module: str, timeout: Duration = constants.ROUTE_TIMEOUT, tables: bool = True
    ) -> lambda_.Function:
        config = self._config
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
            encryption_key=self._logs_key,
        )
        # The service name and environment are the default dimensions of the code's metrics, in this namespace.
        environment = {
            constants.ENV_SERVICE_NAME: telemetry.SERVICE_NAME,
            constants.ENV_METRICS_NAMESPACE: telemetry.NAMESPACE,
            telemetry.ENV_ENVIRONMENT_NAME: config.name,
        }
        if tables:
            environment = self.service_environment()
            # Where tracing is on, botocore's calls become subsegments of the invocation's trace (the
            # authorizer calls no AWS API, so it is not patched and does not load the X-Ray SDK).
            if config.tracing_enabled:
                environment[telemetry.ENV_TRACE_AWS_CALLS] = "true"
        # A role of its own, with no managed policy: writing to its own log group, then exactly the table
        # actions its code calls (cdk_app.permissions) and whatever else is granted to it below.
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{config.stack_name} {module} function",
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            self,
            construct_id,
            runtime=constants.RUNTIME,
            architecture=constants.ARCHITECTURE,
            handler=f"{constants.LAMBDA_PACKAGE}.handlers.{module}.handler",
            code=self._code,
            layers=[self._layer],
            memory_size=constants.MEMORY_MB,
            timeout=timeout,
            environment=environment,
            log_group=log_group,
            role=role,
            tracing=lambda_.Tracing.ACTIVE if config.tracing_enabled else None,
            reserved_concurrent_executions=config.reserved_concurrency.get(module),
        )
        self._tables.grant_access(function, FUNCTION_TABLE_ACCESS.get(module, ()))
        nag.acknowledge(
            function,
            "L1",
            f"the runtime is pinned on purpose ({constants.RUNTIME.name}, cdk_app.constants): the layer's wheels "
            "are built for that Python version, so moving to a newer runtime is a change of its own, tested on "
            "that version, rather than one a new Lambda release forces at synth",
        )
        if config.tracing_enabled:
            self._unscoped.setdefault(role, []).append(_NO_RESOURCE_LEVEL_XRAY)
        return function

    def _integration(self, route_key: str, function: lambda_.IFunction) -> integrations.WebSocketLambdaIntegration:
        """A fresh integration per route: a shared one grants invoke to its first route only."""
        name = route_key.strip("$")
        return integrations.WebSocketLambdaIntegration(f"{name[0].upper()}{name[1:]}Integration", function)

    def _build_api(self) -> apigw.WebSocketApi:
        api = apigw.WebSocketApi(self, "Api", route_selection_expression=routes.ROUTE_SELECTION_EXPRESSION)
        self.routes: dict[str, apigw.WebSocketRoute] = {
            routes.CONNECT: api.add_route(
                routes.CONNECT,
                integration=self._integration(routes.CONNECT, self.connect_function),
                authorizer=self.auth.authorizer,
            ),
            routes.DISCONNECT: api.add_route(
                routes.DISCONNECT, integration=self._integration(routes.DISCONNECT, self.disconnect_function)
            ),
        }
        # Replies are route responses, so API Gateway delivers each handler's returned body.
        for route_key in (routes.DEFAULT, *routes.MESSAGE_ROUTES):
            self.routes[route_key] = api.add_route(
                route_key, integration=self._integration(route_key, self.message_function), return_response=True
            )
        for route_key, route in self.routes.items():
            _scope_invoke_permission(route, api, route_key)
            if route_key != routes.CONNECT:
                nag.acknowledge(
                    route,
                    "APIG4",
                    "API Gateway runs a WebSocket API's authorizer on $connect only; every later message and "
                    "the $disconnect arrive on that authorized connection (the authorizer's context comes with "
                    "each), and speaker actions check the session's speaker connection or owner themselves",
                )
        return api

    def _build_stage(self) -> apigw.WebSocketStage:
        """The environment's stage: JSON access logs, the stage-wide throttle and tighter per-route ones."""
        config = self._config
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
            encryption_key=self._logs_key,
        )
        stage = apigw.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=config.name,
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=config.throttle_rate_limit, burst_limit=config.throttle_burst_limit
            ),
            access_log_settings=JsonAccessLogs(ACCESS_LOG_FIELDS, self.access_logs),
        )
        cfn_stage = stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)
        cfn_stage.route_settings = {
            route_key: {"ThrottlingRateLimit": throttle.rate_limit, "ThrottlingBurstLimit": throttle.burst_limit}
            for route_key, throttle in sorted(config.route_throttles.items())
        }
        for route_key in config.route_throttles:
            stage.node.add_dependency(self.routes[route_key])  # route settings name routes that must exist
        if config.create_api_gateway_account_role:
            stage.node.add_dependency(self._api_gateway_account_role())
        return stage

    def _api_gateway_account_role(self) -> apigw_v1.CfnAccount:
        """The region's account-wide role API Gateway writes WebSocket (and REST) logs with. Both are kept
        when the stack goes: other APIs of the account may log through the same setting."""
        role = iam.Role(
            self,
            "ApiGatewayLogsRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(_API_GATEWAY_LOGS_POLICY)],
        )
        role.apply_removal_policy(RemovalPolicy.RETAIN)
        nag.acknowledge_managed_policy(
            role,
            _API_GATEWAY_LOGS_POLICY,
            "API Gateway's account-wide logging role: AWS's own policy for it, because API Gateway creates and "
            "writes the log groups of every API in the account and region, whose names this stack cannot know",
        )
        account = apigw_v1.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn)
        account.apply_removal_policy(RemovalPolicy.RETAIN)
        return account

    def _wire_transcriber(self) -> None:
        """The transcription consumer (decision record 0001): started asynchronously by the message function when
        audio arrives for a session without one, and by itself to hand over before its timeout; it opens Amazon
        Transcribe streams. Lambda does not retry a failed or expired start: the next chunk starts another."""
        transcriber, message = self.transcriber_function, self.message_function
        message.add_environment(function_settings.ENV_TRANSCRIBER_FUNCTION, transcriber.function_name)
        # The function itself, not its versions (CDK's grant_invoke adds "<arn>:*").
        message.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[transcriber.function_arn])
        )
        transcriber.configure_async_invoke(
            retry_attempts=constants.TRANSCRIBER_RETRY_ATTEMPTS, max_event_age=constants.TRANSCRIBER_MAX_EVENT_AGE
        )
        assert transcriber.role is not None
        # Its own ARN in a policy of its own: the role's default policy, which the function depends on, cannot
        # name the function (a circular dependency). It invokes its successor by its own name (from its context).
        iam.Policy(
            self,
            "TranscriberHandOver",
            roles=[transcriber.role],
            statements=[iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[transcriber.function_arn])],
        )
        transcriber.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["transcribe:StartStreamTranscriptionWebSocket"], resources=["*"])
        )
        permissions.grant_translate(transcriber, acknowledge=False)
        # It speaks each final segment's translations to listeners (decision record 0039; its audio bucket is the
        # stack's AudioBucket, which grants its objects).
        permissions.grant_synthesize_speech(transcriber)
        self._unscoped.setdefault(transcriber.role, []).extend(
            [
                "transcribe:StartStreamTranscriptionWebSocket supports no resource-level permissions (Amazon "
                "Transcribe streaming has no resource to name)",
                permissions.TRANSLATE_TEXT_ON_STAR,
                permissions.SYNTHESIZE_SPEECH_ON_STAR,
            ]
        )

    def _wire_fanout(self) -> None:
        """The fan-out per shard (decision record 0040): invoked asynchronously by the transcriber, once per group
        of a big session's shards and segment, and by the functions that tell listeners what happened to their
        session (a notice, a dismissal), once per group of such a session's shards. Lambda does not retry a failed
        invocation (a retry would post again to the listeners the first reached); a failed or expired one goes to
        its failure queue, which is alarmed."""
        fanout = self.fanout_function
        for invoker in (self.transcriber_function, *self.posting_functions):
            self.grant_fanout(invoker)
        fanout.configure_async_invoke(
            retry_attempts=constants.FANOUT_RETRY_ATTEMPTS,
            max_event_age=constants.FANOUT_MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self._failure_queue("fanout", "Fanout")),
        )

    def _wire_welcome(self) -> None:
        """First messages: new Connections rows carrying one are posted once the handshake is done."""
        # The event source grants the stream reads on the Connections stream, and dynamodb:ListStreams,
        # which supports no resource-level permission, on *.
        assert self.welcome_function.role is not None
        self._unscoped.setdefault(self.welcome_function.role, []).append(
            "dynamodb:ListStreams supports no resource-level permissions (Lambda's DynamoDB stream event source "
            "needs it; the stream reads themselves are granted on the Connections stream only)"
        )
        self._tables.grant_stream_key(self.welcome_function)
        self.welcome_function.add_event_source(
            event_sources.DynamoEventSource(
                self._tables.stream_source(self, "ConnectionsStream", schema.CONNECTIONS),
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=100,
                max_batching_window=Duration.seconds(0),
                bisect_batch_on_error=True,
                retry_attempts=constants.WELCOME_RETRY_ATTEMPTS,
                max_record_age=constants.WELCOME_MAX_RECORD_AGE,
                on_failure=event_sources.SqsDlq(self._failure_queue("welcome", "Welcome")),
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.is_equal("INSERT"),
                            "dynamodb": {"NewImage": {WELCOME_ATTRIBUTE: {"S": lambda_.FilterRule.exists()}}},
                        }
                    )
                ],
            )
        )

    def _wire_status(self) -> None:
        """The speaker's status on a change of its audience: listener rows arriving, leaving or changing, in
        batches gathered over ``STATUS_BATCH_WINDOW_SECONDS`` (one push per session and batch at most)."""
        assert self.status_function.role is not None
        self._unscoped.setdefault(self.status_function.role, []).append(
            "dynamodb:ListStreams supports no resource-level permissions (Lambda's DynamoDB stream event source "
            "needs it; the stream reads themselves are granted on the Connections stream only)"
        )
        self._tables.grant_stream_key(self.status_function)
        listener = lambda_.FilterRule.is_equal(schema.ROLE_LISTENER)
        self.status_function.add_event_source(
            event_sources.DynamoEventSource(
                self._tables.stream_source(self, "ConnectionsStatusStream", schema.CONNECTIONS),
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=1000,
                max_batching_window=Duration.seconds(limits.STATUS_BATCH_WINDOW_SECONDS),
                bisect_batch_on_error=True,
                retry_attempts=constants.STATUS_RETRY_ATTEMPTS,
                max_record_age=constants.STATUS_MAX_RECORD_AGE,
                on_failure=event_sources.SqsDlq(self._failure_queue("status", "Status")),
                # A listener row before or after the change (an insert has no old image, a removal no new one).
                filters=[
                    lambda_.FilterCriteria.filter({"dynamodb": {"NewImage": {"role": {"S": listener}}}}),
                    lambda_.FilterCriteria.filter({"dynamodb": {"OldImage": {"role": {"S": listener}}}}),
                ],
            )
        )

    def _schedule_sweeper(self) -> events.Rule:
        """Dropped speakers that never resumed, and sessions past their lifetime, end without any client."""
        self.sweeper_function.configure_async_invoke(
            retry_attempts=constants.SWEEPER_RETRY_ATTEMPTS,
            max_event_age=constants.SWEEPER_MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self._failure_queue("sweeper", "Sweeper")),
        )
        return events.Rule(
            self,
            "SweeperSchedule",
            schedule=events.Schedule.rate(Duration.minutes(limits.SWEEP_INTERVAL_MINUTES)),
            targets=[targets.LambdaFunction(self.sweeper_function, retry_attempts=0)],
        )

    def _failure_queue(self, module: str, construct_prefix: str) -> sqs.Queue:
        """Where Lambda puts a record of each invocation of ``module``'s function that failed for good: encrypted
        (SQS managed keys: the records hold a batch's position in the stream, or the failed event and its
        error, never table data), TLS only, kept 14 days."""
        queue = sqs.Queue(
            self,
            f"{construct_prefix}Failures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=constants.FAILURE_RETENTION,
            removal_policy=self._config.removal_policy,
        )
        nag.acknowledge(
            queue,
            "SQS3",
            f"this queue is itself the dead-letter destination of the {module} function (Lambda's on-failure "
            "destination): its records are inspected and redriven by an operator, alarmed on arrival, so a further "
            "dead-letter queue behind it would have no consumer",
        )
        self.failure_queues[module] = queue
        return queue


_API_GATEWAY_LOGS_POLICY = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"


def _scope_invoke_permission(route: apigw.WebSocketRoute, api: apigw.WebSocketApi, route_key: str) -> None:
    """Scope the route's invoke permission to ``<api>/*/<route key>``: the integration's own ``<api>/*<route key>``
    lets any route whose key ends with this one's invoke it too (``muteBroadcast``'s admits ``unmuteBroadcast``)."""
    permissions = [child for child in route.node.find_all() if isinstance(child, lambda_.CfnPermission)]
    assert len(permissions) == 1, f"{route_key}: expected one invoke permission, found {len(permissions)}"
    source_arn = Stack.of(route).format_arn(service="execute-api", resource=api.api_id, resource_name=f"*/{route_key}")
    permissions[0].add_property_override("SourceArn", source_arn)
