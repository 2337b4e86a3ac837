"""Load through the local gateway with a real WebSocket client: N listeners join one session at once, and
with a cap of N, 1.1 N concurrent joins admit exactly N.

The local run (DynamoDB Local + the gateway + its worker processes) runs in its own process
(``bench.load_server``, the LocalRun ``make local`` uses), so the client here and the gateway do not share a
GIL; the two still share this machine's cores, as every process of the local run does. Phases, all
connections staying open until the end (so no phase pays for an earlier one's disconnects):

1. warm-up: 50 concurrent joins of a warm-up session (each function's workers start as the burst needs them);
2. floor: N concurrent plain connections (no action: the authorizer and ``$connect`` with one write);
3. N concurrent joins of session A: joins per second, p50/p99 time from opening the socket to receiving
   ``sessionJoined``; then A's ``listenerCount`` and listener rows, read by its speaker (``getSessionStatus``);
4. 1.1 N concurrent joins of session B (cap N): exactly N admitted, the rest refused with 503.

The local run's memory is sampled from /proc every 0.1 s during all of it (the sum of the RSS of its
process tree: the run's process, its workers and DynamoDB Local's JVM); its idle figure is taken just before
the warm-up. Correctness failures (count or admissions not exactly N) are recorded in the bench context.

    .venv/bin/python -m bench --only load
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bench.common import PROJECT_ROOT, PYTHON, Context, Row, percentile, process_tree, row, rss_bytes
from lambda_src.contract import limits
from local_run.dynamodb_local import free_port

SECTION = "4 load"
WARMUP_JOINS = 50
LANGUAGES = ("es", "fr", "de", "ja")
OPEN_TIMEOUT = 120


class MemorySampler(threading.Thread):
    """The summed RSS of a process tree, every ``interval`` seconds, until stopped."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.samples: list[tuple[float, int, int]] = []  # (time, bytes, processes)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pids = process_tree(self.root)
            self.samples.append((time.monotonic(), rss_bytes(pids), len(pids)))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def since(self, start: float) -> list[int]:
        return [size for at, size, _ in self.samples if at >= start]


class Server:
    """``bench.load_server`` as a child process: started, waited for, and stopped with SIGTERM."""

    def __init__(
        self, workdir: Path, context: dict[str, str], function_env: dict[str, str] | None = None, name: str = "load"
    ) -> None:
        port = free_port()
        while True:  # the @connections API listens on port + 1
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + 1))
                break
            except OSError:
                port = free_port()
        self.port = port
        self.log_path = workdir / f"{name}-server.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "bench.load_server",
                "--port",
                str(port),
                "--cdk-out",
                str(workdir / f"{name}-cdk.out"),
                "--context",
                json.dumps(context),
                "--function-env",
                json.dumps(function_env or {}),
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self._lines.put(line)

    def ready(self, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"the local run did not start; its log:\n{self.tail()}")

    def tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


async def _open(url: str, expect_message: bool) -> tuple[ClientConnection | None, Any, float, float]:
    """(socket, first message or refusal status or error, start, end): end is when the handshake completed
    (``expect_message`` False) or when the first message arrived."""
    start = time.perf_counter()
    try:
        ws = await connect(url, open_timeout=OPEN_TIMEOUT, ping_interval=None, close_timeout=5)
    except InvalidStatus as refused:
        return None, refused.response.status_code, start, time.perf_counter()
    except Exception as error:  # noqa: BLE001 - reported, not raised: one failed client is a figure
        return None, f"{type(error).__name__}: {error}", start, time.perf_counter()
    if not expect_message:
        return ws, None, start, time.perf_counter()
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT))
    except Exception as error:  # noqa: BLE001
        return ws, f"{type(error).__name__}: {error}", start, time.perf_counter()
    return ws, first, start, time.perf_counter()


async def _speaker(url: str, token: str) -> tuple[ClientConnection, str]:
    ws = await connect(
        f"{url}?action=createSession&sourceLanguage=en&token={token}", open_timeout=OPEN_TIMEOUT, ping_interval=None
    )
    created = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT))
    if created.get("type") != "sessionCreated":
        raise RuntimeError(f"expected sessionCreated, got {created}")
    return ws, created["sessionId"]


async def _status(speaker: ClientConnection) -> dict[str, Any]:
    await speaker.send(json.dumps({"action": "getSessionStatus"}))
    while True:
        message = json.loads(await asyncio.wait_for(speaker.recv(), OPEN_TIMEOUT))
        # The reply, not a status pushed to the speaker while its audience was joining.
        if message.get("type") == "error" or message.get("updateReason") == "requested":
            return message


def _joins(url: str, session_id: str, count: int) -> list[Any]:
    return [
        _open(
            f"{url}?action=joinSession&sessionId={session_id}&targetLanguage={LANGUAGES[i % len(LANGUAGES)]}",
            expect_message=True,
        )
        for i in range(count)
    ]


async def scenario(url: str, token: str, listeners: int, cap: int, attempts: int) -> dict[str, Any]:
    sockets: list[ClientConnection] = []

    def keep(results: list[tuple[Any, ...]]) -> None:
        sockets.extend(ws for ws, *_ in results if ws is not None)

    try:
        warm_speaker, warm_session = await _speaker(url, token)
        sockets.append(warm_speaker)
        keep(await asyncio.gather(*_joins(url, warm_session, WARMUP_JOINS)))

        plain = await asyncio.gather(*(_open(url, expect_message=False) for _ in range(listeners)))
        keep(plain)

        speaker_a, session_a = await _speaker(url, token)
        sockets.append(speaker_a)
        joined = await asyncio.gather(*_joins(url, session_a, listeners))
        keep(joined)
        status_a = await _status(speaker_a)

        speaker_b, session_b = await _speaker(url, token)
        sockets.append(speaker_b)
        capped = await asyncio.gather(*_joins(url, session_b, attempts))
        keep(capped)
        status_b = await _status(speaker_b)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"plain": plain, "joined": joined, "status_a": status_a, "capped": capped, "status_b": status_b}


def _rate_and_latency(results: list[tuple[Any, ...]], ok: Any) -> tuple[int, float, float, float]:
    """(successes, per second over the whole burst, p50 ms, p99 ms) of the successful ones."""
    good = [(start, end) for ws, first, start, end in results if ws is not None and ok(first)]
    if not good:
        return 0, 0.0, float("nan"), float("nan")
    span = max(end for _, end in good) - min(start for _ws, _first, start, _end in results)
    times = [(end - start) * 1000 for start, end in good]
    return len(good), len(good) / span, percentile(times, 50), percentile(times, 99)


def _listeners_by_status(status: dict[str, Any]) -> tuple[int | None, int | None]:
    if status.get("type") != "sessionStatus":
        return None, None
    return status.get("listenerCount"), sum((status.get("listenersByLanguage") or {}).values())


def measure(context: Context, listeners: int = 500) -> list[Row]:
    cap, attempts = listeners, listeners + max(1, listeners // 10)
    lrc = {"env": "dev", "maxListenersPerSession": str(cap)}
    # Every client here shares one source address: raise that limit only if the bench's own connections
    # within the minute would exceed the environment's.
    connections = WARMUP_JOINS + 2 * listeners + attempts + 3
    if connections > limits.DEFAULT_CONNECTIONS_PER_SOURCE_PER_MINUTE:
        lrc["connectionsPerSourcePerMinute"] = str(2 * connections)
    if attempts > limits.DEFAULT_JOINS_PER_SESSION_PER_MINUTE:
        lrc["joinsPerSessionPerMinute"] = str(2 * attempts)

    started = time.monotonic()
    server = Server(context.workdir, lrc)
    sampler: MemorySampler | None = None
    try:
        ready = server.ready()
        start_seconds = time.monotonic() - started
        sampler = MemorySampler(server.process.pid)
        sampler.start()
        time.sleep(1.0)
        idle = max(sampler.samples[-5:], key=lambda s: s[1]) if sampler.samples else (0, 0, 0)
        load_started = time.monotonic()
        results = asyncio.run(scenario(ready["url"], ready["token"], listeners, cap, attempts))
        time.sleep(0.5)
    except BaseException:
        print(f"load: the local run's log:\n{server.tail()}", flush=True)
        raise
    finally:
        if sampler is not None:
            sampler.stop()
        server.stop()

    during = sampler.since(load_started) if sampler else []
    peak = max(during, default=0)
    context.local_run_memory = {
        "peak_bytes": peak,
        "idle_bytes": idle[1],
        "processes_peak": max((s[2] for s in sampler.samples), default=0),
        "samples": len(during),
        "connections_open_at_peak": WARMUP_JOINS + 2 * listeners + cap + 3,
    }

    def joined_ok(first: Any) -> bool:
        return isinstance(first, dict) and first.get("type") == "sessionJoined"

    plain_n, plain_rate, plain_p50, plain_p99 = _rate_and_latency(results["plain"], lambda first: first is None)
    join_n, join_rate, join_p50, join_p99 = _rate_and_latency(results["joined"], joined_ok)
    count_a, rows_a = _listeners_by_status(results["status_a"])
    admitted = sum(1 for ws, first, *_ in results["capped"] if ws is not None and joined_ok(first))
    outcomes = Counter(
        "admitted"
        if ws is not None and joined_ok(first)
        else (str(first) if not isinstance(first, dict) else first.get("type"))
        for ws, first, *_ in results["capped"]
    )
    count_b, rows_b = _listeners_by_status(results["status_b"])
    join_failures = Counter(
        str(first) for ws, first, *_ in results["joined"] if not (ws is not None and joined_ok(first))
    )

    count_ok = join_n == listeners and count_a == listeners and rows_a == listeners
    cap_ok = admitted == cap and count_b == cap and rows_b == cap and outcomes.get("503", 0) == attempts - cap
    if not count_ok:
        context.failures.append(
            f"load: {join_n} of {listeners} joined, listenerCount {count_a}, listener rows {rows_a}"
            + (f", failures {dict(join_failures)}" if join_failures else "")
        )
    if not cap_ok:
        context.failures.append(
            f"load: {admitted} of {attempts} admitted under a cap of {cap} (outcomes "
            f"{dict(outcomes)}), listenerCount {count_b}, listener rows {rows_b}"
        )
    plain_floor = "plain connections (no action: authorizer + $connect with one write) opened at the same concurrency"
    return [
        row(
            SECTION,
            "local run start (synth + DynamoDB Local + workers)",
            round(start_seconds, 1),
            "s",
            note="not a target; how long `make local` takes to be ready here",
        ),
        row(
            SECTION,
            f"joins per second ({listeners} concurrent)",
            round(join_rate, 1),
            "joins/s",
            floor=round(plain_rate, 1),
            floor_is=f"{plain_floor}, per second",
            note=f"{join_n} joined",
        ),
        row(
            SECTION,
            "time to sessionJoined p50",
            round(join_p50, 1),
            "ms",
            floor=round(plain_p50, 1),
            floor_is=f"{plain_floor}: time to the completed handshake",
        ),
        row(
            SECTION,
            "time to sessionJoined p99",
            round(join_p99, 1),
            "ms",
            floor=round(plain_p99, 1),
            floor_is=f"{plain_floor}: time to the completed handshake",
        ),
        row(
            SECTION,
            f"final listenerCount ({listeners} joined)",
            count_a,
            "listeners",
            target=f"= {listeners}",
            met=count_ok,
            note=f"listener rows {rows_a}; {plain_n} plain connections opened",
        ),
        row(
            SECTION,
            f"admitted of {attempts} concurrent joins, cap {cap}",
            admitted,
            "joins",
            target=f"= {cap}",
            met=cap_ok,
            note=f"outcomes {dict(outcomes)}; listenerCount {count_b}, rows {rows_b}",
        ),
    ]
