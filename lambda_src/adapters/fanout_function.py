"""Starting the fan-out function (``FANOUT_FUNCTION``, set by the stack on the transcriber): Lambda's asynchronous
Invoke with one group of a big session's shards and a segment's messages (decision record 0040). Lambda queues an
asynchronous event in milliseconds; the call is not waited out when Lambda is slow (one attempt more, short
timeouts), since a caption that late is of no use."""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

from botocore.config import Config

from lambda_src.contract.function_settings import ENV_FANOUT_FUNCTION
from lambda_src.platform import aws

_CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=1, read_timeout=2)


class NotConfigured(Exception):
    """No fan-out function is named in the environment."""


@cache
def client() -> Any:
    return aws.create_client("lambda", config=_CLIENT_CONFIG)


def encode(event: dict[str, Any]) -> bytes:
    """The event as Lambda receives it (its size is what the 256 KB limit counts)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def invoke(payload: bytes) -> None:
    """Queue one invocation of the fan-out function with ``payload`` (InvocationType Event). Raises on failure
    (the caller logs and counts it)."""
    function = os.environ.get(ENV_FANOUT_FUNCTION)
    if not function:
        raise NotConfigured(f"{ENV_FANOUT_FUNCTION} is not set")
    client().invoke(FunctionName=function, InvocationType="Event", Payload=payload)
