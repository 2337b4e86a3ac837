"""Where tracing is on, the functions that call AWS are told to trace botocore's calls
(``lambda_src.platform.tracing``);
the X-Ray SDK that does it is in the layer."""

from __future__ import annotations

from packaging.utils import canonicalize_name

from cdk_app import constants
from lambda_src.contract import telemetry
from tests.infrastructure.template_support import TABLE_MODULES, Synthesized, synthesize
from tests.infrastructure.test_layer import read_lock

TRACED_ENVIRONMENTS = {"staging", "prod"}


def traced_modules(synthesized: Synthesized) -> set[str]:
    """The handler modules whose function's environment asks for botocore's calls to be traced."""
    traced = set()
    for logical_id, function in synthesized.functions.items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        if telemetry.ENV_TRACE_AWS_CALLS in variables:
            assert variables[telemetry.ENV_TRACE_AWS_CALLS] == "true", logical_id
            module = synthesized.function_module(logical_id)
            assert module is not None, logical_id
            traced.add(module)
    return traced


def test_functions_that_call_aws_trace_their_calls_where_tracing_is_on(deployed_any: Synthesized) -> None:
    # Given each environment's stack
    traced = deployed_any.name in TRACED_ENVIRONMENTS
    # Then in staging and prod every function that calls AWS (not the authorizer) traces botocore, in dev none
    assert traced_modules(deployed_any) == (set(TABLE_MODULES) if traced else set())


def test_tracing_override_from_context_traces_aws_calls() -> None:
    # Given dev with -c tracingEnabled=true
    synthesized = synthesize({"env": "dev", "tracingEnabled": "true"})
    # Then the functions that call AWS trace their calls
    assert traced_modules(synthesized) == set(TABLE_MODULES)


def test_layer_holds_the_xray_sdk_but_not_the_runtimes_botocore() -> None:
    # Given the lock the layer is built from
    lock = read_lock(constants.LAYER_LOCK)
    # Then it holds the X-Ray SDK that Powertools Tracer patches botocore with
    assert canonicalize_name("aws-xray-sdk") in lock
    # And nothing the Lambda runtime provides (a second botocore would shadow the runtime's)
    assert not {canonicalize_name(name) for name in constants.RUNTIME_PROVIDED_PACKAGES} & set(lock)
