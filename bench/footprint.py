"""Package and memory: each function's code asset and the layer, from the synthesized prod cloud assembly;
each handler's peak memory in a fresh process running one invocation on DynamoDB Local, beside the Lambda
memory the stack configures; and the local run's memory during the load (sampled by ``bench.load``).

Sizes are unzipped bytes (Lambda's 250 MB limit applies to a function's code and its layers unzipped). A
code asset's floor is the ``lambda_src`` package's own ``.py`` files in the repository: more than that means
the asset carries files nobody imports.

Peak memory is the peak RSS (``VmHWM`` in /proc/self/status, read at the end; ``ru_maxrss`` would include the
spawning parent's high-water mark, which Linux carries into a child across fork and exec) of a process that imports
the handler from the function's code asset (the synthesized directory, as Lambda would) with the function's own
environment from the template (table names and URLs made local, as ``make local`` does), and runs one invocation
against DynamoDB Local, with ``@connections`` and the user pool's JWKS served by a stub on loopback. The floor is
the same child importing only boto3 and making one GetItem. The invocations:

- connect: ``joinSession`` on connect (the first in the process: a GetItem, then the transaction);
- disconnect: a listener's ``$disconnect``;
- message: ``endSession`` of a session with 10 listeners (fan-out: posts and closes from a thread pool);
- welcome: one stream record with a first message (one post);
- sweeper: one scheduled run (a scan of the sweep index);
- authorizer: a speaker token verified (JWKS fetched, RS256 checked).

    .venv/bin/python -m bench --only footprint
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import synth
from bench.common import (
    PROJECT_ROOT,
    PYTHON,
    Context,
    Row,
    directory_bytes,
    mib,
    patched_environ,
    row,
    stdout_to_devnull,
)
from lambda_src import runtime
from lambda_src.contract.schema import CONNECTIONS_PARTITION_KEY, WELCOME_ATTRIBUTE
from lambda_src.handlers import connect
from local_run import assembly as cloud_assembly
from local_run.dev_issuer import DevIssuer
from local_run.dynamodb_local import endpoint_environment, free_port
from tests.support.helpers import connect_event, disconnect_event, message_event

SECTION = "6 footprint"
LAMBDA_UNZIPPED_LIMIT_MB = 250
FAN_OUT_LISTENERS = 10

CHILD = r"""
import json, resource, sys, uuid
spec = json.loads(sys.argv[1])

class Context:
    aws_request_id = str(uuid.uuid4())
    function_name = spec.get("function", "bench")
    memory_limit_in_mb = 256
    invoked_function_arn = ""
    def get_remaining_time_in_millis(self):
        return 10_000

if spec["handler"]:
    import importlib
    module_name, _, attribute = spec["handler"].rpartition(".")
    module = importlib.import_module(module_name)
    result = getattr(module, attribute)(spec["event"], Context())
    source = module.__file__
else:
    import boto3
    result = boto3.client("dynamodb").get_item(**spec["event"]).get("Item") is not None
    source = boto3.__file__
# VmHWM: the peak RSS of this process's own memory since exec. (ru_maxrss would not do: Linux carries the
# spawning parent's high-water mark over into the child at fork and exec.)
with open("/proc/self/status") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
with open(spec["out"], "w") as out:
    json.dump({"peak_kb": peak_kb, "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               "result": result, "source": source}, out, default=str)
"""


class _Stub(BaseHTTPRequestHandler):
    """``@connections`` (every connection is there: 200 / 204) and the user pool's JWKS."""

    jwks: dict[str, Any] = {}

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(200)

    def do_DELETE(self) -> None:  # noqa: N802
        self._answer(204)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.endswith("/.well-known/jwks.json"):
            self._answer(200, json.dumps(self.jwks).encode())
        else:
            self._answer(404, b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def _module(handler: str) -> str:
    """``lambda_src.handlers.connect.handler`` -> ``connect``."""
    return handler.rsplit(".", 2)[-2]


def _layer_dirs(cdk_out: Path) -> dict[str, Path]:
    template_path = cloud_assembly.find_template(cdk_out)
    template = json.loads(template_path.read_text())
    assets = json.loads(
        template_path.with_name(template_path.name.replace(".template.json", ".assets.json")).read_text()
    )
    layers = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::Lambda::LayerVersion":
            key = str(resource["Properties"]["Content"].get("S3Key", "")).removesuffix(".zip")
            if key in assets.get("files", {}):
                layers[logical_id] = cdk_out / assets["files"][key]["source"]["path"]
    return layers


def _source_bytes() -> int:
    return sum(p.stat().st_size for p in (PROJECT_ROOT / "lambda_src").rglob("*.py"))


def _run_child(
    workdir: Path, env: dict[str, str], cwd: Path, handler: str | None, event: Any, function: str
) -> dict[str, Any]:
    out = workdir / f"memory-{uuid.uuid4().hex}.json"
    spec = {"handler": handler, "event": event, "out": str(out), "function": function}
    result = subprocess.run(
        [PYTHON, "-c", CHILD, json.dumps(spec)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"memory child for {function} failed:\n{result.stderr[-3000:]}")
    return json.loads(out.read_text())


def measure(context: Context) -> list[Row]:
    if context.cdk_out is None:
        outdir = context.workdir / "footprint-synth"
        synth._synth(PROJECT_ROOT, outdir, "-c", "env=prod")  # noqa: SLF001 - the same synth as section 5
        context.cdk_out = outdir
    cdk_out = context.cdk_out
    rows: list[Row] = []

    # -- sizes ----------------------------------------------------------------------------------------
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    stub_port = server.server_address[1]
    assembly = cloud_assembly.load(cdk_out, cloud_assembly.LocalAddresses(free_port(), stub_port))
    functions = {_module(f.handler): f for f in assembly.functions.values()}
    layers = _layer_dirs(cdk_out)
    layer_bytes = sum(directory_bytes(path) for path in layers.values())
    source = _source_bytes()
    by_asset: dict[Path, list[str]] = {}
    for name, function in functions.items():
        by_asset.setdefault(function.code_dir, []).append(name)
    for code_dir, names in by_asset.items():
        size = directory_bytes(code_dir)
        total_mb = mib(size + layer_bytes)
        rows.append(
            row(
                SECTION,
                f"code asset of {', '.join(names)}",
                round(mib(size), 3),
                "MB",
                floor=round(mib(source), 3),
                floor_is="lambda_src/**/*.py in the repository",
                target="<= 1.05x floor",
                met=size <= 1.05 * source,
                note=f"{sum(1 for f in code_dir.rglob('*') if f.is_file())} files; with the layer {total_mb:.1f} MB "
                f"of Lambda's {LAMBDA_UNZIPPED_LIMIT_MB} MB unzipped",
            )
        )
    rows.append(
        row(
            SECTION,
            "dependencies layer (unzipped)",
            round(mib(layer_bytes), 2),
            "MB",
            target=f"code + layer <= {LAMBDA_UNZIPPED_LIMIT_MB} MB",
            met=max((directory_bytes(d) for d in by_asset), default=0) + layer_bytes
            <= LAMBDA_UNZIPPED_LIMIT_MB * 2**20,
            note=f"{len(layers)} layer(s)",
        )
    )

    # -- peak memory of one invocation ------------------------------------------------------------------
    database = context.database()
    database.create_tables(list(assembly.tables.values()))
    authorizer_env = functions["authorizer"].environment if "authorizer" in functions else {}
    issuer = None
    if authorizer_env.get("TOKEN_ISSUER"):
        issuer = DevIssuer(
            Path(tempfile.mkdtemp(dir=context.workdir)),
            authorizer_env["TOKEN_ISSUER"],
            authorizer_env.get("TOKEN_CLIENT_ID", ""),
        )
        _Stub.jwks = issuer.jwks()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base_env = {**endpoint_environment(database.endpoint), "PYTHONDONTWRITEBYTECODE": "1"}
        events = _prepare_events(functions, base_env, issuer)
        floor_kb = 0
        if "connect" in functions:
            sessions_table = functions["connect"].environment.get("SESSIONS_TABLE", "")
            floor = _run_child(
                context.workdir,
                {**base_env},
                PROJECT_ROOT,
                None,
                {"TableName": sessions_table, "Key": {"sessionId": {"S": "none"}}},
                "bare",
            )
            floor_kb = floor["peak_kb"]
        for name, function in functions.items():
            if name not in events:
                continue
            env = {
                **base_env,
                **function.environment,
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            }
            measured = _run_child(context.workdir, env, function.code_dir, function.handler, events[name][1], name)
            result = measured["result"]
            if isinstance(result, dict) and result.get("statusCode", 200) != 200:
                raise RuntimeError(f"{name}'s invocation failed: {result}")
            if not str(measured["source"]).startswith(str(function.code_dir)):
                raise RuntimeError(f"{name} imported {measured['source']}, not its code asset {function.code_dir}")
            peak_mb = measured["peak_kb"] / 1024
            rows.append(
                row(
                    SECTION,
                    f"{name}: peak memory, one invocation",
                    round(peak_mb, 1),
                    "MB",
                    floor=round(floor_kb / 1024, 1) if floor_kb else None,
                    floor_is="a fresh process importing boto3 and making one GetItem (peak RSS, VmHWM)",
                    target=f"<= {function.memory_mb} MB (MemorySize)",
                    met=peak_mb <= function.memory_mb,
                    note=events[name][0],
                    memory_size_mb=function.memory_mb,
                )
            )
    finally:
        server.shutdown()
        server.server_close()

    if context.local_run_memory:
        memory = context.local_run_memory
        rows.append(
            row(
                SECTION,
                "local run peak memory during the load",
                round(mib(memory["peak_bytes"]), 1),
                "MB",
                floor=round(mib(memory["idle_bytes"]), 1),
                floor_is="the same process tree idle, just before the load (RSS summed from /proc)",
                note=f"up to {memory['processes_peak']} processes; ~{memory['connections_open_at_peak']} sockets open",
            )
        )
    else:
        rows.append(
            row(
                SECTION,
                "local run peak memory during the load",
                None,
                "MB",
                note="not measured: run the load section in the same bench run",
            )
        )
    return rows


def _prepare_events(
    functions: dict[str, Any], base_env: dict[str, str], issuer: DevIssuer | None
) -> dict[str, tuple[str, Any]]:
    """One realistic event per function, with the state it needs written first through the handlers
    themselves (in this process, on the same tables)."""
    if "connect" not in functions:
        return {}
    env = {**base_env, **functions["connect"].environment}
    events: dict[str, tuple[str, Any]] = {}
    with stdout_to_devnull(), patched_environ(env):
        runtime.reset()
        try:

            def call(handler: Callable[..., Any], event: dict[str, Any]) -> None:
                response = handler(event, None)
                if response.get("statusCode") != 200:
                    raise RuntimeError(f"footprint setup failed: {response}")

            def session(speaker: str) -> str:
                call(
                    connect.handler,
                    connect_event(
                        {"action": "createSession", "sourceLanguage": "en"},
                        connection_id=speaker,
                        user_id=f"user-{speaker}",
                    ),
                )
                return runtime.connections().session_of(speaker) or ""

            def join(session_id: str, listener: str) -> None:
                call(
                    connect.handler,
                    connect_event(
                        {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"},
                        connection_id=listener,
                    ),
                )

            main = session("fp-speaker-1=")
            join(main, "fp-leaving=")
            ending = session("fp-speaker-2=")
            for index in range(FAN_OUT_LISTENERS):
                join(ending, f"fp-audience-{index}=")
        finally:
            runtime.reset()
    events["connect"] = (
        "joinSession on connect, first in the process",
        connect_event(
            {"action": "joinSession", "sessionId": main, "targetLanguage": "fr"},
            connection_id="fp-joining=",
            source_ip="192.0.2.10",
        ),
    )
    events["disconnect"] = ("a listener's $disconnect", disconnect_event("fp-leaving="))
    events["message"] = (
        f"endSession with {FAN_OUT_LISTENERS} listeners",
        message_event(
            {"action": "endSession", "sessionId": ending}, connection_id="fp-speaker-2=", route_key="endSession"
        ),
    )
    welcome = json.dumps(
        {
            "type": "sessionJoined",
            "sessionId": main,
            "sourceLanguage": "en",
            "targetLanguage": "fr",
            "connectionId": "fp-joining=",
            "timestamp": 0,
        }
    )
    events["welcome"] = (
        "one stream record with a first message",
        {
            "Records": [
                {
                    "eventName": "INSERT",
                    "eventSource": "aws:dynamodb",
                    "dynamodb": {
                        "NewImage": {CONNECTIONS_PARTITION_KEY: {"S": "fp-joining="}, WELCOME_ATTRIBUTE: {"S": welcome}}
                    },
                }
            ]
        },
    )
    events["sweeper"] = (
        "one scheduled sweep",
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "detail": {},
        },
    )
    if issuer is not None:
        token = issuer.mint("fp-speaker")
        events["authorizer"] = (
            "a speaker token verified (JWKS fetched)",
            {
                "type": "REQUEST",
                "methodArn": "arn:aws:execute-api:us-east-1:000000000000:localapi/prod/$connect",
                "headers": {"Host": "127.0.0.1"},
                "queryStringParameters": {"token": token},
                "requestContext": {
                    "routeKey": "$connect",
                    "eventType": "CONNECT",
                    "connectionId": "fp-auth=",
                    "requestId": "fp-auth",
                },
            },
        )
    return events
