"""The local run's stand-ins for Amazon Polly and S3 (decision record 0039): the transcriber's environment speaks
with espeak-ng and stores in moto's S3-API server on loopback, in the template's bucket; what it stores, a browser
page on a listener origin can fetch through the presigned URL (the bucket's CORS rules), and a page elsewhere
cannot read."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from email.message import Message
from urllib.parse import urlsplit

import pytest

from lambda_src.adapters import speech
from lambda_src.contract import function_settings
from local_run.dynamodb_local import PROJECT_ROOT
from local_run.gateway import FunctionRuntime
from tests.integration.conftest import RunningService

pytestmark = pytest.mark.integration

LISTENER_ORIGIN = "http://localhost:5173"  # the listener app's development server (dev's audio origins)
FOREIGN_ORIGIN = "http://listener.example.net"

# What the transcriber's delivery does with a segment's translation, run in the transcriber's own environment.
_SPEAK_AND_STORE = """
import hashlib, json, sys
from lambda_src import runtime
spoken = runtime.synthesizer().synthesize("Buenos días a todos.", "es")
store = runtime.audio_store()
store.put(sys.argv[1], spoken.audio, spoken.content_type)
print(json.dumps({
    "synthesizer": runtime.synthesizer().name,
    "url": store.url(sys.argv[1], 300),
    "sha256": hashlib.sha256(spoken.audio).hexdigest(),
    "duration": spoken.duration_seconds,
}))
"""


def _transcriber(service: RunningService) -> FunctionRuntime:
    assert service.run.gateway is not None
    (runtime,) = [
        runtime
        for runtime in service.run.gateway.runtimes.values()
        if runtime.definition.handler.endswith(".handlers.transcriber.handler")
    ]
    return runtime


def _get(url: str, origin: str) -> tuple[int, bytes, Message]:
    """The status, body and headers (looked up regardless of case) of a GET from a page on ``origin``."""
    request = urllib.request.Request(url, headers={"Origin": origin})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local run, on loopback
        return response.status, response.read(), response.headers


def test_the_transcriber_speaks_and_stores_in_the_local_runs_bucket(service: RunningService) -> None:
    # Given the transcriber's environment in the running local service
    environment = _transcriber(service).env
    bucket = environment[function_settings.ENV_AUDIO_BUCKET]
    storage = service.run.storage

    # Then it speaks with espeak-ng, and its S3 client is pointed at the run's S3-API server on loopback, where the
    # template's bucket exists with the template's CORS rule
    assert environment[speech.ENV_SYNTHESIZER] == speech.ESPEAK
    assert environment["AWS_ENDPOINT_URL_S3"] == storage.endpoint
    assert urlsplit(storage.endpoint).hostname == "127.0.0.1"
    client = storage.client()
    assert bucket in {b["Name"] for b in client.list_buckets()["Buckets"]}
    rules = client.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert any(LISTENER_ORIGIN in rule["AllowedOrigins"] and "GET" in rule["AllowedMethods"] for rule in rules)


def test_a_listener_page_fetches_the_spoken_segment_through_its_presigned_url(service: RunningService) -> None:
    # Given a segment spoken and stored by the runtime's synthesizer and audio store, in the transcriber's environment
    key = "audio/integration-session/es/segment-1.mp3"
    done = subprocess.run(
        [sys.executable, "-c", _SPEAK_AND_STORE, key],
        env={**_transcriber(service).env, "PYTHONPATH": str(PROJECT_ROOT)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    stored = json.loads(done.stdout)
    assert stored["synthesizer"].startswith("espeak-ng")
    assert 0.5 < stored["duration"] < 5
    url = urlsplit(stored["url"])
    assert (url.scheme, url.hostname, url.port) == ("http", "127.0.0.1", service.run.storage.port)

    # When a page on the listener app's origin fetches the URL (as the app does, cross-origin)
    status, body, headers = _get(stored["url"], LISTENER_ORIGIN)

    # Then it gets the MP3 itself, and the answer names its origin, so the browser lets the page read it
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == stored["sha256"]
    assert headers["Content-Type"] == "audio/mpeg"
    assert headers["Access-Control-Allow-Origin"] == LISTENER_ORIGIN

    # And the local console's pages may read it too
    console = f"http://127.0.0.1:{service.run.http_port}"
    assert _get(stored["url"], console)[2].get("Access-Control-Allow-Origin") == console

    # But a page on any other origin is not allowed to read it (no CORS header for it)
    assert "Access-Control-Allow-Origin" not in _get(stored["url"], FOREIGN_ORIGIN)[2]
