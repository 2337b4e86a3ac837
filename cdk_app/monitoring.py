"""Alarms on the functions, the stage and the service's own metrics, the topic they notify, and the
operators' dashboard.

Every alarm notifies the topic when it fires and when it recovers; missing data (no traffic) never fires one.
The topic is encrypted with a key of its own (CloudWatch may use it to publish; an AWS managed key would
refuse CloudWatch) and accepts only TLS. An e-mail address from ``-c alarmEmail=...`` is subscribed to it.

The alarms on rejected configurations and on synthesis failures watch metrics the functions emit
(``lambda_src.platform.metrics``) and are built only from that module's constants: namespace, metric name, and the
exact dimension set the code publishes each with (the default dimensions ``service`` and ``environment``, plus its
extra dimension), with the values the stack gives the functions (``POWERTOOLS_SERVICE_NAME``, ``ENVIRONMENT_NAME``).

The dashboard (:class:`ServiceDashboard`) shows every metric of that module through the same function
(:func:`service_metric`), so it too can only show what the code emits: sessions created and ended (by reason),
listeners joined and left, the two latencies at p50/p95/p99, the two gauges, rejections by error code, and each
function's errors, p99 duration and throttles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_app.config import EnvironmentConfig
from lambda_src.contract import telemetry, wire
from lambda_src.contract.errors import ErrorCode

PERIOD: Final = Duration.minutes(5)
# Errors in one period that fire a function's alarm. Every handler turns failures into replies, so a
# Lambda error is a crash or a timeout: one is worth a look. Except the authorizer's: refusing a token is
# a Lambda error by design (it raises "Unauthorized"), so only a burst of them (clients with broken or
# expired tokens, the user pool's keys out of reach) fires its alarm.
ERRORS_THRESHOLD: Final = 1
AUTHORIZER_ERRORS_THRESHOLD: Final = 50
# p99 duration that fires a function's alarm, as a fraction of its timeout (2 of 3 periods).
DURATION_FRACTION_OF_TIMEOUT: Final = 0.8
# API Gateway failures to run an integration at all (a client got an internal error) in one period.
STAGE_EXECUTION_ERRORS_THRESHOLD: Final = 1
# Records in a failure queue that fire its alarm: one is an invocation Lambda gave up on.
FAILURE_QUEUE_THRESHOLD: Final = 1
# A scheduled rule's failures to invoke its target at all (the event never reached the function).
SCHEDULE_FAILED_INVOCATIONS_THRESHOLD: Final = 1
# The rejected-configuration alarm's error code (telemetry.REJECTIONS by errorCode).
REJECTED_CONFIGURATION_CODE: Final = ErrorCode.INVALID_CONFIGURATION.name


# The dashboard: counts and latencies per 5 minutes (the alarms' period), the gauges per minute (published
# once a minute), the latencies' percentiles, and the values of the extra dimensions it draws one line for.
GAUGE_PERIOD: Final = Duration.minutes(1)
LATENCY_PERCENTILES: Final = (50, 95, 99)
END_REASONS: Final = (wire.ENDED_BY_SPEAKER, wire.SPEAKER_TIMEOUT, wire.EXPIRED)
ERROR_CODES: Final = tuple(code.name for code in ErrorCode)
WIDGET_WIDTH: Final = 8  # three widgets a row (a dashboard row is 24 wide)
WIDGET_HEIGHT: Final = 6


def service_metric(
    config: EnvironmentConfig,
    metric_name: str,
    statistic: str,
    period: Duration = PERIOD,
    *,
    extra_value: str | None = None,
    label: str | None = None,
) -> cloudwatch.Metric:
    """A metric of ``lambda_src.platform.metrics`` exactly as the functions of ``config``'s environment publish it:
    its namespace and name, and its dimension set (the defaults, with the values the stack gives the
    functions, plus its extra dimension with ``extra_value`` when it has one)."""
    dimensions = {telemetry.SERVICE_DIMENSION: telemetry.SERVICE_NAME, telemetry.ENVIRONMENT_DIMENSION: config.name}
    extra_dimension = telemetry.EXTRA_DIMENSION[metric_name]
    assert (extra_dimension is None) == (extra_value is None), (metric_name, extra_value)
    if extra_dimension is not None and extra_value is not None:
        dimensions[extra_dimension] = extra_value
    # The exact dimension set the code publishes this metric with, or it would show (or watch) nothing.
    assert sorted(dimensions) == sorted(telemetry.dimension_names(metric_name)), dimensions
    return cloudwatch.Metric(
        namespace=telemetry.NAMESPACE,
        metric_name=metric_name,
        dimensions_map=dimensions,
        period=period,
        statistic=statistic,
        label=label,
    )


class ServiceAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        functions: Mapping[str, lambda_.Function],
        api: apigw.IWebSocketApi,
        stage: apigw.WebSocketStage,
        failure_queues: Mapping[str, sqs.IQueue] | None = None,
        schedules: Mapping[str, events.IRule] | None = None,
    ) -> None:
        """``functions``: every function, by the handler module it runs (``connect``, ``authorizer``...);
        ``failure_queues``: each function's on-failure queue, by module; ``schedules``: each scheduled rule,
        by the module of the function it invokes."""
        super().__init__(scope, construct_id)
        self._config = config
        self.topic = self._build_topic()
        self._actions = cloudwatch_actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []
        for module, function in functions.items():
            self._function_alarms(module, function)
        self._stage_alarm(api, stage)
        self._rejected_configurations_alarm()
        self._synthesis_failures_alarm()
        for module, queue in (failure_queues or {}).items():
            self._failure_queue_alarm(module, queue)
        for module, rule in (schedules or {}).items():
            self._schedule_alarm(module, rule)

    def _build_topic(self) -> sns.Topic:
        config = self._config
        key = kms.Key(
            self,
            "TopicKey",
            description=f"{config.stack_name} alarm topic",
            enable_key_rotation=True,
            removal_policy=config.removal_policy,
        )
        # CloudWatch encrypts what it publishes to the topic with the topic's key.
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(
            self,
            "Topic",
            display_name=f"Session service ({config.name}) alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if config.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        return topic

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{self._config.stack_name}: {description}",
        )
        alarm.add_alarm_action(self._actions)
        alarm.add_ok_action(self._actions)
        self.alarms.append(alarm)
        return alarm

    def _function_alarms(self, module: str, function: lambda_.Function) -> None:
        name = module.capitalize()
        errors = AUTHORIZER_ERRORS_THRESHOLD if module == "authorizer" else ERRORS_THRESHOLD
        self._alarm(
            f"{name}Errors",
            function.metric_errors(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            errors,
            f"the {module} function failed {errors}+ times in 5 minutes (crashes or timeouts"
            + ("; refused tokens count too" if module == "authorizer" else "")
            + ")",
        )
        self._alarm(
            f"{name}Throttles",
            function.metric_throttles(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            1,
            f"the {module} function was throttled (concurrency exhausted): requests were refused",
        )
        timeout = function.timeout
        assert timeout is not None, module
        threshold_ms = timeout.to_milliseconds() * DURATION_FRACTION_OF_TIMEOUT
        self._alarm(
            f"{name}Duration",
            function.metric_duration(period=PERIOD, statistic=cloudwatch.Stats.percentile(99)),
            threshold_ms,
            f"the {module} function's p99 duration reached {DURATION_FRACTION_OF_TIMEOUT:.0%} of its "
            f"{timeout.to_seconds()} s timeout in 2 of 3 periods of 5 minutes",
            evaluation_periods=3,
            datapoints_to_alarm=2,
        )

    def _failure_queue_alarm(self, module: str, queue: sqs.IQueue) -> None:
        """Fires while the queue holds a record (until someone redrives or purges it), not just on arrival."""
        self._alarm(
            f"{module.capitalize()}FailureQueue",
            queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic=cloudwatch.Stats.MAXIMUM),
            FAILURE_QUEUE_THRESHOLD,
            f"the {module} function gave up on an invocation: its record waits in the {module} failure queue",
        )

    def _schedule_alarm(self, module: str, rule: events.IRule) -> None:
        failed = cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="FailedInvocations",
            dimensions_map={"RuleName": rule.rule_name},
            period=PERIOD,
            statistic=cloudwatch.Stats.SUM,
        )
        self._alarm(
            f"{module.capitalize()}ScheduleFailedInvocations",
            failed,
            SCHEDULE_FAILED_INVOCATIONS_THRESHOLD,
            f"EventBridge could not invoke the {module} function on its schedule (permission, or the function gone)",
        )

    def _stage_alarm(self, api: apigw.IWebSocketApi, stage: apigw.WebSocketStage) -> None:
        execution_errors = cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name="ExecutionError",
            dimensions_map={"ApiId": api.api_id, "Stage": stage.stage_name},
            period=PERIOD,
            statistic=cloudwatch.Stats.SUM,
        )
        self._alarm(
            "StageExecutionErrors",
            execution_errors,
            STAGE_EXECUTION_ERRORS_THRESHOLD,
            "API Gateway could not run an integration (Lambda invoke failed, throttled or timed out at 29 s)",
        )

    def _rejected_configurations_alarm(self) -> None:
        threshold = self._config.invalid_configuration_alarm_threshold
        self._alarm(
            "RejectedConfigurations",
            service_metric(
                self._config, telemetry.REJECTIONS, cloudwatch.Stats.SUM, extra_value=REJECTED_CONFIGURATION_CODE
            ),
            threshold,
            f"{threshold}+ requests refused with {REJECTED_CONFIGURATION_CODE} in 5 minutes (partial-result "
            "settings out of range, e.g. a client release sending bad values)",
        )

    def _synthesis_failures_alarm(self) -> None:
        threshold = self._config.synthesis_failures_alarm_threshold
        self._alarm(
            "SynthesisFailures",
            service_metric(self._config, telemetry.SYNTHESIS_FAILURES, cloudwatch.Stats.SUM),
            threshold,
            f"{threshold}+ final segments not spoken to their listeners in 5 minutes (counted once per segment and "
            "language: the synthesis, the audio's upload or its URL failed; captions went out)",
        )


class ServiceDashboard(Construct):
    """The operators' CloudWatch dashboard of one environment (named like its stack)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        functions: Mapping[str, lambda_.Function],
    ) -> None:
        """``functions``: every function, by the handler module it runs."""
        super().__init__(scope, construct_id)
        self._config = config
        sum_ = cloudwatch.Stats.SUM
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=config.stack_name, default_interval=Duration.hours(3)
        )
        self.dashboard.add_widgets(
            self._graph(
                "Sessions created and ended (per 5 minutes)",
                [self._metric(telemetry.SESSIONS_CREATED, sum_)]
                + [self._metric(telemetry.SESSIONS_ENDED, sum_, extra_value=reason) for reason in END_REASONS],
            ),
            self._graph(
                "Listeners joined and left; duplicate audio chunks, translation failures, transcript write failures, "
                "synthesis failures (per 5 minutes)",
                [self._metric(telemetry.LISTENERS_JOINED, sum_), self._metric(telemetry.LISTENERS_LEFT, sum_)],
                right=[
                    self._metric(telemetry.DUPLICATE_AUDIO_CHUNKS, sum_),
                    self._metric(telemetry.TRANSLATION_FAILURES, sum_),
                    self._metric(telemetry.TRANSCRIPT_WRITE_FAILURES, sum_),
                    self._metric(telemetry.SYNTHESIS_FAILURES, sum_),
                ],
            ),
            self._graph(
                "Transcription: segments forwarded, partials dropped, discrepancies, missing chunks (per 5 minutes)",
                [self._metric(telemetry.PARTIALS_FORWARDED, sum_), self._metric(telemetry.FINALS_FORWARDED, sum_)],
                right=[
                    self._metric(telemetry.PARTIALS_DROPPED, sum_),
                    self._metric(telemetry.TRANSCRIPT_DISCREPANCIES, sum_),
                    self._metric(telemetry.MISSING_AUDIO_CHUNKS, sum_),
                ],
            ),
            self._graph(
                "Active sessions and connected listeners (each minute)",
                [self._metric(telemetry.ACTIVE_SESSIONS, cloudwatch.Stats.MAXIMUM, GAUGE_PERIOD)],
                right=[self._metric(telemetry.CONNECTED_LISTENERS, cloudwatch.Stats.MAXIMUM, GAUGE_PERIOD)],
            ),
        )
        self.dashboard.add_widgets(
            *(self._latency_graph(name) for name in telemetry.LATENCIES),
            self._graph(
                "Rejections by error code (per 5 minutes)",
                [self._metric(telemetry.REJECTIONS, sum_, extra_value=code, label=code) for code in ERROR_CODES],
                stacked=True,
            ),
        )
        modules = sorted(functions)
        self.dashboard.add_widgets(
            self._graph(
                "Function errors (per 5 minutes)",
                [functions[m].metric_errors(period=PERIOD, statistic=sum_, label=m) for m in modules],
            ),
            self._graph(
                "Function duration, p99 (ms)",
                [
                    functions[m].metric_duration(period=PERIOD, statistic=cloudwatch.Stats.percentile(99), label=m)
                    for m in modules
                ],
            ),
            self._graph(
                "Function throttles (per 5 minutes)",
                [functions[m].metric_throttles(period=PERIOD, statistic=sum_, label=m) for m in modules],
            ),
        )

    def _metric(
        self,
        metric_name: str,
        statistic: str,
        period: Duration = PERIOD,
        *,
        extra_value: str | None = None,
        label: str | None = None,
    ) -> cloudwatch.Metric:
        return service_metric(
            self._config, metric_name, statistic, period, extra_value=extra_value, label=label or extra_value
        )

    def _latency_graph(self, metric_name: str) -> cloudwatch.GraphWidget:
        return self._graph(
            f"{metric_name} (ms): p50, p95, p99",
            [self._metric(metric_name, cloudwatch.Stats.percentile(p), label=f"p{p}") for p in LATENCY_PERCENTILES],
        )

    @staticmethod
    def _graph(
        title: str,
        left: Sequence[cloudwatch.IMetric],
        *,
        right: Sequence[cloudwatch.IMetric] = (),
        stacked: bool = False,
    ) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title,
            left=list(left),
            right=list(right),
            stacked=stacked,
            width=WIDGET_WIDTH,
            height=WIDGET_HEIGHT,
        )
