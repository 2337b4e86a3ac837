"""What the benchmark sections share: table rows, percentiles, the machine's description, one DynamoDB Local
for the in-process sections, tables created from ``lambda_src.contract.schema``, and process-tree memory from /proc."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Every CDK / jsii child process of the bench runs with these (as the Makefile exports them).
CDK_ENV = {
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}

Row = dict[str, Any]


def row(
    section: str,
    figure: str,
    value: float | int | None,
    unit: str,
    *,
    floor: float | int | None = None,
    floor_is: str = "",
    target: str = "",
    met: bool | None = None,
    ratio: float | None = None,
    note: str = "",
    **details: Any,
) -> Row:
    """One line of the table: a figure, its floor measured in the same run, their ratio and the target."""
    if ratio is None and isinstance(value, (int, float)) and isinstance(floor, (int, float)) and floor > 0:
        ratio = value / floor
    return {
        "section": section,
        "figure": figure,
        "value": value,
        "unit": unit,
        "floor": floor,
        "floor_is": floor_is,
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "met": met,
        "note": note,
        **details,
    }


def percentile(samples: list[float], p: int) -> float:
    """The p-th percentile (inclusive method, as bench.gateway_overhead uses)."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


# -- the machine ---------------------------------------------------------------------------------------


def _first_line(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and the toolchain the figures were measured with."""
    cpu_model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": cpu_model,
        "architecture": platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": memory_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "node": _first_line(["node", "--version"]),
        "java": _first_line(["java", "-version"]),
        "loadavg_at_start": loadavg(),
    }


# -- shared state of one run ---------------------------------------------------------------------------


@dataclass
class Context:
    """One bench run: its scratch directory, one DynamoDB Local started on first use, and what one section
    leaves for a later one (the synthesized cloud assembly; the local run's memory during the load)."""

    workdir: Path
    cdk_out: Path | None = None
    local_run_memory: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)  # correctness checks that failed
    _database: Any = None

    def database(self) -> Any:
        if self._database is None:
            from local_run.dynamodb_local import DynamoDBLocal

            self._database = DynamoDBLocal().start()
        return self._database

    def close(self) -> None:
        if self._database is not None:
            self._database.stop()
            self._database = None


@contextlib.contextmanager
def bench_context(keep: bool = False) -> Iterator[Context]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    context = Context(workdir)
    try:
        yield context
    finally:
        context.close()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def create_tables(client: Any, prefix: str) -> dict[str, str]:
    """The service's tables (every definition in ``lambda_src.contract.schema``) under ``prefix``; the handler
    environment naming them."""
    from lambda_src.contract import function_settings, schema

    names = {definition.construct_id: f"{prefix}-{definition.construct_id.lower()}" for definition in schema.TABLES}
    for definition in schema.TABLES:
        name = names[definition.construct_id]
        client.create_table(**definition.create_table_request(name))
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": definition.ttl_attribute}
        )
    return {
        function_settings.ENV_SESSIONS_TABLE: names[schema.SESSIONS.construct_id],
        function_settings.ENV_CONNECTIONS_TABLE: names[schema.CONNECTIONS.construct_id],
        function_settings.ENV_RATE_LIMITS_TABLE: names[schema.RATE_LIMITS.construct_id],
        function_settings.ENV_AUDIO_CHUNKS_TABLE: names[schema.AUDIO_CHUNKS.construct_id],
        function_settings.ENV_TRANSCRIPTS_TABLE: names[schema.TRANSCRIPTS.construct_id],
    }


@contextlib.contextmanager
def patched_environ(updates: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``updates`` for the duration (the in-process handlers read their settings from it)."""
    saved = dict(os.environ)
    os.environ.update(updates)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """File descriptor 1 to /dev/null: the handlers' log and metric lines (Powertools writes JSON to stdout)
    are still formatted and written, but do not flood the terminal."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# -- memory of a process tree, from /proc --------------------------------------------------------------

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (by parent pid in /proc/PID/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: the fields after the last ")" are safe
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def rss_bytes(pids: list[int]) -> int:
    """Sum of the resident set sizes of ``pids`` (processes that exited meanwhile count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_SIZE
    return total


def directory_bytes(path: Path) -> int:
    """Total size of the regular files under ``path`` (what an unzipped Lambda asset occupies)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def mib(n_bytes: float) -> float:
    return n_bytes / (1024 * 1024)
