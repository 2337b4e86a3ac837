"""How much latency the local gateway adds to a message, over calling the same handler directly.

One process, one run: start the local run (DynamoDB Local + gateway), time ``heartbeat`` round trips
over one real WebSocket connection, then time the same handler imported and called in this process
with an API-Gateway-shaped MESSAGE event. The difference of the percentiles is the gateway's own cost
(routing, JSON to and from the worker process, the pipe hop, WebSocket framing on loopback).
Target: at most 1 ms added at p50.

    .venv/bin/python -m bench.gateway_overhead [--messages 2000] [--warmup 100] [--output FILE]

The direct calls run while the event loop is blocked, so the gateway's background work (stream
pollers) cannot slow them down: the baseline is the quietest one, and the added figure errs high.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from local_run.assembly import LOCAL_API_ID, FunctionDefinition
from local_run.dynamodb_local import endpoint_environment
from local_run.run import LocalRun

ROUTE_KEY = "heartbeat"
FRAME = json.dumps({"action": ROUTE_KEY})
EXPECTED_REPLY_TYPE = "heartbeatAck"
TARGET_P50_MS = 1.0
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results-gateway.json"

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Percentiles:
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Percentiles:
        cuts = statistics.quantiles(samples_ns, n=100, method="inclusive")
        return cls(p50_ms=round(cuts[49] / 1e6, 4), p99_ms=round(cuts[98] / 1e6, 4))

    def minus(self, other: Percentiles) -> Percentiles:
        return Percentiles(round(self.p50_ms - other.p50_ms, 4), round(self.p99_ms - other.p99_ms, 4))


class BenchContext:
    """The part of Lambda's context object the handlers read."""

    def __init__(self, function_name: str) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = function_name

    def get_remaining_time_in_millis(self) -> int:
        return 3000


def check_reply(body: Any) -> None:
    """Fail loudly rather than time the wrong thing (an error reply, a welcome message, a stale ack)."""
    message = json.loads(body) if isinstance(body, (str, bytes)) else body
    if not isinstance(message, dict) or message.get("type") != EXPECTED_REPLY_TYPE:
        raise RuntimeError(f"expected a {EXPECTED_REPLY_TYPE} reply, got {body!r}")


async def time_through_gateway(url: str, messages: int, warmup: int) -> list[int]:
    """Round trips of sequential heartbeat frames over one plain connection (no query action)."""
    samples: list[int] = []
    async with connect(url, open_timeout=30, ping_interval=None) as websocket:
        for index in range(warmup + messages):
            start = time.perf_counter_ns()
            await websocket.send(FRAME)
            reply = await websocket.recv()
            elapsed = time.perf_counter_ns() - start
            check_reply(reply)
            if index >= warmup:
                samples.append(elapsed)
    return samples


def load_handler(run: LocalRun) -> tuple[FunctionDefinition, Handler]:
    """Import the route's handler from its code asset with the environment its worker process gets."""
    assert run.assembly is not None
    function = run.assembly.functions[run.assembly.routes[ROUTE_KEY].function]
    os.environ.update(
        {
            **endpoint_environment(run.database.endpoint),
            **function.environment,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
        }
    )
    sys.path.insert(0, str(function.code_dir))
    module_name, _, attribute = function.handler.rpartition(".")
    module = importlib.import_module(module_name)
    if not Path(module.__file__ or "").resolve().is_relative_to(function.code_dir.resolve()):
        raise RuntimeError(f"{module_name} was imported from {module.__file__}, not from {function.code_dir}")
    return function, getattr(module, attribute)


def message_event(stage: str, connection_id: str, connected_at_ms: int, sequence: int) -> dict[str, Any]:
    """A MESSAGE event in API Gateway's shape, as the gateway builds one for this frame."""
    now_ms = int(time.time() * 1000)
    return {
        "requestContext": {
            "routeKey": ROUTE_KEY,
            "eventType": "MESSAGE",
            "messageDirection": "IN",
            "messageId": str(uuid.uuid4()),
            "stage": stage,
            "connectedAt": connected_at_ms,
            "requestTimeEpoch": now_ms,
            "requestId": f"bench-{sequence}",
            "extendedRequestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
            "domainName": "127.0.0.1",
            "connectionId": connection_id,
            "apiId": LOCAL_API_ID,
        },
        "body": FRAME,
        "isBase64Encoded": False,
    }


def time_direct(run: LocalRun, messages: int, warmup: int) -> list[int]:
    """The same handler called in this process; events and contexts are built outside the timing."""
    assert run.assembly is not None
    function, handler = load_handler(run)
    connection_id, connected_at_ms = "benchDirectConn=", int(time.time() * 1000)
    samples: list[int] = []
    for index in range(warmup + messages):
        event = message_event(run.assembly.stage, connection_id, connected_at_ms, index)
        context = BenchContext(function.name)
        start = time.perf_counter_ns()
        result = handler(event, context)
        elapsed = time.perf_counter_ns() - start
        check_reply(result.get("body") if isinstance(result, dict) else result)
        if index >= warmup:
            samples.append(elapsed)
    return samples


def report(direct: Percentiles, gateway: Percentiles, messages: int, warmup: int) -> dict[str, Any]:
    added = gateway.minus(direct)
    return {
        "route": ROUTE_KEY,
        "messages": messages,
        "warmup": warmup,
        "direct": asdict(direct),
        "throughGateway": asdict(gateway),
        "added": asdict(added),
        "targetP50Ms": TARGET_P50_MS,
        "targetMet": added.p50_ms <= TARGET_P50_MS,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "measuredAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def print_table(results: dict[str, Any]) -> None:
    rows = [("direct", results["direct"]), ("through gateway", results["throughGateway"]), ("added", results["added"])]
    print(f"{ROUTE_KEY}: {results['messages']} messages each ({results['warmup']} warm-up discarded)")
    print(f"{'':<16}{'p50 ms':>10}{'p99 ms':>10}")
    for name, figures in rows:
        print(f"{name:<16}{figures['p50_ms']:>10.3f}{figures['p99_ms']:>10.3f}")
    verdict = "met" if results["targetMet"] else "NOT met"
    print(f"target: added p50 <= {TARGET_P50_MS:.1f} ms -> {verdict}")


async def benchmark(messages: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cdk.out-") as cdk_out:
        run = LocalRun(cdk_out=Path(cdk_out))
        try:
            await run.start()
            gateway = await time_through_gateway(run.url, messages, warmup)
            direct = time_direct(run, messages, warmup)
        finally:
            await run.stop()
    return report(Percentiles.of(direct), Percentiles.of(gateway), messages, warmup)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="timed messages per path (default 2000)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed messages first (default 100)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"JSON results (default {DEFAULT_OUTPUT})")
    args = parser.parse_args()
    if args.messages < 2 or args.warmup < 0:
        parser.error("--messages must be at least 2 and --warmup at least 0")
    return args


def main() -> None:
    args = parse_args()
    results = asyncio.run(benchmark(args.messages, args.warmup))
    print_table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
