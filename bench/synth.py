"""Synth: ``make synth ENV=prod`` (the CDK CLI, with cdk-nag's checks and the layer bundled by pip) beside
synthesizing a minimal one-table CDK app with the same CLI, the same aws-cdk-lib and the same Python.

Each synth writes to a fresh directory (as a clean checkout does: the layer is bundled every time). Three
synths, in this order: prod (it may fill pip's cache with the layer's wheels, and warms the OS file cache),
the minimal app, prod again (pip's cache warm). Both prod runs are reported beside the minimal app's.
The CLI is the repository's ``node_modules/.bin/cdk`` (what ``npx cdk`` runs), for both apps alike.

    .venv/bin/python -m bench --only synth
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.common import CDK_ENV, PROJECT_ROOT, PYTHON, Context, Row, row

SECTION = "5 synth"
CDK_CLI = PROJECT_ROOT / "node_modules" / ".bin" / "cdk"

MINIMAL_APP = textwrap.dedent("""\
    import aws_cdk as cdk
    from aws_cdk import aws_dynamodb as dynamodb

    app = cdk.App()
    stack = cdk.Stack(app, "Minimal")
    dynamodb.Table(stack, "Table", partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING))
    app.synth()
""")


def _synth(cwd: Path, outdir: Path, *context: str) -> float:
    command = [str(CDK_CLI), "synth", "--no-notices", "--quiet", *context, "-o", str(outdir)]
    start = time.monotonic()
    result = subprocess.run(
        command, cwd=cwd, env={**os.environ, **CDK_ENV}, capture_output=True, text=True, timeout=600
    )
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}:\n{(result.stdout + result.stderr)[-3000:]}")
    return elapsed


def minimal_app(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.py").write_text(MINIMAL_APP)
    (directory / "cdk.json").write_text(json.dumps({"app": f"{PYTHON} app.py"}))
    return directory


def counters(outdir: Path) -> dict[str, Any]:
    """The CDK app's own phase timings (``performance-counters.json``, milliseconds) when it writes them."""
    path = outdir / "performance-counters.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text()).get("counters", {})
    return {
        name: value
        for name, value in data.items()
        if name.startswith("phase:") and "(cnt)" not in name or name == "validateTemplates"
    }


def measure(context: Context) -> list[Row]:
    minimal = minimal_app(context.workdir / "minimal-app")
    prod_first = _synth(PROJECT_ROOT, context.workdir / "synth-prod-1", "-c", "env=prod")
    minimal_time = _synth(minimal, context.workdir / "synth-minimal")
    prod_warm = _synth(PROJECT_ROOT, context.workdir / "synth-prod-2", "-c", "env=prod")
    context.cdk_out = context.workdir / "synth-prod-2"
    floor_is = "synth of a minimal one-table CDK app (same CLI, aws-cdk-lib, Python)"
    phases = counters(context.workdir / "synth-prod-2")
    validation = phases.get("validateTemplates")
    return [
        row(
            SECTION,
            "make synth ENV=prod (pip cache warm)",
            round(prod_warm, 1),
            "s",
            floor=round(minimal_time, 1),
            floor_is=floor_is,
            phases_ms=phases,
            minimal_phases_ms=counters(context.workdir / "synth-minimal"),
            note=f"of which the app's policy validation (cdk-nag on the templates) {validation / 1000:.1f} s"
            if validation
            else "",
        ),
        row(
            SECTION,
            "make synth ENV=prod (first run of this bench)",
            round(prod_first, 1),
            "s",
            floor=round(minimal_time, 1),
            floor_is=floor_is,
            note="may include filling pip's cache with the layer's wheels, and a cold OS file cache",
        ),
    ]
