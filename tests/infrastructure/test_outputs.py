"""The stack's outputs: where clients connect, the @connections endpoint, and the tables for downstream."""

from __future__ import annotations

from tests.infrastructure.template_support import API_ID, REGION, Synthesized, get_att, ref

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
}


def test_documented_outputs_exist(deployed: Synthesized) -> None:
    # Given the synthesized stack
    # Then it exports each of these ten outputs
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
