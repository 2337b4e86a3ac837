"""The HTTP session API (decision record 0037): API Gateway's HTTP API with one route per entry of
``lambda_src.contract.http_api.ROUTES``, all served by one function, its stage throttled and access-logged.

Every route but ``GET /health`` is guarded by a JWT authorizer trusting the speakers' user pool and app client (the
ones the WebSocket authorizer verifies), so a request without a valid token is answered 401 before any function
runs. CORS preflights are answered by API Gateway for the environment's browser origins only
(``EnvironmentConfig.http_cors_origins``); with none configured no browser origin is named.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_app import nag
from cdk_app.access_logs import JsonAccessLogs
from cdk_app.auth import SpeakerAuth
from cdk_app.config import EnvironmentConfig
from lambda_src.contract import http_api

# One JSON object per request: correlation ids, the route, how the authorizer and the function answered; never the
# client's address or anything else from $context.identity (no full IP address is ever logged), never a token.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "requestTimeEpoch": "$context.requestTimeEpoch",
    "stage": "$context.stage",
    "routeKey": "$context.routeKey",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "errorMessage": "$context.error.message",
    "errorResponseType": "$context.error.responseType",
    "authorizerError": "$context.authorizer.error",
    "integrationStatus": "$context.integrationStatus",
    "integrationError": "$context.integrationErrorMessage",
    "integrationLatency": "$context.integrationLatency",
    "integrationRequestId": "$context.integration.requestId",
}

# Where the JWT authorizer reads the token (``Authorization: Bearer <token>``).
IDENTITY_SOURCE = "$request.header.Authorization"
# How long a browser may keep a preflight's answer.
CORS_MAX_AGE = Duration.hours(1)


class SessionHttpApi(Construct):
    """The HTTP API, its JWT authorizer, its stage (``config.name``: ``<url>/<env>/sessions``, as the WebSocket
    stage is named) and the access log group, encrypted with ``logs_key`` like the other log groups."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        function: lambda_.IFunction,
        auth: SpeakerAuth,
        logs_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = function
        self.api = apigw.HttpApi(
            self,
            "Api",
            description=f"{config.stack_name} HTTP session API",
            create_default_stage=False,
            cors_preflight=_cors(config.http_cors_origins),
        )
        self.authorizer = authorizers.HttpJwtAuthorizer(
            "SpeakerJwtAuthorizer",
            auth.issuer,
            jwt_audience=[auth.user_pool_client_id],
            identity_source=[IDENTITY_SOURCE],
        )
        # Route key -> its route (one integration per route: each grants API Gateway invoke on its own route only).
        self.routes: dict[str, apigw.HttpRoute] = {}
        for route in http_api.ROUTES:
            integration = integrations.HttpLambdaIntegration(
                f"{_construct_name(route)}Integration",
                function,
                payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0,
            )
            (added,) = self.api.add_routes(
                path=route.path,
                methods=[apigw.HttpMethod(route.method)],
                integration=integration,
                authorizer=self.authorizer if route.authorized else apigw.HttpNoneAuthorizer(),
            )
            self.routes[route.key] = added
            if not route.authorized:
                nag.acknowledge(
                    added,
                    "APIG4",
                    f"{route.key} is the health check load balancers and monitors call without a token; it "
                    "answers a constant and reads nothing",
                )
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
            encryption_key=logs_key,
        )
        self.stage = apigw.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name=config.name,
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=config.http_throttle.rate_limit, burst_limit=config.http_throttle.burst_limit
            ),
            access_log_settings=JsonAccessLogs(ACCESS_LOG_FIELDS, self.access_logs),
        )
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)
        cfn_stage.route_settings = {
            route_key: {"ThrottlingRateLimit": throttle.rate_limit, "ThrottlingBurstLimit": throttle.burst_limit}
            for route_key, throttle in sorted(config.http_route_throttles.items())
        }
        for route_key in config.http_route_throttles:
            self.stage.node.add_dependency(self.routes[route_key])  # route settings name routes that must exist

    @property
    def url(self) -> str:
        """The stage's base URL (``https://<id>.execute-api.<region>.<suffix>/<env>/``)."""
        url = self.stage.url
        assert url is not None
        return url


def _construct_name(route: http_api.HttpRoute) -> str:
    """``POST /sessions`` -> ``PostSessions``; ``GET /sessions/{sessionId}`` -> ``GetSessionsSessionId``."""
    words = [route.method.lower(), *route.path.replace("{", "").replace("}", "").split("/")]
    return "".join(word[:1].upper() + word[1:] for word in words if word)


def _cors(origins: tuple[str, ...]) -> apigw.CorsPreflightOptions | None:
    """Preflights answered for ``origins`` only, with the methods and headers the routes take; none without."""
    if not origins:
        return None
    return apigw.CorsPreflightOptions(
        allow_origins=list(origins),
        allow_methods=[apigw.CorsHttpMethod(method) for method in http_api.METHODS],
        allow_headers=list(http_api.REQUEST_HEADERS),
        expose_headers=list(http_api.EXPOSED_HEADERS),
        max_age=CORS_MAX_AGE,
    )
