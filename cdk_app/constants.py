"""Names and sizes shared by every function, so nothing drifts between them."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_

PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent
LAMBDA_PACKAGE: Final = "lambda_src"
LAMBDA_DEPENDENCIES_DIR: Final = PROJECT_ROOT / "lambda_deps"

RUNTIME: Final = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE: Final = lambda_.Architecture.ARM_64
# The wheel platform of each Lambda architecture (by ``Architecture.name``), as pip's ``--platform`` tag and as
# uv's ``--python-platform`` name. The layer's target is ARCHITECTURE's entry and RUNTIME's Python version
# (``cdk_app.bundling.layer_target``); manylinux2014 is glibc 2.17, which every Python runtime of Lambda has.
WHEEL_PLATFORMS: Final = {
    "arm64": ("manylinux2014_aarch64", "aarch64-manylinux2014"),
    "x86_64": ("manylinux2014_x86_64", "x86_64-manylinux2014"),
}
# The layer's input, edited by hand (the local venv installs it too), and its lock: every package of the
# layer, pinned with the hashes of its files for the layer's target (`make lock` writes it from the input).
LAYER_REQUIREMENTS: Final = LAMBDA_DEPENDENCIES_DIR / "requirements.txt"
LAYER_LOCK: Final = LAMBDA_DEPENDENCIES_DIR / "requirements.lock"
# The local venv's input (tests, the local run, the tools; it takes in the layer's input) and its lock: every package,
# pinned with its files' hashes for every platform, resolved with the layer's lock as a constraint so that the local
# run and the tests run the layer's versions (`make lock` writes it; `make install` installs only from it).
DEV_REQUIREMENTS: Final = PROJECT_ROOT / "requirements-dev.txt"
DEV_LOCK: Final = PROJECT_ROOT / "requirements-dev.lock"
# The oldest Python the project runs on locally (pyproject.toml's requires-python): the venv's lock is resolved for
# it and every later one.
DEV_PYTHON_VERSION: Final = "3.11"
# What the Lambda Python runtime provides, left out of the lock and the layer: botocore and the packages only
# it needs (the X-Ray SDK requires botocore; a copy in the layer would shadow the runtime's, 25 MB unzipped).
RUNTIME_PROVIDED_PACKAGES: Final = ("botocore", "python-dateutil", "six", "urllib3")

MEMORY_MB: Final = 256
# API Gateway waits at most 29 s for an integration; a route never needs more than a few DynamoDB calls.
ROUTE_TIMEOUT: Final = Duration.seconds(10)
WELCOME_TIMEOUT: Final = Duration.seconds(30)
STATUS_TIMEOUT: Final = Duration.seconds(30)
# The transcription consumer runs as long as Lambda allows and hands over to a successor before the end.
TRANSCRIBER_TIMEOUT: Final = Duration.minutes(15)
TRANSCRIBER_RETRY_ATTEMPTS: Final = 0
TRANSCRIBER_MAX_EVENT_AGE: Final = Duration.seconds(60)
# The fan-out per shard (decision record 0040): an invocation posts ~1,000 listeners in well under a second; a failed
# one is not retried (a retry would post the segment again to those the first reached), and one that waited longer
# than the least Lambda accepts is dropped to the failure queue (its worker drops an event older than
# limits.FANOUT_EVENT_MAX_AGE_SECONDS itself).
FANOUT_TIMEOUT: Final = Duration.seconds(30)
FANOUT_RETRY_ATTEMPTS: Final = 0
FANOUT_MAX_EVENT_AGE: Final = Duration.seconds(60)
# A sweep ends each due session and tells its listeners; it must finish well before the next one starts.
SWEEPER_TIMEOUT: Final = Duration.seconds(50)

# Powertools reads these: the service name (the logs' and metrics' ``service``) and the metrics namespace.
ENV_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
ENV_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"

# The welcome function's stream: a failed batch is split in two to isolate a bad record, and retried at most
# WELCOME_RETRY_ATTEMPTS times; a record older than WELCOME_MAX_RECORD_AGE is dropped to the failure queue
# instead. 60 s is the least Lambda accepts, and already too late for a first message: its client has been
# waiting a minute for the reply to its handshake, and a shard delivers in order, so a stale backlog would
# hold back the fresh first messages behind it.
WELCOME_RETRY_ATTEMPTS: Final = 2
WELCOME_MAX_RECORD_AGE: Final = Duration.seconds(60)
# The status function's stream, the same way: a change push over a minute old is superseded by the periodic
# one (every sweep), so a stale record goes to the failure queue rather than hold back fresh ones.
STATUS_RETRY_ATTEMPTS: Final = 2
STATUS_MAX_RECORD_AGE: Final = Duration.seconds(60)
# The sweeper is invoked asynchronously by its schedule: a failed sweep is not retried, and one that waited
# (throttled) longer than SWEEPER_MAX_EVENT_AGE is dropped, since the next minute's sweep redoes its work.
SWEEPER_RETRY_ATTEMPTS: Final = 0
SWEEPER_MAX_EVENT_AGE: Final = Duration.seconds(60)
# How long a failure record waits in its queue for someone to look at it (SQS's longest).
FAILURE_RETENTION: Final = Duration.days(14)
