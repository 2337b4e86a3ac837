"""What loading a function costs, as far as it is deterministic: each handler module, imported in a fresh
interpreter as Lambda imports it, leaves the garbage collector running with the loaded objects frozen out of
its reach, and never imports boto3 (the functions use botocore; see ``lambda_src/platform/aws.py``). The time itself
is measured by ``make bench``, section 3."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Every entry point: each module of the handlers package but the shared one.
HANDLERS = sorted(
    path.stem
    for path in (PROJECT_ROOT / "lambda_src" / "handlers").glob("*.py")
    if path.stem not in ("__init__", "common")
)

_PROBE = """
import gc, json, sys
import lambda_src.handlers.{handler}
print(json.dumps({{
    "collector_enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "heavy_modules": sorted(m for m in ("boto3", "s3transfer") if m in sys.modules),
}}))
"""


def _run(code: str) -> str:
    """What ``python -c code`` prints, in a fresh interpreter started from the project's root."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@functools.cache
def _load(handler: str) -> dict:
    """One fresh interpreter per handler, shared by the tests that look at it."""
    return json.loads(_run(_PROBE.format(handler=handler)))


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_loaded_function_collects_garbage_with_its_modules_frozen(handler: str) -> None:
    """Fails for an entry point that does not end with ``finish_loading()``: its collector would stay off."""
    loaded = _load(handler)
    assert loaded["collector_enabled"] is True
    assert loaded["frozen"] > 10_000  # botocore, Powertools and this package, out of the collector's walks


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_function_never_imports_boto3(handler: str) -> None:
    assert _load(handler)["heavy_modules"] == []


def test_every_entry_point_is_checked() -> None:
    assert HANDLERS == [
        "authorizer",
        "connect",
        "disconnect",
        "fanout",
        "http_api",
        "message",
        "status",
        "sweeper",
        "transcriber",
        "welcome",
    ]


def test_the_collector_stays_off_for_a_process_that_had_turned_it_off() -> None:
    assert _run("import gc; gc.disable()\nimport lambda_src.handlers.disconnect\nprint(gc.isenabled())") == "False"
