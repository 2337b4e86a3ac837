"""One function's execution environment: a separate process with the function's own environment,
importing its handler from its code asset once (a cold start) and serving invocations over stdin/stdout.

Protocol: one JSON object per line each way: ``{"event": ..., "requestId": ...}`` in,
``{"result": ...}`` or ``{"error": {"type": ..., "message": ...}}`` out.

``LOCAL_WORKER_PRELOAD`` (:data:`ENV_PRELOAD`, comma-separated module names, unset in ``make local``): modules
imported after the code asset is on the path and before the handler, for a measurement to instrument the function's
own code (``make bench``'s ``bench.synthesis_log`` times each synthesis the consumer makes).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

ENV_PRELOAD = "LOCAL_WORKER_PRELOAD"


class LambdaContext:
    """The attributes of Lambda's context object that handlers use."""

    def __init__(self, request_id: str, deadline: float) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = os.environ.get("LOCAL_FUNCTION_ARN", "")
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> None:
    # The gateway decides when workers stop; a terminal's Ctrl-C reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    handler_path, code_dir = sys.argv[1], sys.argv[2]
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # handler logs (Powertools writes to stdout) go to the run's log, not the protocol
    sys.path.insert(0, code_dir)
    for preloaded in filter(None, os.environ.get(ENV_PRELOAD, "").split(",")):
        importlib.import_module(preloaded.strip())
    module_name, _, function_name = handler_path.rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    timeout = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"))
    protocol.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(request.get("requestId", ""), time.monotonic() + timeout)
        try:
            reply: dict[str, Any] = {"result": handler(request["event"], context)}
        except Exception as error:  # reported to the gateway like Lambda's function error
            traceback.print_exc()
            reply = {"error": {"type": type(error).__name__, "message": str(error)}}
        protocol.write(json.dumps(reply, default=str) + "\n")


if __name__ == "__main__":
    main()
