"""Apertium's translation server (APY, Debian's ``apertium-apy``) on loopback: the local run's translator, started and
stopped with it like DynamoDB Local, on a free port; the functions get its URL
(``lambda_src.adapters.translation.apertium.ENV_URL``).

One server for the whole run, not a process per caption: APY keeps each language pair's pipeline running between
requests, so a caption costs a request, not the engine's start-up (docs/decisions/0038-local-translation-apertium.md).
APY cannot be told an address to listen on; it is started through ``loopback_apy.py``, which binds it to
127.0.0.1, by the Python Debian's ``apertium-apy`` command runs on (where APY and Tornado are installed). The pairs
it serves are the packages installed (``make install``'s ``.apertium`` target) and are read back from it
(``GET /listPairs``) once it answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from lambda_src.adapters.translation import apertium
from local_run import processes
from local_run.dynamodb_local import free_port

LAUNCHER = Path(__file__).resolve().parent / "loopback_apy.py"
LISTEN_HOST = "127.0.0.1"
COMMAND = "apertium-apy"
# Where Debian's pair packages install their modes (one ``.mode`` file per translation direction).
MODES_DIR = Path("/usr/share/apertium/modes")
NOT_INSTALLED = (
    "Apertium's translation server is not installed (apt packages apertium, apertium-apy and the language pairs): "
    "`make local` and `make test` install them"
)


def interpreter(command: str | None = None) -> str:
    """The Python the ``apertium-apy`` command runs on (its ``#!`` line), which has APY and Tornado installed."""
    path = command or shutil.which(COMMAND)
    if path is None:
        raise RuntimeError(NOT_INSTALLED)
    first_line = Path(path).read_bytes().split(b"\n", 1)[0].decode(errors="replace")
    if not first_line.startswith("#!"):
        raise RuntimeError(f"{path} is not the script Debian's apertium-apy package installs (no #! line)")
    return first_line[2:].strip().split()[0]


def pairs_note(pairs: frozenset[tuple[str, str]]) -> str:
    """What ``make local`` says about its translator: the pairs Apertium translates, and that every other pair is
    the marked stand-in."""
    real = ", ".join(f"{source}→{target}" for source, target in sorted(pairs)) or "none (no pair package installed)"
    return (
        f"translation: Apertium (offline, rule-based) for {real}; every other pair is a stand-in for Amazon "
        "Translate that marks the source text with the target language ('[de] Good morning')"
    )


class ApertiumServer:
    """One APY process on loopback. ``start()`` returns once it lists its pairs; ``stop()`` ends it and its
    pipelines."""

    def __init__(self, port: int | None = None, modes_dir: Path = MODES_DIR) -> None:
        self.port = port or free_port()
        self.modes_dir = modes_dir
        self.url = f"http://{LISTEN_HOST}:{self.port}"
        self.pairs: frozenset[tuple[str, str]] = frozenset()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - APY logs every request to it for its whole life

    def start(self, timeout: float = 30.0) -> ApertiumServer:
        python = interpreter()
        if not self.modes_dir.is_dir():
            raise RuntimeError(f"{NOT_INSTALLED} ({self.modes_dir} is missing)")
        self._process = subprocess.Popen(
            # -I: isolated, without the launcher's folder on sys.path (local_run/token.py is not the stdlib's token)
            [python, "-I", str(LAUNCHER), "--port", str(self.port), str(self.modes_dir)],
            env={**os.environ, "LC_ALL": "C.UTF-8"},  # APY refuses to start in a locale that is not UTF-8
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,  # a file, not a pipe: a pipe nobody reads would block APY once full
            start_new_session=True,  # its own process group (with its pipelines): Ctrl-C does not orphan them
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._log.seek(0)
                raise RuntimeError(f"Apertium's server exited: {self._log.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/listPairs", timeout=2) as response:  # noqa: S310 - loopback
                    listed = response.read()
            except OSError:
                time.sleep(0.1)
                continue
            try:
                self.pairs = apertium.language_pairs(json.loads(listed))
            except ValueError as error:
                self.stop()
                raise RuntimeError(f"Apertium's server listed its pairs as {listed[:200]!r}: {error}") from error
            return self
        self.stop()
        raise RuntimeError("Apertium's server did not start in time")

    def stop(self) -> None:
        """End the server and the pipelines it started (its process group, which it leads)."""
        process, self._process = self._process, None
        processes.end(process, group=True)

    @property
    def note(self) -> str:
        """:func:`pairs_note` of the running server's pairs."""
        return pairs_note(self.pairs)

    def __enter__(self) -> ApertiumServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
