"""The WebSocket API, its stage and the functions behind its routes."""

from __future__ import annotations

from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import Duration
from constructs import Construct

from cdk_app import constants
from cdk_app.auth import SpeakerAuth
from cdk_app.bundling import dependencies_layer, lambda_code
from cdk_app.config import EnvironmentConfig
from cdk_app.tables import SessionTables
from lambda_src import limits, log, routes, settings
from lambda_src.repositories.connections import WELCOME_ATTRIBUTE


class SessionWebSocketApi(Construct):
    """Routes: ``$connect``, ``$disconnect``, ``$default`` and one route per message action; the welcome
    function (first messages) and the sweeper (sessions nobody ended)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, tables: SessionTables
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._tables = tables
        self._code = lambda_code()
        self._layer = dependencies_layer(self, "Dependencies")

        self.connect_function = self._build_function("Connect", "connect")
        self.disconnect_function = self._build_function("Disconnect", "disconnect")
        self.message_function = self._build_function("Message", "message")
        self.welcome_function = self._build_function("Welcome", "welcome", timeout=constants.WELCOME_TIMEOUT)
        self.sweeper_function = self._build_function("Sweeper", "sweeper", timeout=constants.SWEEPER_TIMEOUT)
        self.authorizer_function = self._build_function("Authorizer", "authorizer", tables=False)
        self.auth = SpeakerAuth(self, "SpeakerAuth", config=config, authorizer_function=self.authorizer_function)
        # Functions that write session state; each of them may also have to tell the connections about it.
        self.posting_functions = (
            self.connect_function, self.disconnect_function, self.message_function, self.sweeper_function,
        )
        for function in self.posting_functions:
            tables.sessions.grant_read_write_data(function)
            tables.connections.grant_read_write_data(function)

        self.api = self._build_api()
        self.stage = apigw.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=config.name,
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=config.throttle_rate_limit, burst_limit=config.throttle_burst_limit
            ),
        )
        for function in (*self.posting_functions, self.welcome_function):
            function.add_environment(settings.ENV_CALLBACK_URL, self.stage.callback_url)
            self.stage.grant_management_api_access(function)
        self._wire_welcome()
        self._schedule_sweeper()

    def _build_function(
        self, construct_id: str, module: str, timeout: Duration = constants.ROUTE_TIMEOUT, tables: bool = True
    ) -> lambda_.Function:
        config = self._config
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        environment = {"POWERTOOLS_SERVICE_NAME": log.SERVICE_NAME}
        if tables:
            environment |= {
                settings.ENV_SESSIONS_TABLE: self._tables.sessions.table_name,
                settings.ENV_CONNECTIONS_TABLE: self._tables.connections.table_name,
                settings.ENV_SESSION_LIFETIME_HOURS: str(config.session_lifetime_hours),
                settings.ENV_MAX_LISTENERS: str(config.max_listeners_per_session),
                settings.ENV_SPEAKER_GRACE_SECONDS: str(config.speaker_grace_seconds),
            }
        if tables and config.supported_languages:
            environment[settings.ENV_SUPPORTED_LANGUAGES] = config.supported_languages
        return lambda_.Function(
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
        )

    def _integration(self, route_key: str, function: lambda_.IFunction) -> integrations.WebSocketLambdaIntegration:
        """A fresh integration per route: a shared one grants invoke to its first route only."""
        name = route_key.strip("$")
        return integrations.WebSocketLambdaIntegration(f"{name[0].upper()}{name[1:]}Integration", function)

    def _build_api(self) -> apigw.WebSocketApi:
        api = apigw.WebSocketApi(
            self,
            "Api",
            route_selection_expression=routes.ROUTE_SELECTION_EXPRESSION,
            connect_route_options=apigw.WebSocketRouteOptions(
                integration=self._integration(routes.CONNECT, self.connect_function),
                authorizer=self.auth.authorizer,
            ),
            disconnect_route_options=apigw.WebSocketRouteOptions(
                integration=self._integration(routes.DISCONNECT, self.disconnect_function)
            ),
            # Replies are route responses, so API Gateway delivers each handler's returned body.
            default_route_options=apigw.WebSocketRouteOptions(
                integration=self._integration(routes.DEFAULT, self.message_function), return_response=True
            ),
        )
        for route_key in routes.MESSAGE_ROUTES:
            api.add_route(
                route_key, integration=self._integration(route_key, self.message_function), return_response=True
            )
        return api

    def _wire_welcome(self) -> None:
        """First messages: new Connections rows carrying one are posted once the handshake is done."""
        self.welcome_function.add_event_source(
            event_sources.DynamoEventSource(
                self._tables.connections,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=100,
                max_batching_window=Duration.seconds(0),
                retry_attempts=2,
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

    def _schedule_sweeper(self) -> None:
        """Dropped speakers that never resumed, and sessions past their lifetime, end without any client."""
        events.Rule(
            self,
            "SweeperSchedule",
            schedule=events.Schedule.rate(Duration.minutes(limits.SWEEP_INTERVAL_MINUTES)),
            targets=[targets.LambdaFunction(self.sweeper_function, retry_attempts=0)],
        )
