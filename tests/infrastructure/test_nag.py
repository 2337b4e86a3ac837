"""cdk-nag's AwsSolutions pack runs on every synth of the app (these tests' synths too) and fails it on any
finding not acknowledged; the acknowledgements are exactly the ones listed here, each with its reason."""

from __future__ import annotations

import pytest
from aws_cdk import aws_sns as sns

from cdk_app.stack import SessionServiceStack
from lambda_src.contract import routes
from tests.infrastructure.template_support import ALL_ROUTES, Synthesized, synthesize

FUNCTIONS = (
    "Connect",
    "Disconnect",
    "Message",
    "Welcome",
    "Sweeper",
    "Authorizer",
    "Status",
    "Transcriber",
    "Fanout",
    "HttpApi",
)
POSTING = ("Connect", "Disconnect", "Message", "Welcome", "Sweeper", "Status", "Transcriber", "Fanout", "HttpApi")
TABLES = ("Sessions", "Connections", "RateLimits", "AudioChunks", "Transcripts")


def _expected(environment: str) -> set[tuple[str, str]]:
    """(construct path under the stack, finding) acknowledged in ``environment``, written out."""
    expected = {
        # WebSocket authorizers exist on $connect only.
        *{(f"WebSocket/Api/{route_key}-Route", "APIG4") for route_key in ALL_ROUTES - {routes.CONNECT}},
        # The runtime is pinned with the layer's wheels.
        *{(f"WebSocket/{function}", "L1") for function in FUNCTIONS},
        # ManageConnections on this stage's @connections/<connection id>.
        *{(f"WebSocket/{function}Role", "IAM5[@connections]") for function in POSTING},
        # dynamodb:ListStreams has no resource-level permission.
        ("WebSocket/WelcomeRole", "IAM5[*]"),
        ("WebSocket/StatusRole", "IAM5[*]"),
        # Amazon Transcribe streaming, TranslateText and SynthesizeSpeech have no resource to scope them to.
        ("WebSocket/TranscriberRole", "IAM5[*]"),
        # The failure queues are themselves dead-letter destinations (nothing would read a queue behind them).
        ("WebSocket/WelcomeFailures", "SQS3"),
        ("WebSocket/StatusFailures", "SQS3"),
        ("WebSocket/SweeperFailures", "SQS3"),
        ("WebSocket/FanoutFailures", "SQS3"),
        # The audio bucket: no access logs for short-lived published audio; its objects under audio/ by key.
        ("Audio/Bucket", "S1"),
        ("WebSocket/TranscriberRole", "IAM5[audio/*]"),
        # The HTTP API's health check answers without a token.
        ("Http/Api/GET--health", "APIG4"),
        # MFA and the Plus plan for the speakers' user pool.
        ("WebSocket/SpeakerAuth/UserPool", "COG2"),
        ("WebSocket/SpeakerAuth/UserPool", "COG8"),
    }
    if environment == "dev":  # no point-in-time recovery for disposable data
        expected |= {(f"Tables/{table}", "DDB3") for table in TABLES}
    else:  # X-Ray (tracing on) has no resource-level permission
        expected |= {(f"WebSocket/{function}Role", "IAM5[*]") for function in FUNCTIONS}
    return expected


def _short(finding: str, environment: str) -> str:
    rule = finding.removeprefix("AwsSolutions::AwsSolutions-")
    if rule == "IAM5[Resource::*]":
        return "IAM5[*]"
    connections = f"/{environment}/*/@connections/*]"
    if rule.startswith("IAM5[Resource::arn:<AWS::Partition>:execute-api:") and rule.endswith(connections):
        return "IAM5[@connections]"
    if rule.startswith("IAM5[Resource::<AudioBucket") and rule.endswith(".Arn>/audio/*]"):
        return "IAM5[audio/*]"
    return rule


def test_acknowledgements_are_exactly_the_listed_ones(deployed_any: Synthesized) -> None:
    # Given every acknowledgement recorded in the app
    prefix = f"{deployed_any.stack.node.path}/"
    found = set()
    for path, acknowledged in deployed_any.acknowledgments.items():
        assert path.startswith(prefix), path
        for finding, reason in acknowledged.items():
            assert finding.startswith("AwsSolutions::AwsSolutions-"), finding
            found.add((path.removeprefix(prefix), _short(finding, deployed_any.name)))
            # Then each says why, specifically (not a placeholder)
            assert len(reason) >= 60, (path, finding, reason)

    # And they are exactly the expected ones: a new one is a decision to review here
    assert found == _expected(deployed_any.name)


def test_an_unacknowledged_finding_fails_the_synth() -> None:
    # Given the stack with a topic that neither encrypts nor requires TLS, and no acknowledgement
    def add_plain_topic(stack: SessionServiceStack) -> None:
        sns.Topic(stack, "PlainTopic")

    # When it is synthesized, Then the synth fails on cdk-nag's findings
    with pytest.raises(Exception, match="AwsSolutions") as raised:
        synthesize({"env": "dev"}, customize=add_plain_topic)
    assert "PlainTopic" in str(raised.value)


def test_the_service_stack_alone_has_no_unacknowledged_finding(synthesized_environment) -> None:
    # Given every environment (the fixtures synthesize them with the checks on)
    for environment in ("dev", "staging", "prod"):
        # When / Then the synth succeeds
        assert synthesized_environment(environment).template is not None
