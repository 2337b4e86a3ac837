"""The local run in its own process for ``bench.load`` (so the load's client and the gateway do not share a
GIL): ``make local``'s LocalRun, with the bench's own cloud assembly directory and CDK context, and one
JSON line on stdout when ready (URL, a speaker token, DynamoDB Local's and the S3-API server's endpoints).
SIGTERM stops it all.

    python -m bench.load_server --port P --cdk-out DIR --context '{"maxListenersPerSession": "500"}' \
        [--function-env '{"TRANSCRIPTION_RECOGNIZER": "scripted"}']
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from local_run.run import LocalRun


class BenchRun(LocalRun):
    def _write_issuer_file(self) -> None:
        """Leave ``make token``'s issuer file to a developer's own ``make local`` (the bench mints its token here)."""


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cdk-out", type=Path, required=True)
    parser.add_argument("--context", default="{}", help="CDK context as JSON")
    parser.add_argument("--function-env", default="{}", help="variables for every function over the stand-ins, JSON")
    args = parser.parse_args()
    run = BenchRun(
        port=args.port,
        http_port=args.port + 1,
        context=json.loads(args.context),
        cdk_out=args.cdk_out,
        function_env=json.loads(args.function_env),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run.start()
    try:
        print(
            json.dumps(
                {
                    "ready": True,
                    "url": run.url,
                    "token": run.mint_token(user_id="bench-speaker"),
                    "dynamodb": run.database.endpoint,
                    # the S3-API server's, when the template has buckets (section 9 counts the spoken segments)
                    "s3": run.storage.endpoint if run.assembly is not None and run.assembly.buckets else None,
                }
            ),
            flush=True,
        )
        await stop.wait()
    finally:
        await run.stop()


if __name__ == "__main__":
    asyncio.run(main())
