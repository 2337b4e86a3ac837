"""``make local`` (``python -m local_run``) stops everything it started on SIGTERM and on SIGINT:
DynamoDB Local's Java process, Apertium's translation server and every function's worker process, so a stopped run
leaves nothing behind.

The run is started in our own process group (as ``make`` would), so the signal goes to its pid only,
and the clean-up kills processes one by one by pid, never by group.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from local_run.dynamodb_local import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_PREFIX = "Session service ready:"
READY_TIMEOUT_S = 180
EXIT_TIMEOUT_S = 60
GONE_TIMEOUT_S = 10


@dataclass(frozen=True)
class ProcessInfo:
    """One process as /proc shows it; the start time tells a process from a later one reusing its pid."""

    pid: int
    ppid: int
    state: str
    start_time: int
    argv: tuple[str, ...]

    @property
    def is_java(self) -> bool:
        return bool(self.argv) and Path(self.argv[0]).name == "java"

    @property
    def is_python_worker(self) -> bool:
        return "local_run.worker" in self.argv

    @property
    def is_apertium_server(self) -> bool:
        return any(Path(part).name == "loopback_apy.py" for part in self.argv)

    @property
    def is_s3_server(self) -> bool:
        return "moto.server" in self.argv

    def describe(self) -> str:
        return f"pid {self.pid} (state {self.state}, parent {self.ppid}): {' '.join(self.argv)[:200]}"


def read_process(pid: int) -> ProcessInfo | None:
    """None when the process is gone (or vanished while being read)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = tuple(
            part for part in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if part
        )
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or parentheses.
    fields = stat.rpartition(")")[2].split()
    return ProcessInfo(pid=pid, ppid=int(fields[1]), state=fields[0], start_time=int(fields[19]), argv=argv)


def all_processes() -> list[ProcessInfo]:
    found = (read_process(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [info for info in found if info is not None]


def descendants(root: int) -> dict[int, ProcessInfo]:
    """Every process below ``root``, at any depth, by following parent pids."""
    children: dict[int, list[ProcessInfo]] = {}
    for info in all_processes():
        children.setdefault(info.ppid, []).append(info)
    found: dict[int, ProcessInfo] = {}
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child.pid not in found:
                found[child.pid] = child
                pending.append(child.pid)
    return found


def still_running(recorded: ProcessInfo) -> ProcessInfo | None:
    """The same process, if it still runs; a zombie has exited and only waits for its parent to reap it."""
    current = read_process(recorded.pid)
    if current is None or current.start_time != recorded.start_time or current.state == "Z":
        return None
    return current


def wait_until_gone(recorded: Collection[ProcessInfo], timeout: float) -> list[ProcessInfo]:
    """What is still running after ``timeout`` seconds (empty when everything exited)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [current for info in recorded if (current := still_running(info)) is not None]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


class OutputReader:
    """The run's stdout, read on a thread so that waiting for a line can time out."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, prefix: str, timeout: float) -> bool:
        """True once a line starting with ``prefix`` arrives; False at end of output or after ``timeout``."""
        return self._read_until(lambda line: line.startswith(prefix), timeout)

    def read_to_end(self, timeout: float) -> None:
        self._read_until(lambda line: False, timeout)

    def _read_until(self, found: Callable[[str], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                return False
            if line is None:
                return False
            self.lines.append(line)
            if found(line):
                return True
        return False

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def two_free_ports() -> tuple[int, int]:
    first = free_port()
    while (second := free_port()) == first:
        pass
    return first, second


def kill_leftovers(process: subprocess.Popen[str], recorded: dict[int, ProcessInfo]) -> None:
    """Kill, pid by pid, whatever a failed test left: the run's descendants first, then the run itself."""
    known = dict(recorded)
    if process.poll() is None:
        known.update(descendants(process.pid))
    for info in known.values():
        if still_running(info) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_make_local_stops_every_process_it_started(signum: signal.Signals) -> None:
    # Given `make local` running and ready
    port, http_port = two_free_ports()
    process = subprocess.Popen(
        [sys.executable, "-m", "local_run", "--port", str(port), "--http-port", str(http_port)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    recorded: dict[int, ProcessInfo] = {}
    try:
        assert process.stdout is not None
        output = OutputReader(process.stdout)
        ready = output.wait_for(READY_PREFIX, READY_TIMEOUT_S)
        assert ready, f"no {READY_PREFIX!r} line within {READY_TIMEOUT_S} s; output so far:\n{output.text}"
        # And the processes it started: DynamoDB Local on Java, Apertium's server, the S3-API server and the
        # functions' Python workers
        recorded = descendants(process.pid)
        listing = "\n".join(info.describe() for info in recorded.values())
        assert any(info.is_java for info in recorded.values()), f"no Java descendant:\n{listing}"
        assert any(info.is_apertium_server for info in recorded.values()), f"no Apertium descendant:\n{listing}"
        assert any(info.is_s3_server for info in recorded.values()), f"no S3-API server descendant:\n{listing}"
        assert any(info.is_python_worker for info in recorded.values()), f"no worker descendant:\n{listing}"
        # And it names the HTTP API's base URL on a line of its own, on the WebSocket API's port
        assert output.wait_for("HTTP API: ", timeout=10), output.text
        assert output.lines[-1].startswith(f"HTTP API: http://127.0.0.1:{port}/dev "), output.lines[-1]
        # And its stand-in lines say which language pairs Apertium translates, and that the others are marked
        assert output.wait_for("  stand-in: translation:", timeout=10), output.text
        translation_line = output.lines[-1]
        assert "Apertium" in translation_line and "en→es" in translation_line, translation_line
        assert "every other pair is a stand-in" in translation_line, translation_line
        # And the next ones name the speech synthesizer and the S3-API server, with its loopback address
        assert output.wait_for("  stand-in: speech synthesis: espeak-ng", timeout=10), output.text
        assert "standing in for Amazon Polly" in output.lines[-1], output.lines[-1]
        assert output.wait_for("  stand-in: object storage: moto's S3-API server on loopback", timeout=10), output.text
        assert "(http://127.0.0.1:" in output.lines[-1] and "Amazon S3" in output.lines[-1], output.lines[-1]

        # When it gets the signal
        process.send_signal(signum)

        # Then it exits cleanly, saying so
        returncode = process.wait(timeout=EXIT_TIMEOUT_S)
        output.read_to_end(timeout=5)
        assert returncode == 0, f"exit status {returncode}; output:\n{output.text}"
        assert "stopped" in output.lines, f"no 'stopped' line; output:\n{output.text}"
        # And none of the processes it started is still running
        left = wait_until_gone(recorded.values(), GONE_TIMEOUT_S)
        assert not left, "still running after the run stopped:\n" + "\n".join(info.describe() for info in left)
    finally:
        kill_leftovers(process, recorded)
