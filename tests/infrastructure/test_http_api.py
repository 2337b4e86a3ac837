"""The HTTP session API in every environment: its routes are the contract's, each behind the one function with a
JWT authorizer on the speakers' pool (but ``/health``), CORS for the environment's origins, throttling, JSON access
logs to an encrypted log group, the function's invoke permissions, and the outputs.

The expectations are written out here, not read back from ``cdk_app.config``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambda_src.contract import function_settings, http_api
from tests.infrastructure.template_support import (
    EXPECTED,
    HTTP_API_MODULE,
    INTEGRATION_TYPE,
    LOG_GROUP_TYPE,
    PERMISSION_TYPE,
    REGION,
    ROUTE_TYPE,
    STAGE_TYPE,
    Synthesized,
    get_att,
    join_parts,
    ref,
    render,
    synthesize,
)

HTTP_API_ID = "h1t2t3p4a5"
CONTRACT_ROUTES = {
    "POST /sessions",
    "GET /sessions/{sessionId}",
    "PATCH /sessions/{sessionId}",
    "DELETE /sessions/{sessionId}",
    "GET /sessions/{sessionId}/transcript",
    "DELETE /sessions/{sessionId}/transcript",
    "GET /health",
}
UNGUARDED = {"GET /health"}
# dev: the speaker and listener apps' development servers on this machine; elsewhere none unless configured.
DEV_ORIGINS = {
    f"http://{host}:{port}" for host in ("localhost", "127.0.0.1") for port in (3000, 4173, 5173, 5174, 8080)
}
# Environment -> (stage rate, stage burst), and POST /sessions's tighter (rate, burst).
THROTTLES = {"dev": ((20, 40), (2, 5)), "staging": ((50, 100), (5, 10)), "prod": ((200, 400), (20, 40))}


def _stage(deployed: Synthesized) -> tuple[str, dict[str, Any]]:
    return deployed.only_of_api(STAGE_TYPE, deployed.http_api_id)


def test_the_routes_are_exactly_the_contracts(deployed_any: Synthesized) -> None:
    # Given the HTTP API's routes
    routes = deployed_any.http_routes

    # Then there is one per route of the contract, each once, and the contract is the documented one
    assert set(routes) == set(http_api.ROUTE_KEYS) == CONTRACT_ROUTES
    assert len(deployed_any.of_api(ROUTE_TYPE, deployed_any.http_api_id)) == len(CONTRACT_ROUTES)


def test_every_route_invokes_the_one_http_function_with_payload_format_2(deployed_any: Synthesized) -> None:
    # Given the function running lambda_src.handlers.http_api
    function_id = deployed_any.function_id(HTTP_API_MODULE)

    # Then every route's integration is a Lambda proxy to it, with the 2.0 event the handler reads
    for route_key in CONTRACT_ROUTES:
        integration_id = deployed_any.route_integration_id(route_key, deployed_any.http_routes)
        properties = deployed_any.resource(integration_id)["Properties"]
        assert properties["IntegrationType"] == "AWS_PROXY", route_key
        assert properties["PayloadFormatVersion"] == "2.0", route_key
        assert properties["IntegrationUri"] == get_att(function_id, "Arn"), route_key
    # And every integration is one of this API's (none shared with the WebSocket API)
    assert set(deployed_any.of_api(INTEGRATION_TYPE, deployed_any.http_api_id)) == {
        deployed_any.route_integration_id(route_key, deployed_any.http_routes) for route_key in CONTRACT_ROUTES
    }


def test_a_jwt_authorizer_on_the_speakers_pool_guards_every_route_but_health(deployed_any: Synthesized) -> None:
    # Given the HTTP API's one authorizer
    authorizer_id, authorizer = deployed_any.only_of_api("AWS::ApiGatewayV2::Authorizer", deployed_any.http_api_id)
    properties = authorizer["Properties"]

    # Then it verifies JWTs from the Authorization header
    assert properties["AuthorizerType"] == "JWT"
    assert properties["IdentitySource"] == ["$request.header.Authorization"]
    # And trusts the issuer and app client the WebSocket authorizer verifies
    websocket_authorizer = deployed_any.functions[deployed_any.function_id("authorizer")]["Properties"]
    variables = websocket_authorizer["Environment"]["Variables"]
    assert properties["JwtConfiguration"]["Issuer"] == variables[function_settings.ENV_ISSUER]
    assert properties["JwtConfiguration"]["Audience"] == [variables[function_settings.ENV_CLIENT_ID]]
    # And every route but the health check requires it
    for route_key, (_, route) in deployed_any.http_routes.items():
        route_properties = route["Properties"]
        if route_key in UNGUARDED:
            assert route_properties["AuthorizationType"] == "NONE", route_key
            assert "AuthorizerId" not in route_properties, route_key
        else:
            assert route_properties["AuthorizationType"] == "JWT", route_key
            assert route_properties["AuthorizerId"] == ref(authorizer_id), route_key


def test_the_authorizer_trusts_an_imported_pool_and_client() -> None:
    # Given an environment that trusts an existing user pool and app client
    synthesized = synthesize({"env": "staging", "userPoolId": "eu-west-1_AbC123", "userPoolClientId": "client123"})

    # Then the HTTP API's authorizer trusts that pool's issuer and that client
    _, authorizer = synthesized.only_of_api("AWS::ApiGatewayV2::Authorizer", synthesized.http_api_id)
    configuration = authorizer["Properties"]["JwtConfiguration"]
    assert configuration["Audience"] == ["client123"]
    assert synthesized.rendered(configuration["Issuer"]) == (
        f"https://cognito-idp.{REGION}.amazonaws.com/eu-west-1_AbC123"
    )


def test_cors_admits_the_environments_origins_only(deployed_any: Synthesized) -> None:
    # Given the HTTP API
    api = deployed_any.resource(deployed_any.http_api_id)["Properties"]

    if deployed_any.name == "dev":
        # Then in dev the apps' development servers on loopback may call it, with the routes' methods and headers
        cors = api["CorsConfiguration"]
        assert set(cors["AllowOrigins"]) == DEV_ORIGINS
        assert set(cors["AllowMethods"]) == {"GET", "POST", "PATCH", "DELETE"}
        assert {header.lower() for header in cors["AllowHeaders"]} == {"authorization", "content-type"}
        # ... and read a transcript's file name
        assert {header.lower() for header in cors["ExposeHeaders"]} == {"content-disposition"}
        assert "AllowCredentials" not in cors or cors["AllowCredentials"] is False
    else:
        # And elsewhere no browser origin unless one is configured
        assert "CorsConfiguration" not in api


def test_configured_origins_are_the_only_ones_admitted() -> None:
    # Given prod with the apps' origins configured
    origins = "https://speak.example.com,https://listen.example.com"
    synthesized = synthesize({"env": "prod", "httpCorsOrigins": origins})

    # Then exactly those origins are admitted
    api = synthesized.resource(synthesized.http_api_id)["Properties"]
    assert api["CorsConfiguration"]["AllowOrigins"] == origins.split(",")


@pytest.mark.parametrize("origins", ["*", "https://app.example.com/path", "app.example.com", "https://*.example.com"])
def test_an_origin_that_is_not_one_is_refused_at_synth(origins: str) -> None:
    # Given a configured "origin" that is a wildcard, carries a path or has no scheme
    # Then the synth refuses it (rather than API Gateway at deploy, or a browser never matching it)
    with pytest.raises(ValueError, match="httpCorsOrigins"):
        synthesize({"env": "prod", "httpCorsOrigins": origins})


def test_the_stage_is_throttled_and_creation_more_tightly(deployed_any: Synthesized) -> None:
    # Given the HTTP API's stage
    _, stage = _stage(deployed_any)
    properties = stage["Properties"]
    (rate, burst), (create_rate, create_burst) = THROTTLES[deployed_any.name]

    # Then it is the environment's stage, deployed on change, with the stage-wide throttle
    assert properties["StageName"] == deployed_any.name
    assert properties["AutoDeploy"] is True
    assert properties["DefaultRouteSettings"]["ThrottlingRateLimit"] == rate
    assert properties["DefaultRouteSettings"]["ThrottlingBurstLimit"] == burst
    # And POST /sessions, which writes the most, has a tighter one of its own
    assert properties["RouteSettings"] == {
        "POST /sessions": {"ThrottlingRateLimit": create_rate, "ThrottlingBurstLimit": create_burst}
    }
    assert create_rate < rate and create_burst < burst


def test_access_logs_are_json_without_addresses_in_an_encrypted_log_group(deployed_any: Synthesized) -> None:
    # Given the stage's access log settings
    _, stage = _stage(deployed_any)
    settings = stage["Properties"]["AccessLogSettings"]
    destination = settings["DestinationArn"]
    assert list(destination) == ["Fn::GetAtt"] and destination["Fn::GetAtt"][1] == "Arn"
    log_group_id = destination["Fn::GetAtt"][0]
    log_group = deployed_any.resources(LOG_GROUP_TYPE)[log_group_id]["Properties"]

    # Then each request is one JSON object naming the request, its route, and how it was answered
    fields = json.loads(settings["Format"])
    assert {"requestId", "routeKey", "status", "authorizerError", "integrationError"} <= set(fields)
    # And never the client's address or identity (no $context.identity, no header)
    assert not any("identity" in value or "header" in value for value in fields.values())
    # And the log group keeps the environment's retention and keys
    expected = EXPECTED[deployed_any.name]
    assert log_group["RetentionInDays"] == expected.log_retention_days
    if expected.customer_managed_keys:
        assert deployed_any.logs_key_id is not None
        assert log_group["KmsKeyId"] == get_att(deployed_any.logs_key_id, "Arn")
    else:
        assert "KmsKeyId" not in log_group


def test_api_gateway_may_invoke_the_function_for_this_apis_routes_only(deployed_any: Synthesized) -> None:
    # Given API Gateway's permissions naming the HTTP API
    function_id = deployed_any.function_id(HTTP_API_MODULE)
    permissions = [
        permission["Properties"]
        for permission in deployed_any.resources(PERMISSION_TYPE).values()
        if permission["Properties"].get("Principal") == "apigateway.amazonaws.com"
        and ref(deployed_any.http_api_id) in join_parts(permission["Properties"]["SourceArn"])
    ]

    # Then there is one per route, each on the HTTP function and scoped to its route's path
    assert len(permissions) == len(CONTRACT_ROUTES)
    paths = sorted(join_parts(permission["SourceArn"])[-1] for permission in permissions)
    assert paths == sorted(f"/*/*{route_key.split(' ', 1)[1]}" for route_key in CONTRACT_ROUTES)
    for permission in permissions:
        assert permission["FunctionName"] == get_att(function_id, "Arn")
        assert permission["Action"] == "lambda:InvokeFunction"
    # And the function is invoked by nothing else
    others = [
        permission["Properties"]
        for permission in deployed_any.resources(PERMISSION_TYPE).values()
        if permission["Properties"]["FunctionName"] == get_att(function_id, "Arn")
    ]
    assert len(others) == len(permissions)


def test_the_function_runs_the_http_handler_with_the_service_environment(deployed_any: Synthesized) -> None:
    # Given the HTTP function and the message function (the WebSocket routes')
    http_function = deployed_any.functions[deployed_any.function_id(HTTP_API_MODULE)]["Properties"]
    message_function = deployed_any.functions[deployed_any.function_id("message")]["Properties"]

    # Then it is told the same tables, settings and @connections URL (it ends sessions and tells their listeners)
    assert http_function["Handler"] == "lambda_src.handlers.http_api.handler"
    http_variables = http_function["Environment"]["Variables"]
    message_variables = dict(message_function["Environment"]["Variables"])
    # (but which function starts transcriptions: only audio over the WebSocket does)
    del message_variables[function_settings.ENV_TRANSCRIBER_FUNCTION]
    assert http_variables == message_variables
    assert function_settings.ENV_CALLBACK_URL in http_variables
    # And holds the environment's reservation
    assert http_function.get("ReservedConcurrentExecutions") == EXPECTED[deployed_any.name].reserved_concurrency.get(
        HTTP_API_MODULE
    )


def test_outputs_name_the_http_url_and_its_access_logs(deployed_any: Synthesized) -> None:
    # Given the stack's outputs
    outputs = deployed_any.json["Outputs"]
    _, stage = _stage(deployed_any)
    log_group_id = stage["Properties"]["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]

    # Then the HTTP API's URL is its stage's, over https, and the access log group is named
    names = {**deployed_any.sample_names, deployed_any.http_api_id: HTTP_API_ID}
    url = render(outputs["HttpApiUrl"]["Value"], names)
    assert url == f"https://{HTTP_API_ID}.execute-api.{REGION}.amazonaws.com/{deployed_any.name}"
    assert outputs["HttpAccessLogGroupName"]["Value"] == ref(log_group_id)
