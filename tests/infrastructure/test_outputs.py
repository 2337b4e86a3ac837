"""The stack's outputs: where clients connect, the @connections endpoint, the tables for downstream, and the speakers'
user pool and app client."""

from __future__ import annotations

from tests.infrastructure.template_support import API_ID, REGION, Synthesized, get_att, ref, synthesize

OUTPUTS = {
    "WebSocketUrl",
    "CallbackUrl",
    "SessionsTableName",
    "ConnectionsTableName",
    "SessionsTableArn",
    "ConnectionsTableArn",
    "AlarmTopicArn",
    "AccessLogGroupName",
    "WelcomeFailureQueueUrl",
    "SweeperFailureQueueUrl",
    "UserPoolId",
    "UserPoolClientId",
}


def test_documented_outputs_exist(deployed: Synthesized) -> None:
    # Given the synthesized stack
    # Then it exports each of these outputs
    assert set(deployed.template.find_outputs("*")) >= OUTPUTS
    assert set(deployed.json["Outputs"]) >= OUTPUTS


def test_url_outputs_point_at_this_environments_stage(deployed: Synthesized) -> None:
    # Given the URL outputs
    outputs = deployed.json["Outputs"]

    # Then clients connect over wss:// to the stage, and the @connections API is its https:// twin
    assert deployed.rendered(outputs["WebSocketUrl"]["Value"]) == (
        f"wss://{API_ID}.execute-api.{REGION}.amazonaws.com/{deployed.name}"
    )
    assert deployed.rendered(outputs["CallbackUrl"]["Value"]) == (
        f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/{deployed.name}"
    )


def test_table_outputs_name_the_tables(deployed: Synthesized) -> None:
    # Given the table outputs
    # Then names are the tables' Refs and ARNs their Arn attributes
    deployed.template.has_output("SessionsTableName", {"Value": ref(deployed.sessions_table_id)})
    deployed.template.has_output("ConnectionsTableName", {"Value": ref(deployed.connections_table_id)})
    deployed.template.has_output("SessionsTableArn", {"Value": get_att(deployed.sessions_table_id, "Arn")})
    deployed.template.has_output("ConnectionsTableArn", {"Value": get_att(deployed.connections_table_id, "Arn")})


def test_user_pool_outputs_name_the_stacks_pool_and_its_app_client(deployed: Synthesized) -> None:
    # Given the stack's own user pool and its one app client
    pool_id, _pool = deployed.only("AWS::Cognito::UserPool")
    client_id, client = deployed.only("AWS::Cognito::UserPoolClient")
    assert client["Properties"]["UserPoolId"] == ref(pool_id)

    # Then the outputs name them: what a speaker's account is created in and signs in with
    deployed.template.has_output("UserPoolId", {"Value": ref(pool_id)})
    deployed.template.has_output("UserPoolClientId", {"Value": ref(client_id)})


def test_user_pool_outputs_name_an_imported_pool_and_client() -> None:
    # Given -c userPoolId=... -c userPoolClientId=... (an existing pool)
    synthesized = synthesize({"env": "prod", "userPoolId": "eu-west-1_AbC123", "userPoolClientId": "client-1"})

    # Then the outputs are that pool and client
    synthesized.template.has_output("UserPoolId", {"Value": "eu-west-1_AbC123"})
    synthesized.template.has_output("UserPoolClientId", {"Value": "client-1"})
