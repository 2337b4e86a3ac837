"""The WebSocket API: routes, route responses, integrations, invoke permissions and the stage."""

from __future__ import annotations

import json

from aws_cdk.assertions import Capture, Match

from lambda_src.contract import http_api, routes
from tests.infrastructure.template_support import (
    ACCOUNT,
    ACCOUNT_TYPE,
    ALL_ROUTES,
    API_ID,
    API_TYPE,
    AUTHORIZER_TYPE,
    EVENTS_PRINCIPAL,
    EXPECTED,
    INTEGRATION_TYPE,
    LOG_GROUP_TYPE,
    PERMISSION_TYPE,
    REGION,
    RESPONDING_ROUTES,
    ROUTE_MODULE,
    ROUTE_RESPONSE_TYPE,
    ROUTE_TYPE,
    STAGE_TYPE,
    SWEEPER_MODULE,
    Synthesized,
    arn_like,
    execute_api_arn_parts,
    get_att,
    join_parts,
    ref,
    render,
    synthesize,
)

APIGATEWAY = "apigateway.amazonaws.com"


def _invoke_arn(stage: str, route_key: str) -> str:
    """The ARN API Gateway presents as the source when it invokes a route's function."""
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{stage}/{route_key}"


def _apigateway_permissions(deployed: Synthesized) -> dict[str, dict]:
    """API Gateway's permissions to invoke a function for the WebSocket API (its SourceArn names that API)."""
    return {
        logical_id: permission
        for logical_id, permission in deployed.resources(PERMISSION_TYPE).items()
        if permission["Properties"].get("Principal") == APIGATEWAY
        and ref(deployed.api_id) in join_parts(permission["Properties"]["SourceArn"])
    }


def _is_authorizer_permission(deployed: Synthesized, permission: dict) -> bool:
    """A permission for a Lambda authorizer: SourceArn ``.../<api id>/authorizers/<authorizer id>``."""
    parts = join_parts(permission["Properties"]["SourceArn"])
    return (
        len(parts) >= 2
        and parts[-2] == "/authorizers/"
        and isinstance(parts[-1], dict)
        and parts[-1].get("Ref") in deployed.of_api(AUTHORIZER_TYPE, deployed.api_id)
    )


def _route_permissions(deployed: Synthesized) -> dict[str, dict]:
    """API Gateway's permissions to invoke a route's function (every one but an authorizer's)."""
    return {
        logical_id: permission
        for logical_id, permission in _apigateway_permissions(deployed).items()
        if not _is_authorizer_permission(deployed, permission)
    }


def _permission_route_key(deployed: Synthesized, permission: dict) -> str:
    """The route key a permission's SourceArn names (its last Join part is ``/*/<route key>``)."""
    last = join_parts(permission["Properties"]["SourceArn"])[-1]
    assert isinstance(last, str) and last.startswith("/*/"), f"unexpected SourceArn tail {last!r}"
    return last[len("/*/") :]


# --- the API and its routes ------------------------------------------------------------------------


def test_one_websocket_api_routed_on_the_action_field(deployed: Synthesized) -> None:
    # Given the synthesized stack
    # Then it has one WebSocket API selecting routes by the message's "action" (beside the HTTP session API)
    deployed.template.resource_count_is(API_TYPE, 2)
    assert deployed.api_id != deployed.http_api_id
    deployed.template.has_resource_properties(
        API_TYPE, {"ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.action"}
    )
    assert routes.ROUTE_SELECTION_EXPRESSION == "$request.body.action"


def test_routes_are_exactly_the_lifecycle_routes_and_the_message_routes(deployed: Synthesized) -> None:
    # Given the API's routes
    route_keys = [route["Properties"]["RouteKey"] for route in deployed.of_api(ROUTE_TYPE, deployed.api_id).values()]

    # Then there is one per lifecycle event and one per message action, each once
    assert sorted(route_keys) == sorted({"$connect", "$disconnect", "$default", *routes.MESSAGE_ROUTES})
    assert set(route_keys) == ALL_ROUTES
    assert sorted(routes.MESSAGE_ROUTES) == sorted(
        {
            "createSession",
            "joinSession",
            "heartbeat",
            "leaveSession",
            "updateSessionConfig",
            "getSessionStatus",
            "endSession",
            "pauseBroadcast",
            "resumeBroadcast",
            "muteBroadcast",
            "unmuteBroadcast",
            "setVolume",
            "speakerStateChange",
            "sendAudio",
            "audioChunk",
            "changeLanguage",
            "switchLanguage",
            "pausePlayback",
            "resumePlayback",
            "setOutput",
        }
    )
    # And every route belongs to the one API
    for route in deployed.of_api(ROUTE_TYPE, deployed.api_id).values():
        assert route["Properties"]["ApiId"] == ref(deployed.api_id)


def test_replying_routes_have_a_default_route_response(deployed: Synthesized) -> None:
    # Given the route responses, by the route they belong to
    responses: dict[str, list[dict]] = {}
    for response in deployed.of_api(ROUTE_RESPONSE_TYPE, deployed.api_id).values():
        route_ref = response["Properties"]["RouteId"]
        responses.setdefault(route_ref["Ref"], []).append(response["Properties"])

    # Then each message route and $default returns its handler's body through a "$default" route response
    for route_key in sorted(RESPONDING_ROUTES):
        route_id, route = deployed.routes[route_key]
        assert route["Properties"].get("RouteResponseSelectionExpression") == "$default", route_key
        assert responses.get(route_id) == [
            {"ApiId": ref(deployed.api_id), "RouteId": ref(route_id), "RouteResponseKey": "$default"}
        ], route_key

    # And $connect / $disconnect have neither (API Gateway cannot reply on them)
    for route_key in (routes.CONNECT, routes.DISCONNECT):
        route_id, route = deployed.routes[route_key]
        assert "RouteResponseSelectionExpression" not in route["Properties"], route_key
        assert route_id not in responses, route_key

    # And there is no other route response
    deployed.template.resource_count_is(ROUTE_RESPONSE_TYPE, len(RESPONDING_ROUTES))


# --- integrations ----------------------------------------------------------------------------------


def test_one_integration_per_route(deployed: Synthesized) -> None:
    # Given the routes and the integrations
    integrations = deployed.of_api(INTEGRATION_TYPE, deployed.api_id)
    targets = {route_key: deployed.route_integration_id(route_key) for route_key in ALL_ROUTES}

    # Then every route targets its own integration (3 lifecycle routes and 20 message routes), and every
    # integration is some route's
    assert len(integrations) == len(ALL_ROUTES) == 23
    assert len(set(targets.values())) == len(ALL_ROUTES), targets
    assert set(targets.values()) == set(integrations)
    # And each is a Lambda proxy integration of the one API
    for integration in integrations.values():
        assert integration["Properties"]["ApiId"] == ref(deployed.api_id)
        assert integration["Properties"]["IntegrationType"] == "AWS_PROXY"


def test_route_target_captured_through_template_matchers(deployed: Synthesized) -> None:
    # Given the heartbeat route
    target = Capture()
    deployed.template.has_resource_properties(
        ROUTE_TYPE, {"RouteKey": routes.HEARTBEAT, "Target": {"Fn::Join": ["", ["integrations/", target]]}}
    )

    # Then it targets an integration of the template
    assert target.as_object()["Ref"] in deployed.of_api(INTEGRATION_TYPE, deployed.api_id)


def test_each_route_invokes_its_handler(deployed: Synthesized) -> None:
    # Given each route's integration
    # Then $connect and $disconnect run their handlers and every other route runs the message handler
    for route_key in sorted(ALL_ROUTES):
        function_id = deployed.route_function_id(route_key)
        assert deployed.function_module(function_id) == ROUTE_MODULE[route_key], route_key
        uri = deployed.resource(deployed.route_integration_id(route_key))["Properties"]["IntegrationUri"]
        assert render(uri, {**deployed.sample_names, f"{function_id}.Arn": "FN"}) == (
            f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/FN/invocations"
        )


# --- invoke permissions ----------------------------------------------------------------------------


def test_one_invoke_permission_per_route(deployed: Synthesized) -> None:
    # Given the Lambda permissions granted to API Gateway for routes (not for an authorizer)
    permissions = _route_permissions(deployed)
    route_keys = [_permission_route_key(deployed, p) for p in permissions.values()]

    # Then there is exactly one per route (a shared integration would grant only its first route)
    assert len(permissions) == len(ALL_ROUTES)
    assert sorted(route_keys) == sorted(ALL_ROUTES)
    # And the only other principal that may invoke a function is EventBridge, invoking the sweeper on its
    # schedule (the rule and its permission are checked in test_functions)
    others = [
        permission["Properties"]
        for logical_id, permission in deployed.resources(PERMISSION_TYPE).items()
        if logical_id not in _apigateway_permissions(deployed)
        and not (
            permission["Properties"]["Principal"] == APIGATEWAY
            and ref(deployed.http_api_id) in join_parts(permission["Properties"]["SourceArn"])
        )
    ]
    assert [(p["Principal"], p["FunctionName"]) for p in others] == [
        (EVENTS_PRINCIPAL, get_att(deployed.function_id(SWEEPER_MODULE), "Arn"))
    ]


def test_invoke_permission_source_arn_is_scoped_to_its_route(deployed: Synthesized) -> None:
    # Given each route's invoke permission
    for permission in _route_permissions(deployed).values():
        properties = permission["Properties"]
        route_key = _permission_route_key(deployed, permission)

        # Then its SourceArn is this API's execute-api ARN for any stage and exactly this route key
        # ("<api id>/*/<route key>": CDK's own "<api id>/*<route key>" would also admit any route ending in this key)
        assert join_parts(properties["SourceArn"]) == execute_api_arn_parts(deployed.api_id, f"/*/{route_key}")
        assert properties["Action"] == "lambda:InvokeFunction"


def test_invoke_permission_admits_its_route_and_no_other(deployed: Synthesized) -> None:
    # Given each route permission's SourceArn as deployed (IAM ArnLike semantics)
    for permission in _route_permissions(deployed).values():
        route_key = _permission_route_key(deployed, permission)
        pattern = deployed.rendered(permission["Properties"]["SourceArn"])

        # When API Gateway invokes the route's function from this environment's stage
        # Then the permission admits it
        assert arn_like(pattern, _invoke_arn(deployed.name, route_key)), (pattern, route_key)
        # And it does not admit any other route
        for other in ALL_ROUTES - {route_key}:
            assert not arn_like(pattern, _invoke_arn(deployed.name, other)), (pattern, other)


def test_invoke_permission_names_the_function_its_route_invokes(deployed: Synthesized) -> None:
    # Given each route's invoke permission
    for permission in _route_permissions(deployed).values():
        route_key = _permission_route_key(deployed, permission)

        # Then it is granted on the function that route's integration targets
        assert permission["Properties"]["FunctionName"] == get_att(deployed.route_function_id(route_key), "Arn")


def test_permission_count_through_template_matchers(deployed: Synthesized) -> None:
    # Given the synthesized stack
    # Then API Gateway holds one permission per route plus one per Lambda authorizer, one of them for $connect
    # (and one per route of the HTTP session API: tests/infrastructure/test_http_api.py)
    found = deployed.template.find_resources(PERMISSION_TYPE, {"Properties": {"Principal": APIGATEWAY}})
    websocket_authorizers = deployed.of_api(AUTHORIZER_TYPE, deployed.api_id)
    assert len(found) == len(ALL_ROUTES) + len(websocket_authorizers) + len(http_api.ROUTES)
    deployed.template.has_resource_properties(
        PERMISSION_TYPE,
        {
            "Principal": APIGATEWAY,
            "SourceArn": {"Fn::Join": ["", Match.array_with([f"/*/{routes.CONNECT}"])]},
        },
    )


# --- the stage -------------------------------------------------------------------------------------


def test_stage_is_named_after_the_environment_and_throttled(deployed_any: Synthesized) -> None:
    # Given the stack of an environment
    stage_id, stage = deployed_any.only_of_api(STAGE_TYPE, deployed_any.api_id)
    properties = stage["Properties"]
    config = deployed_any.config

    # Then its one stage is named after it, deploys automatically and applies its throttling
    assert properties["StageName"] == deployed_any.name
    assert properties["ApiId"] == ref(deployed_any.api_id)
    assert properties["AutoDeploy"] is True
    assert properties["DefaultRouteSettings"]["ThrottlingRateLimit"] == config.throttle_rate_limit
    assert properties["DefaultRouteSettings"]["ThrottlingBurstLimit"] == config.throttle_burst_limit


def test_prod_is_throttled_more_loosely_than_dev(synthesized_environment) -> None:
    # Given the dev and prod stages
    dev = synthesized_environment("dev").only_of_api(STAGE_TYPE, synthesized_environment("dev").api_id)[1][
        "Properties"
    ]["DefaultRouteSettings"]
    prod = synthesized_environment("prod").only_of_api(STAGE_TYPE, synthesized_environment("prod").api_id)[1][
        "Properties"
    ]["DefaultRouteSettings"]

    # Then the limits differ as configured (dev 50/100, prod 1000/2000 per second)
    assert (dev["ThrottlingRateLimit"], dev["ThrottlingBurstLimit"]) == (50, 100)
    assert (prod["ThrottlingRateLimit"], prod["ThrottlingBurstLimit"]) == (1000, 2000)


# Per-route limits (steady per second, burst), written out: tighter on the routes that write the most per
# request; every other route (heartbeat among them) keeps the stage's limit.
EXPECTED_ROUTE_THROTTLES = {
    "dev": {"$connect": (20, 40), "createSession": (2, 5), "joinSession": (20, 40)},
    "staging": {"$connect": (100, 200), "createSession": (5, 10), "joinSession": (100, 200)},
    "prod": {"$connect": (300, 600), "createSession": (20, 40), "joinSession": (300, 600)},
}


def test_routes_are_throttled_per_environment(deployed_any: Synthesized) -> None:
    # Given the stage's per-route settings
    stage_id, stage = deployed_any.only_of_api(STAGE_TYPE, deployed_any.api_id)
    properties = stage["Properties"]
    route_settings = properties["RouteSettings"]
    default = properties["DefaultRouteSettings"]

    # Then $connect, createSession and joinSession have their environment's limits, and nothing else
    # (heartbeat keeps the stage's limit)
    assert {
        route_key: (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"])
        for route_key, settings in route_settings.items()
    } == EXPECTED_ROUTE_THROTTLES[deployed_any.name]
    assert routes.HEARTBEAT not in route_settings
    # And each is tighter than the stage's limit
    for route_key, settings in route_settings.items():
        assert settings["ThrottlingRateLimit"] < default["ThrottlingRateLimit"], route_key
        assert settings["ThrottlingBurstLimit"] < default["ThrottlingBurstLimit"], route_key
        # And names a route of the API, which the stage waits for (route settings of a missing route fail)
        route_id, _ = deployed_any.routes[route_key]
        assert route_id in stage.get("DependsOn", []), route_key


ACCESS_LOG_REQUIRED = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "connectionId": "$context.connectionId",
    "routeKey": "$context.routeKey",
    "eventType": "$context.eventType",
    "status": "$context.status",
    "integrationError": "$context.integration.error",
}


def test_stage_writes_json_access_logs_to_a_retained_log_group(deployed_any: Synthesized) -> None:
    # Given the stage's access log settings
    _, stage = deployed_any.only_of_api(STAGE_TYPE, deployed_any.api_id)
    settings = stage["Properties"]["AccessLogSettings"]

    # Then they go to a log group of the stack, kept as long as the environment keeps logs
    destination = settings["DestinationArn"]
    assert list(destination) == ["Fn::GetAtt"] and destination["Fn::GetAtt"][1] == "Arn", destination
    log_group = deployed_any.resource(destination["Fn::GetAtt"][0])
    assert log_group["Type"] == LOG_GROUP_TYPE
    assert log_group["Properties"]["RetentionInDays"] == EXPECTED[deployed_any.name].log_retention_days
    assert log_group.get("DeletionPolicy") == EXPECTED[deployed_any.name].removal_policy
    # (operators find it by the stack's output)
    deployed_any.template.has_output("AccessLogGroupName", {"Value": ref(destination["Fn::GetAtt"][0])})

    # And each line is one JSON object naming the request, the connection, the route, the event, the status
    # and the integration's error
    fields = json.loads(settings["Format"])
    assert isinstance(fields, dict)
    assert ACCESS_LOG_REQUIRED.items() <= fields.items()
    # And nothing about the client's address (or anything else from $context.identity) is logged
    for name, value in fields.items():
        assert "identity" not in value.lower() and "ip" not in value.lower(), (name, value)
        assert "ip" not in name.lower(), name


def test_only_connect_is_authorized_and_the_other_routes_say_why(deployed: Synthesized) -> None:
    # Given every route
    for route_key, (_route_id, route) in sorted(deployed.routes.items()):
        properties = route["Properties"]
        if route_key == routes.CONNECT:
            # Then $connect runs the Lambda authorizer
            assert properties["AuthorizationType"] == "CUSTOM"
            continue
        # And every other route has none (API Gateway allows authorizers on $connect only), acknowledged
        # on that route with the reason
        assert properties.get("AuthorizationType", "NONE") == "NONE", route_key
        path = f"{deployed.stack.node.path}/WebSocket/Api/{route_key}-Route"
        reason = deployed.acknowledgments.get(path, {}).get("AwsSolutions::AwsSolutions-APIG4", "")
        assert "$connect" in reason, route_key


def test_api_gateway_account_role_is_not_created_by_default(deployed_any: Synthesized) -> None:
    # Given an environment's stack without -c createApiGatewayAccountRole=true
    # Then it leaves the account-wide API Gateway logging role alone
    assert not deployed_any.resources(ACCOUNT_TYPE)


def test_api_gateway_account_role_on_request() -> None:
    # Given -c createApiGatewayAccountRole=true
    synthesized = synthesize({"env": "prod", "createApiGatewayAccountRole": "true"})

    # Then the stack sets the account's API Gateway logging role, and keeps both when it is deleted
    account_id, account = synthesized.only(ACCOUNT_TYPE)
    role_ref = account["Properties"]["CloudWatchRoleArn"]
    role_id = role_ref["Fn::GetAtt"][0]
    role = synthesized.resource(role_id)
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"
    }
    assert account.get("DeletionPolicy") == role.get("DeletionPolicy") == "Retain"
    # And the stage, whose access logs need that role, is created after it
    _, stage = synthesized.only_of_api(STAGE_TYPE, synthesized.api_id)
    assert account_id in stage["DependsOn"]
