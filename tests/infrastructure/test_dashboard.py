"""The operators' dashboard: one per environment, showing exactly the metrics ``lambda_src.platform.metrics`` names,
each
with exactly the dimension set the code publishes it with (so no widget can show a metric nobody emits), and
every function's errors, duration and throttles."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from lambda_src.contract import telemetry, wire
from lambda_src.contract.errors import ErrorCode
from tests.infrastructure.template_support import Synthesized, ref, render

DASHBOARD_TYPE = "AWS::CloudWatch::Dashboard"
SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"
ENVIRONMENT_ENV = "ENVIRONMENT_NAME"
LAMBDA_NAMESPACE = "AWS/Lambda"
DEFAULT_PERIOD = 300  # a graph's metrics are 5-minute periods unless they say otherwise


def _widgets(deployed: Synthesized) -> list[dict[str, Any]]:
    """The dashboard's widgets, with every function's Ref rendered as ``function:<logical id>``."""
    _, dashboard = deployed.only(DASHBOARD_TYPE)
    names = {**deployed.sample_names, **{logical_id: f"function:{logical_id}" for logical_id in deployed.functions}}
    return json.loads(render(dashboard["Properties"]["DashboardBody"], names))["widgets"]


def _metric_lines(deployed: Synthesized) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """Every line the dashboard draws: (namespace, metric, dimensions, options)."""
    lines = []
    for widget in _widgets(deployed):
        for entry in widget["properties"]["metrics"]:
            *fields, options = entry if isinstance(entry[-1], dict) else [*entry, {}]
            namespace, name, *pairs = fields
            assert "." not in (namespace, name), entry  # (every line spelled out in full)
            lines.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)), options))
    return lines


def _service_lines(deployed: Synthesized) -> dict[str, list[tuple[dict[str, str], dict[str, Any]]]]:
    found: dict[str, list[tuple[dict[str, str], dict[str, Any]]]] = defaultdict(list)
    for namespace, name, dimensions, options in _metric_lines(deployed):
        if namespace == telemetry.NAMESPACE:
            found[name].append((dimensions, options))
    return found


def _only_value(deployed: Synthesized, variable: str) -> str:
    values = {f["Properties"]["Environment"]["Variables"][variable] for f in deployed.functions.values()}
    assert len(values) == 1, (variable, values)
    return values.pop()


def test_each_environment_has_one_dashboard_named_like_its_stack(deployed_any: Synthesized) -> None:
    logical_id, dashboard = deployed_any.only(DASHBOARD_TYPE)
    assert dashboard["Properties"]["DashboardName"] == f"SessionService-{deployed_any.name}"
    assert deployed_any.json["Outputs"]["DashboardName"]["Value"] == ref(logical_id)


def test_the_dashboard_names_exactly_the_metrics_modules_metrics_and_dimension_sets(deployed_any: Synthesized) -> None:
    # Given every line the dashboard draws from the service's namespace, and what the functions publish with
    lines = _service_lines(deployed_any)
    service = _only_value(deployed_any, SERVICE_ENV)
    environment = _only_value(deployed_any, ENVIRONMENT_ENV)
    assert environment == deployed_any.name

    # Then it shows every metric of lambda_src.platform.metrics, and nothing else of that namespace
    assert set(lines) == set(telemetry.EXTRA_DIMENSION)
    for name, drawn in lines.items():
        for dimensions, _options in drawn:
            # Each with exactly the dimension set the code publishes it with, and the functions' own values
            assert sorted(dimensions) == sorted(telemetry.dimension_names(name)), (name, dimensions)
            assert (dimensions[telemetry.SERVICE_DIMENSION], dimensions[telemetry.ENVIRONMENT_DIMENSION]) == (
                service,
                environment,
            )
    # And a metric with an extra dimension is drawn once for each of that dimension's values
    reasons = {d[telemetry.REASON_DIMENSION] for d, _ in lines[telemetry.SESSIONS_ENDED]}
    assert reasons == {wire.ENDED_BY_SPEAKER, wire.SPEAKER_TIMEOUT, wire.EXPIRED}
    assert len(lines[telemetry.SESSIONS_ENDED]) == len(reasons)
    codes = [d[telemetry.ERROR_CODE_DIMENSION] for d, _ in lines[telemetry.REJECTIONS]]
    assert sorted(codes) == sorted(code.name for code in ErrorCode)


def test_counts_are_summed_latencies_are_percentiles_and_gauges_are_levels(deployed: Synthesized) -> None:
    lines = _service_lines(deployed)
    for name in telemetry.COUNTS:
        # Counts: summed per 5 minutes
        assert {(o["stat"], o.get("period", DEFAULT_PERIOD)) for _, o in lines[name]} == {("Sum", 300)}, name
    for name in telemetry.LATENCIES:
        # Latencies: p50, p95 and p99 per 5 minutes
        assert sorted(o["stat"] for _, o in lines[name]) == ["p50", "p95", "p99"], name
        assert {o.get("period", DEFAULT_PERIOD) for _, o in lines[name]} == {300}
    for name in telemetry.GAUGES:
        # Gauges: the level each minute (they are published once a minute), never a sum
        assert [(o["stat"], o.get("period", DEFAULT_PERIOD)) for _, o in lines[name]] == [("Maximum", 60)], name


def test_the_dashboard_shows_every_functions_errors_duration_and_throttles(deployed: Synthesized) -> None:
    # Given the dashboard's lines on Lambda's metrics
    by_metric: dict[str, dict[str, str]] = defaultdict(dict)
    for namespace, name, dimensions, options in _metric_lines(deployed):
        if namespace == LAMBDA_NAMESPACE:
            assert list(dimensions) == ["FunctionName"], dimensions
            assert dimensions["FunctionName"] not in by_metric[name], (name, dimensions)
            by_metric[name][dimensions["FunctionName"]] = options["stat"]

    # Then each of errors, duration and throttles has one line per function of the stack
    every_function = {f"function:{logical_id}" for logical_id in deployed.functions}
    assert set(by_metric) == {"Errors", "Duration", "Throttles"}
    for name, stats in by_metric.items():
        assert set(stats) == every_function, name
    # (errors and throttles summed, duration at p99 like its alarm)
    assert set(by_metric["Errors"].values()) == set(by_metric["Throttles"].values()) == {"Sum"}
    assert set(by_metric["Duration"].values()) == {"p99"}
