"""The alarms and their topic: one of each kind per function, the stage's execution errors, and the spike of
rejected configurations and the synthesis failures, on exactly a metric and a dimension set the code emits
(``lambda_src.platform.metrics``)."""

from __future__ import annotations

import pytest

from lambda_src.contract import telemetry
from tests.infrastructure.template_support import (
    ALARM_TYPE,
    ALL_MODULES,
    KEY_TYPE,
    QUEUE_TYPE,
    RULE_TYPE,
    SUBSCRIPTION_TYPE,
    TOPIC_POLICY_TYPE,
    TOPIC_TYPE,
    Synthesized,
    get_att,
    ref,
    synthesize,
)

LAMBDA_NAMESPACE = "AWS/Lambda"
# Timeouts (s) by handler module, and the share of it a p99 duration may reach before its alarm fires.
TIMEOUT_SECONDS = {
    "connect": 10,
    "disconnect": 10,
    "message": 10,
    "authorizer": 10,
    "welcome": 30,
    "sweeper": 50,
    "fanout": 30,
}
DURATION_FRACTION = 0.8
# Errors in 5 minutes that fire a function's alarm (the authorizer refuses tokens by raising: only a burst).
ERRORS_THRESHOLD = {module: 1 for module in TIMEOUT_SECONDS} | {"authorizer": 50}
REJECTED_CONFIGURATION_THRESHOLD = 25
SYNTHESIS_FAILURES_THRESHOLD = 5
SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"
ENVIRONMENT_ENV = "ENVIRONMENT_NAME"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"


def _alarms(deployed: Synthesized) -> dict[str, dict]:
    return {logical_id: alarm["Properties"] for logical_id, alarm in deployed.resources(ALARM_TYPE).items()}


def _function_alarms(deployed: Synthesized, function_id: str) -> dict[str, dict]:
    """The function's alarms on AWS/Lambda, by metric name."""
    found: dict[str, dict] = {}
    for properties in _alarms(deployed).values():
        if properties.get("Namespace") != LAMBDA_NAMESPACE:
            continue
        if properties.get("Dimensions") == [{"Name": "FunctionName", "Value": ref(function_id)}]:
            assert properties["MetricName"] not in found, (function_id, properties["MetricName"])
            found[properties["MetricName"]] = properties
    return found


def _custom_alarms(deployed: Synthesized) -> list[dict]:
    return [p for p in _alarms(deployed).values() if p.get("Namespace") == telemetry.NAMESPACE]


def _variables(deployed: Synthesized, function_id: str) -> dict:
    return deployed.functions[function_id]["Properties"]["Environment"]["Variables"]


def test_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(deployed_any: Synthesized) -> None:
    # Given the alarm topic
    topic_id, topic = deployed_any.only(TOPIC_TYPE)
    key_ref = topic["Properties"]["KmsMasterKeyId"]

    # Then it is encrypted with a key of the stack, rotated yearly
    key_id = key_ref["Fn::GetAtt"][0]
    key = deployed_any.resource(key_id)
    assert key["Type"] == KEY_TYPE
    assert key["Properties"]["EnableKeyRotation"] is True
    # And CloudWatch (which publishes the alarms) may use it
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(cloudwatch) == 1
    assert set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_topic_refuses_anything_but_tls(deployed_any: Synthesized) -> None:
    # Given the alarm topic's policy
    topic_id, _ = deployed_any.only(TOPIC_TYPE)
    _, policy = deployed_any.only(TOPIC_POLICY_TYPE)
    assert policy["Properties"]["Topics"] == [ref(topic_id)]

    # Then it denies every action on the topic over plain HTTP
    deny = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(deny) == 1 and deny[0]["Resource"] == ref(topic_id)


def test_no_subscription_without_an_alarm_email(deployed_any: Synthesized) -> None:
    assert not deployed_any.resources(SUBSCRIPTION_TYPE)


def test_alarm_email_from_context_is_subscribed() -> None:
    # Given -c alarmEmail=ops@example.com
    synthesized = synthesize({"env": "prod", "alarmEmail": "ops@example.com"})

    # Then the address is subscribed to the alarm topic by e-mail
    topic_id, _ = synthesized.only(TOPIC_TYPE)
    _, subscription = synthesized.only(SUBSCRIPTION_TYPE)
    assert subscription["Properties"] == {
        "Endpoint": "ops@example.com",
        "Protocol": "email",
        "TopicArn": ref(topic_id),
    }


def test_every_alarm_notifies_the_topic_and_ignores_missing_data(deployed: Synthesized) -> None:
    # Given every alarm
    topic_id, _ = deployed.only(TOPIC_TYPE)
    alarms = _alarms(deployed)
    # (each function x 3, the stage, the rejected configurations, the synthesis failures, 4 failure queues, the
    # sweeper's schedule)
    assert len(alarms) == len(ALL_MODULES) * 3 + 8

    # Then it notifies the topic when it fires and when it recovers, and no traffic never fires it
    for logical_id, properties in alarms.items():
        assert properties["AlarmActions"] == [ref(topic_id)], logical_id
        assert properties["OKActions"] == [ref(topic_id)], logical_id
        assert properties["TreatMissingData"] == "notBreaching", logical_id
        assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", logical_id
        assert deployed.name in properties["AlarmDescription"], logical_id


@pytest.mark.parametrize("module", sorted(TIMEOUT_SECONDS))
def test_each_function_alarms_on_errors_throttles_and_slow_p99(deployed: Synthesized, module: str) -> None:
    # Given the function's alarms
    function_id = deployed.function_id(module)
    alarms = _function_alarms(deployed, function_id)

    # Then there is one on its errors, one on its throttles and one on its p99 duration
    assert set(alarms) == {"Errors", "Throttles", "Duration"}, module
    assert alarms["Errors"]["Statistic"] == "Sum"
    assert alarms["Errors"]["Threshold"] == ERRORS_THRESHOLD[module]
    assert alarms["Throttles"]["Statistic"] == "Sum"
    assert alarms["Throttles"]["Threshold"] == 1
    # And the duration alarm fires at 80 % of the function's timeout, in 2 of 3 periods
    duration = alarms["Duration"]
    assert duration["ExtendedStatistic"] == "p99"
    timeout = deployed.functions[function_id]["Properties"]["Timeout"]
    assert timeout == TIMEOUT_SECONDS[module]
    assert duration["Threshold"] == timeout * 1000 * DURATION_FRACTION
    assert (duration["EvaluationPeriods"], duration["DatapointsToAlarm"]) == (3, 2)
    for properties in alarms.values():
        assert properties["Period"] == 300


def test_stage_execution_errors_alarm(deployed: Synthesized) -> None:
    # Given the alarms on API Gateway's metrics
    found = [p for p in _alarms(deployed).values() if p.get("Namespace") == "AWS/ApiGateway"]

    # Then one watches this stage's execution errors (integrations API Gateway could not run)
    assert len(found) == 1
    alarm = found[0]
    assert alarm["MetricName"] == "ExecutionError"
    assert alarm["Statistic"] == "Sum"
    assert alarm["Threshold"] == 1
    assert sorted(alarm["Dimensions"], key=lambda d: d["Name"]) == [
        {"Name": "ApiId", "Value": ref(deployed.api_id)},
        {"Name": "Stage", "Value": deployed.name},
    ]


def test_every_function_is_told_the_metrics_namespace_and_its_environment(deployed_any: Synthesized) -> None:
    # Given every function
    for logical_id in deployed_any.functions:
        variables = _variables(deployed_any, logical_id)

        # Then its metrics go to the service's namespace, with the service and environment it runs in
        assert variables[NAMESPACE_ENV] == telemetry.NAMESPACE == "SessionService", logical_id
        assert variables[ENVIRONMENT_ENV] == deployed_any.name, logical_id
        assert variables[SERVICE_ENV] == "session-service", logical_id
    assert telemetry.ENV_ENVIRONMENT_NAME == ENVIRONMENT_ENV


def _custom_alarm(deployed: Synthesized, metric_name: str) -> dict:
    (alarm,) = [properties for properties in _custom_alarms(deployed) if properties["MetricName"] == metric_name]
    return alarm


def test_the_service_metrics_alarmed_are_rejected_configurations_and_synthesis_failures(
    deployed_any: Synthesized,
) -> None:
    assert sorted(alarm["MetricName"] for alarm in _custom_alarms(deployed_any)) == [
        telemetry.REJECTIONS,
        telemetry.SYNTHESIS_FAILURES,
    ]


def test_rejected_configurations_alarm(deployed_any: Synthesized) -> None:
    # Given the alarm on the service's own rejections
    alarm = _custom_alarm(deployed_any, telemetry.REJECTIONS)

    # Then it fires on a spike of requests refused with INVALID_CONFIGURATION, in this environment
    assert alarm["MetricName"] == "Rejections"
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "service": "session-service",
        "environment": deployed_any.name,
        "errorCode": "INVALID_CONFIGURATION",
    }
    assert alarm["Statistic"] == "Sum"
    assert alarm["Period"] == 300
    assert alarm["Threshold"] == REJECTED_CONFIGURATION_THRESHOLD


def test_rejected_configurations_threshold_override() -> None:
    synthesized = synthesize({"env": "dev", "invalidConfigurationAlarmThreshold": "5"})
    assert _custom_alarm(synthesized, telemetry.REJECTIONS)["Threshold"] == 5


def test_synthesis_failures_alarm(deployed_any: Synthesized) -> None:
    # Given the alarm on the segments the transcriber could not speak to their listeners
    alarm = _custom_alarm(deployed_any, telemetry.SYNTHESIS_FAILURES)

    # Then it sums SynthesisFailures of this environment over 5 minutes and fires at the threshold (in every
    # environment, as every alarm: the topic's subscribers say who hears it)
    assert telemetry.SYNTHESIS_FAILURES == "SynthesisFailures"
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "service": "session-service",
        "environment": deployed_any.name,
    }
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 300, 1)
    assert alarm["Threshold"] == SYNTHESIS_FAILURES_THRESHOLD
    assert "not spoken" in alarm["AlarmDescription"]


def test_synthesis_failures_threshold_override() -> None:
    synthesized = synthesize({"env": "prod", "synthesisFailuresAlarmThreshold": "20"})
    assert _custom_alarm(synthesized, telemetry.SYNTHESIS_FAILURES)["Threshold"] == 20


def test_custom_metric_alarms_name_exactly_what_the_code_emits(deployed_any: Synthesized) -> None:
    # Given every alarm on the service's namespace, and the values every function publishes its metrics with
    service_values = {_variables(deployed_any, f)[SERVICE_ENV] for f in deployed_any.functions}
    environment_values = {_variables(deployed_any, f)[ENVIRONMENT_ENV] for f in deployed_any.functions}
    namespaces = {_variables(deployed_any, f)[NAMESPACE_ENV] for f in deployed_any.functions}
    assert len(service_values) == len(environment_values) == len(namespaces) == 1
    alarms = _custom_alarms(deployed_any)
    assert alarms

    for alarm in alarms:
        # Then it watches a metric of lambda_src.platform.metrics, in the namespace the functions publish to
        assert alarm["Namespace"] in namespaces
        assert alarm["MetricName"] in telemetry.EXTRA_DIMENSION, alarm["MetricName"]
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        # With exactly the dimension set the code publishes that metric with: the two defaults, plus its
        # extra dimension when it has one (a different set would be another metric, one nobody emits)
        extra = telemetry.EXTRA_DIMENSION[alarm["MetricName"]]
        expected_names = {telemetry.SERVICE_DIMENSION, telemetry.ENVIRONMENT_DIMENSION} | ({extra} if extra else set())
        assert set(dimensions) == expected_names, alarm["MetricName"]
        assert set(dimensions) == set(telemetry.dimension_names(alarm["MetricName"]))
        # And the default dimensions' values are the ones the functions' environment gives them
        assert {dimensions[telemetry.SERVICE_DIMENSION]} == service_values
        assert {dimensions[telemetry.ENVIRONMENT_DIMENSION]} == environment_values


@pytest.mark.parametrize("prefix", ["Welcome", "Sweeper", "Fanout"])
def test_each_failure_queue_alarms_while_it_holds_a_record(deployed: Synthesized, prefix: str) -> None:
    # Given the function's failure queue
    (queue_id,) = [logical_id for logical_id in deployed.resources(QUEUE_TYPE) if f"{prefix}Failures" in logical_id]

    # Then exactly one alarm watches it: one visible record or more (the highest count in 5 minutes) fires it,
    # and it stays in alarm until the queue is redriven or purged
    watching = [
        properties
        for properties in _alarms(deployed).values()
        if properties.get("Dimensions") == [{"Name": "QueueName", "Value": get_att(queue_id, "QueueName")}]
    ]
    assert len(watching) == 1, watching
    (alarm,) = watching
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Period"] == 300
    assert alarm["Threshold"] == 1
    assert alarm["EvaluationPeriods"] == 1


def test_sweeper_schedule_alarms_when_eventbridge_cannot_invoke_it(deployed: Synthesized) -> None:
    # Given the sweeper's schedule
    rule_id, _ = deployed.only(RULE_TYPE)

    # Then one failed invocation of its target in 5 minutes fires an alarm (the event never reached Lambda)
    watching = [
        properties
        for properties in _alarms(deployed).values()
        if properties.get("Dimensions") == [{"Name": "RuleName", "Value": ref(rule_id)}]
    ]
    assert len(watching) == 1, watching
    (alarm,) = watching
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Events", "FailedInvocations", "Sum")
    assert alarm["Period"] == 300
    assert alarm["Threshold"] == 1


def test_alarm_topic_is_an_output(deployed: Synthesized) -> None:
    topic_id, _ = deployed.only(TOPIC_TYPE)
    deployed.template.has_output("AlarmTopicArn", {"Value": ref(topic_id)})
