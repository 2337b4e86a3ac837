"""X-Ray subsegments for botocore's calls, where the stack turns tracing on (staging and prod).

With Lambda's tracing mode Active, X-Ray shows each invocation and its initialization, but not what the
function spends in DynamoDB or the ``@connections`` API. Where the stack sets ``TRACE_AWS_CALLS``, the function
patches botocore through Powertools Tracer while it loads, before any client exists, so every AWS call becomes a
subsegment (service, operation, latency, retries, error). Elsewhere the X-Ray SDK is never imported: its import
and the patch cost about 10 ms of a cold start (``make bench``, section 3; docs/decisions/0029-cold-start.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from lambda_src.contract.telemetry import ENV_TRACE_AWS_CALLS

TRACED_MODULES = ("botocore",)


def instrument_from_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """Patch botocore for X-Ray when ``TRACE_AWS_CALLS`` is "true"; whether it was asked for. Powertools turns the
    patch into a no-op outside Lambda (no ``LAMBDA_TASK_ROOT``), so the local run is never traced."""
    if environ.get(ENV_TRACE_AWS_CALLS, "").lower() != "true":
        return False
    # Imported here: aws_xray_sdk loads only in a traced function.
    from aws_lambda_powertools import Tracer

    Tracer(patch_modules=TRACED_MODULES)
    return True
