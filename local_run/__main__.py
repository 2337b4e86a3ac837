"""``make local``: the service on this machine. Ctrl-C or SIGTERM stops everything it started."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import sys
from pathlib import Path

from lambda_src.contract import function_settings
from local_run.gateway_limits import GatewayLimits
from local_run.run import LocalRun

# `make local MAX_LISTENERS_PER_SESSION=50 ...`: each function setting by its variable, passed as its context key.
CONTEXT_FROM_ENVIRONMENT = {setting.env_var: setting.context_key for setting in function_settings.FUNCTION_SETTINGS}


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _scale(text: str) -> float:
    try:
        return function_settings.parse_time_scale(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _rate(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        return GatewayLimits(post_rate=float(text)).post_rate
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a positive number of requests a second, got {text!r}") from error


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make local", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument(
        "--http-port",
        type=int,
        default=int(os.environ.get("HTTP_PORT", "0")) or None,
        help="@connections API and JWKS (default: PORT + 1)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("DATA_DIR") or None,
        help="keep DynamoDB Local's data in this folder (default: in memory)",
    )
    parser.add_argument("--env", default=os.environ.get("ENV", "dev"))
    # A string default goes through ``type`` too, so a bad SCHEDULE_INTERVAL is reported like a bad option.
    parser.add_argument(
        "--schedule-interval",
        type=_seconds,
        default=os.environ.get("SCHEDULE_INTERVAL") or None,
        metavar="SECONDS",
        help="run every scheduled rule every SECONDS (env SCHEDULE_INTERVAL; default: the rules' rates)",
    )
    parser.add_argument(
        "--time-scale",
        type=_scale,
        default=os.environ.get("GATEWAY_TIME_SCALE") or "1",
        metavar="SCALE",
        help="run the connections' clocks SCALE times faster: 60 closes idle connections after 10 s and every "
        "connection at 2 minutes, and asks for the refresh at 100 s (env GATEWAY_TIME_SCALE; default 1)",
    )
    parser.add_argument(
        "--post-rate",
        type=_rate,
        default=os.environ.get("GATEWAY_POST_RATE") or "",
        metavar="N",
        help="answer @connections requests beyond N a second 429, as API Gateway answers those over the account's "
        "rate (env GATEWAY_POST_RATE; default unlimited)",
    )
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    # The functions' log lines (local_run.gateway.FUNCTION_LOG) on stderr, as they come, as they were written.
    logging.basicConfig(stream=sys.stderr, format="%(message)s")
    context: dict[str, object] = {"env": args.env}
    # Every per-environment function setting set in the environment, as its CDK context override.
    for variable, context_key in CONTEXT_FROM_ENVIRONMENT.items():
        if os.environ.get(variable):
            context[context_key] = os.environ[variable]
    run = LocalRun(
        port=args.port,
        http_port=args.http_port or args.port + 1,
        context=context,
        data_dir=args.data_dir,
        schedule_interval=args.schedule_interval,
        time_scale=args.time_scale,
        post_rate=args.post_rate,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run.start(progress=functools.partial(print, flush=True))
    assert run.assembly is not None  # start() loaded it
    try:
        print(
            f"Session service ready: {run.url}  (DynamoDB Local {run.database.endpoint}, "
            f"@connections http://127.0.0.1:{run.http_port}/{run.assembly.stage})",
            flush=True,
        )
        if run.http_api_url is not None:
            print(f"HTTP API: {run.http_api_url}  (POST /sessions, GET /health, ...; docs/http-api.md)", flush=True)
        print(f"  console: {run.console_url}  (speaker and listener pages in a browser)", flush=True)
        for note in run.stand_in_notes():
            print(f"  stand-in: {note}", flush=True)
        for note in run.limits.notes():
            print(f"  limits: {note}", flush=True)
        print(
            f"  try: npx wscat -c '{run.url}?action=joinSession&sessionId=golden-eagle-427&targetLanguage=es'",
            flush=True,
        )
        await stop.wait()
    finally:
        await run.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
