"""Cold start: each function's handler module imported, and the first client it needs created, in a fresh
interpreter, beside a bare ``import boto3; boto3.client("dynamodb")`` in a fresh interpreter.

What is timed, for both alike: from just before this process spawns the child (``time.time()`` here) to
the moment the child has imported what it imports and created its client (``time.time()`` there, printed).
So each figure is process spawn + interpreter start (with this venv's site-packages) + imports + client
creation; interpreter shutdown is not counted. The children run the same interpreter with the same
environment and working directory, one at a time, in rounds that rotate their order; the first round is
discarded (it warms the OS file cache); each figure is the median of the other rounds. The ratio is the median
of the per-round ratios (each function against the bare client timed in the same round), which keeps a slow
stretch of the machine from landing on one side of the comparison only.

The first client of each function is the one its first invocation creates: DynamoDB (connect, disconnect,
message, sweeper), API Gateway's management API (welcome), the JWKS client of the token verifier
(authorizer; it makes no request until a token arrives).

Where tracing is on (staging, prod), the functions that call AWS also load the X-Ray SDK and patch botocore
while they load (``lambda_src.platform.tracing``): each of them is timed that way too, in the same rounds, with
``TRACE_AWS_CALLS`` and Lambda's ``LAMBDA_TASK_ROOT`` set (without it Powertools does not patch). Its cost is
the median of the per-round differences to the same function untraced.

    .venv/bin/python -m bench --only cold_start
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time

from bench.common import PROJECT_ROOT, PYTHON, Row, row
from lambda_src.contract import telemetry

SECTION = "3 cold start"
TARGET_RATIO = 1.25

_DYNAMODB = "from lambda_src.adapters.repositories import dynamodb\ndynamodb.client()"
INITS: dict[str, str] = {
    "connect": _DYNAMODB,
    "disconnect": _DYNAMODB,
    "message": _DYNAMODB,
    "welcome": "from lambda_src.adapters import connections_api\nconnections_api.client()",
    "sweeper": _DYNAMODB,
    "authorizer": "from lambda_src.adapters import auth\nauth.verifier_from_environment()",
}
BARE = "import boto3\nboto3.client('dynamodb')"
# The functions the stack tells to trace their AWS calls where tracing is on (the authorizer calls none).
TRACED = ("connect", "disconnect", "message", "welcome", "sweeper")
_END = "import sys, time\nsys.stdout.write(repr(time.time()))\n"


def child_code(function: str | None) -> str:
    if function is None:
        return f"{BARE}\n{_END}"
    return f"import lambda_src.handlers.{function}\n{INITS[function]}\n{_END}"


def child_environment() -> dict[str, str]:
    """What a deployed function's environment holds, with local values (no child makes a network call)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": os.environ.get("HOME", "/root"),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "SESSIONS_TABLE": "sessions",
        "CONNECTIONS_TABLE": "connections",
        "RATE_LIMITS_TABLE": "rate-limits",
        "CALLBACK_URL": "http://127.0.0.1:9/dev",
        "TOKEN_JWKS_URL": "http://127.0.0.1:9/pool/.well-known/jwks.json",
        "TOKEN_ISSUER": "http://127.0.0.1:9/pool",
        "TOKEN_CLIENT_ID": "bench-client",
        "POWERTOOLS_SERVICE_NAME": "session-service",
        "ENVIRONMENT_NAME": "bench",
    }


def traced_environment() -> dict[str, str]:
    """A function's environment where tracing is on, in Lambda (Powertools patches only there)."""
    return {**child_environment(), telemetry.ENV_TRACE_AWS_CALLS: "true", "LAMBDA_TASK_ROOT": str(PROJECT_ROOT)}


def time_child(code: str, env: dict[str, str]) -> float:
    """Seconds from spawning ``python -c code`` to the time.time() the child prints."""
    start = time.time()
    result = subprocess.run(
        [PYTHON, "-c", code], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"cold-start child failed:\n{code}\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1]) - start


def measure(runs: int = 15) -> list[Row]:
    """Median of ``runs`` timed rounds (after one discarded round) per handler (untraced, and traced where it
    would be) and for the bare client."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    environments = {False: child_environment(), True: traced_environment()}
    variants: list[tuple[str | None, bool]] = [
        (None, False),
        *((function, False) for function in INITS),
        *((function, True) for function in TRACED),
    ]
    samples: dict[tuple[str | None, bool], list[float]] = {variant: [] for variant in variants}
    for round_index in range(runs + 1):
        shift = round_index % len(variants)
        for function, traced in variants[shift:] + variants[:shift]:
            elapsed = time_child(child_code(function), environments[traced])
            if round_index > 0:
                samples[function, traced].append(elapsed * 1000)
    floor_samples = samples[None, False]
    bare = statistics.median(floor_samples)
    rows = []
    for function, traced in variants[1:]:
        own = samples[function, traced]
        median = statistics.median(own)
        ratio = statistics.median(mine / floor for mine, floor in zip(own, floor_samples, strict=True))
        note = "ratio: median of per-round ratios to the bare client"
        if traced:
            untraced = samples[function, False]
            added = statistics.median(mine - plain for mine, plain in zip(own, untraced, strict=True))
            share = statistics.median(mine / plain - 1 for mine, plain in zip(own, untraced, strict=True))
            note += (
                f"; tracing adds {added:.1f} ms ({share:.0%}) to the untraced start (median of per-round differences)"
            )
        rows.append(
            row(
                SECTION,
                f"{function}{' traced' if traced else ''}: import + first client",
                round(median, 1),
                "ms",
                floor=round(bare, 1),
                floor_is="bare `import boto3; boto3.client('dynamodb')` in a fresh interpreter (median)",
                ratio=ratio,
                target=f"<= {TARGET_RATIO}x floor",
                met=ratio <= TARGET_RATIO,
                runs=runs,
                samples_ms=[round(s, 1) for s in own],
                note=note,
            )
        )
    rows.append(
        row(
            SECTION,
            "bare boto3 + DynamoDB client",
            round(bare, 1),
            "ms",
            runs=runs,
            samples_ms=[round(s, 1) for s in floor_samples],
            note="the floor of this section, in a fresh interpreter",
        )
    )
    return rows
