"""The local run's S3-API server: moto's standalone server (``python -m moto.server``, from the project's own
packages) on loopback, standing in for Amazon S3. Started and stopped with the run like DynamoDB Local, on a free
port; the template's buckets are created in it with their CORS rules, and the functions reach it through botocore's
own ``AWS_ENDPOINT_URL_S3`` (:func:`endpoint_environment`), so the audio store's code and its presigned URLs are the
cloud's, pointed at ``http://127.0.0.1:<port>``.

moto's server answers every request with a permissive CORS header of its own unless ``MOTO_DISABLE_GLOBAL_CORS`` is
set; it is set here, so a browser sees the bucket's own CORS rules, as it would on S3. Nothing is persisted: objects
live as long as the run (the cloud deletes them after a day).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from typing import Any

import boto3
from botocore.config import Config

from local_run import processes
from local_run.assembly import BucketDefinition
from local_run.dynamodb_local import LOCAL_CREDENTIALS, LOCAL_REGION, free_port

LISTEN_HOST = "127.0.0.1"
NOTE = (
    "object storage: moto's S3-API server on loopback ({endpoint}), standing in for Amazon S3 (the spoken "
    "translations' bucket, with its CORS rules; objects kept until the run stops)"
)


class S3Server:
    """One moto server process on loopback. ``start()`` returns once it answers; ``stop()`` ends it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://{LISTEN_HOST}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the server logs every request to it for its whole life

    def start(self, timeout: float = 30.0) -> S3Server:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LISTEN_HOST, "-p", str(self.port)],
            env={**os.environ, "MOTO_DISABLE_GLOBAL_CORS": "true"},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,  # a file, not a pipe: a pipe nobody reads would block the server once full
            start_new_session=True,  # its own process group: Ctrl-C in a terminal does not orphan it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._log.seek(0)
                raise RuntimeError(f"the S3-API server exited: {self._log.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):  # noqa: S310 - loopback
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the S3-API server did not start in time")

    def stop(self) -> None:
        process, self._process = self._process, None
        processes.end(process)

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=LOCAL_REGION,
            config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=10),
            aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
        )

    def create_buckets(self, buckets: Iterable[BucketDefinition], extra_origins: Iterable[str] = ()) -> None:
        """Each bucket, with its CORS rules; ``extra_origins`` (the local console's) may GET and HEAD from every
        bucket too."""
        client = self.client()
        origins = sorted(extra_origins)
        for bucket in buckets:
            client.create_bucket(Bucket=bucket.name)
            rules = bucket.cors_rules
            if origins:
                rules = [*rules, {"AllowedMethods": ["GET", "HEAD"], "AllowedOrigins": origins}]
            if rules:
                client.put_bucket_cors(Bucket=bucket.name, CORSConfiguration={"CORSRules": rules})

    @property
    def note(self) -> str:
        return NOTE.format(endpoint=self.endpoint)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def endpoint_environment(endpoint: str) -> dict[str, str]:
    """What a function needs so that its unchanged botocore S3 client talks to the local server."""
    return {"AWS_ENDPOINT_URL_S3": endpoint}
