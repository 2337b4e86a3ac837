"""Ending the servers the local run starts (DynamoDB Local, Apertium's, the S3-API server) the same way."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

STOP_TIMEOUT_SECONDS = 10


def end(process: subprocess.Popen[bytes] | None, *, group: bool = False) -> None:
    """Ask ``process`` to stop (SIGTERM), then kill it if it has not within STOP_TIMEOUT_SECONDS; ``group``: the
    whole process group it leads (a server with pipelines of its own). Nothing when it is gone already."""
    if process is None or process.poll() is not None:
        return
    _signal(process, signal.SIGTERM, group)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL, group)
        process.wait()


def _signal(process: subprocess.Popen[bytes], sent: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, sent)
        else:
            process.send_signal(sent)
