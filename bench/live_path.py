"""Section 9, the live path: from the speaker's chunk to each listener's ``caption``, through the local run.

The local run (``bench.load_server``, as section 4 starts it, in its own process) gives its functions
``TRANSCRIPTION_RECOGNIZER=scripted``: the scripted recognizer
(``lambda_src.adapters.transcription.scripted_recognizer``)
answers each chunk that completes a segment (every ``SEGMENT_CHUNKS``-th) at once with one FINAL naming the chunk's
marker, so what is timed is the service's own part of the path: the speaker's ``sendAudio`` through the gateway
and the message function into the audio buffer, the consumer's hand-off (it reads the buffer every 50 ms), the
partial-result processor, the stand-in translator (~0 cost; the bench asks for it in place of the local run's
Apertium) and the posts through ``@connections`` to the
listeners' sockets. A real recognizer's own time is reported apart (section 8: pocketsphinx's real-time factor).

The speaker streams scripted chunks in real time (one each 100 ms, ``sequenceNumber`` = the marker); the clock
starts just before the send of the chunk that completes a segment and stops at each listener's receipt of that
segment's caption (and the speaker's of its ``transcript``), all in this process, whose plain ``websockets``
clients share the machine's 2 cores with the gateway, its workers and DynamoDB Local. The first segments, sent
while the consumer starts (an Invoke and a cold worker), are a warm-up and are not counted. Phases, each on its
own session, ended before the next:

1. 1 listener (``es``): ``MEASURED_SEGMENTS`` segments;
2. 50 listeners, 25 ``es`` and 25 ``fr``: as many segments;
3. 500 listeners of ``es``: ``WIDE_SEGMENTS`` segments, one every 2 s of audio so that each caption is timed alone
   (not behind the previous one's posts), each to the last listener's receipt; then the consumer's delivery
   (``SegmentDelivery``, what the consumer calls per segment) runs in this process on the run's DynamoDB Local for
   that same session at the processor's top rate (a segment every ``PARTIAL_WINDOW_SECONDS``), its DynamoDB
   requests recorded and its posts recorded rather than sent: the DynamoDB requests and the posts a caption costs.

The floor of each latency row is the same chunks' own ``audioReceived`` reply (the ``sendAudio`` round trip
through the gateway, which ends with the write the consumer then reads). Every listener must receive every
counted segment exactly once (a correctness check).

These phases' listeners want captions only (``output=captions``): what they time is the captions' path, and no
speech is made. The spoken translation's phases follow in the same local run (``bench.speech_path``: listeners
wanting audio, each final segment to their ``translatedAudio``, the synthesis timed apart, and the synthesis calls
and posts per segment with 500 listeners).

    .venv/bin/python -m bench --only live_path
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection

from bench.common import Context, Row, patched_environ, percentile, row, stdout_to_devnull
from bench.latency import RequestRecorder
from bench.load import Server, _open, _speaker
from lambda_src import runtime
from lambda_src.adapters import connections_api, translation
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.transcription import recognizers, scripted_recognizer
from lambda_src.adapters.transcription.scripted_recognizer import SEGMENT_CHUNKS
from lambda_src.app.transcription import delivery
from lambda_src.contract import limits, wire
from lambda_src.model.partial_result_processor import PARTIAL_WINDOW_SECONDS, Segment
from local_run import assembly as cloud_assembly
from local_run.dynamodb_local import endpoint_environment
from local_run.run import STAND_INS
from tests.support.fakes import FakeConnectionsApi

SECTION = "9 live path"
CHUNK_SECONDS = 0.1  # the speaker app's 100 ms chunks, sent in real time
MEASURED_SEGMENTS = 60
WIDE_LISTENERS = 500
WIDE_SEGMENTS = 8
# One caption to 500 listeners is timed alone: one segment every 2 s of audio (the local run's @connections server
# and its 2 shared cores take longer than half a second to post 500 captions, so a caption every half second would
# time the queue behind it).
WIDE_SEGMENT_CHUNKS = 4 * SEGMENT_CHUNKS
DELIVERY_SEGMENTS = 30  # delivered at the processor's top rate (one per PARTIAL_WINDOW_SECONDS) for the request count
WARMUP_AFTER_FIRST_CAPTION = 1.0  # seconds of segments still uncounted once the first caption arrived
WARMUP_TIMEOUT = 60.0
SETTLE_SECONDS = 5.0  # the longest wait for the last captions after the last chunk
TARGET_P50_MS = 150.0
TARGET_WIDE_MS = 1000.0
SOURCE_LANGUAGE = "en"
CAPTION, AUDIO = "caption", "translatedAudio"
# The scripted recognizer, and the stand-in translator for every pair (not the local run's Apertium): what is timed is
# the service's own part of the path, not an engine's.
FUNCTION_ENV = {
    recognizers.ENV_RECOGNIZER: recognizers.SCRIPTED,
    translation.ENV_TRANSLATOR: translation.STAND_IN,
}


@dataclass
class Received:
    """Every frame one socket received, with its arrival time (parsed after the clock work is done)."""

    frames: list[tuple[float, str | bytes]] = field(default_factory=list)

    async def read(self, ws: ClientConnection, first: asyncio.Event, first_kind: str = CAPTION) -> None:
        """Every frame until the socket closes; ``first`` is set on the first message of type ``first_kind``."""
        tag = f'"{first_kind}"'
        try:
            async for frame in ws:
                at = time.perf_counter()
                self.frames.append((at, frame))
                if not first.is_set() and tag in str(frame):
                    first.set()
        except Exception:  # noqa: BLE001 - a closed socket ends its reader; a missing caption is counted
            return

    def messages(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        """The messages of type ``kind``, parsed, with their arrival times."""
        parsed = ((at, json.loads(frame)) for at, frame in self.frames)
        return [(at, message) for at, message in parsed if message.get("type") == kind]

    def by_marker(self, kind: str) -> dict[int, list[float]]:
        """Arrival times of the messages of type ``kind`` by the marker their text names (a ``translatedAudio``'s
        is its ``transcript``)."""
        out: dict[int, list[float]] = {}
        for at, message in self.messages(kind):
            marker = scripted_recognizer.marker_in(str(message.get("text", message.get("transcript", ""))))
            if marker is not None:
                out.setdefault(marker, []).append(at)
        return out

    def has(self, kind: str, marker: int, recent: int = 12) -> bool:
        """Whether one of the last ``recent`` frames is a ``kind`` message whose text ends with ``marker``'s word."""
        tag, ending = f'"{kind}"', f'{scripted_recognizer.word(marker)}"'
        return any(tag in str(frame) and ending in str(frame) for _, frame in self.frames[-recent:])

    def acks(self) -> dict[int, float]:
        """Arrival times of the ``audioReceived`` replies by sequence number (= the chunk's marker)."""
        out: dict[int, float] = {}
        for at, frame in self.frames:
            message = json.loads(frame)
            if message.get("type") == "audioReceived" and isinstance(message.get("sequenceNumber"), int):
                out.setdefault(message["sequenceNumber"], at)
        return out


@dataclass
class Phase:
    """One session's run: when each completing chunk was sent (counted ones only), and what every socket got."""

    session_id: str
    listeners: int
    sent: dict[int, float]  # marker of a counted completing chunk -> when its send began
    speaker: Received
    audience: list[Received]
    chunks_sent: int
    warmup_segments: int
    outputs: list[str] = field(default_factory=list)  # each listener's output, in the order of ``audience``
    languages: list[str] = field(default_factory=list)  # each listener's language, in the same order


def expected_kinds(output: str) -> tuple[str, ...]:
    """The messages a listener with ``output`` receives for each final segment."""
    return {wire.OUTPUT_CAPTIONS: (CAPTION,), wire.OUTPUT_AUDIO: (AUDIO,)}.get(output, (CAPTION, AUDIO))


def _send(sequence: int, every: int, text: Callable[[int], str] | None = None) -> tuple[str, bool]:
    """The ``sendAudio`` message of the chunk with ``sequence``, and whether it completes a segment: one chunk in
    ``every`` (a multiple of ``SEGMENT_CHUNKS``) carries its own sequence number as its marker, so it completes one
    (its FINAL says ``text(marker)`` if given, else the marker's word); the others carry a marker that completes
    none."""
    completes = (sequence + 1) % every == 0
    marker = sequence if completes else sequence - sequence % SEGMENT_CHUNKS
    assert scripted_recognizer.completes_segment(marker) == completes
    pcm = scripted_recognizer.chunk(marker, text=text(marker) if completes and text is not None else "")
    message = {"action": "sendAudio", "audioData": base64.b64encode(pcm).decode(), "sequenceNumber": sequence}
    return json.dumps(message), completes


async def _join(
    url: str, session_id: str, languages: list[str], outputs: list[str], batch: int | None = None
) -> list[ClientConnection]:
    """One listener per entry of ``languages``, all at once, or ``batch`` at a time (each batch joined before the
    next starts: thousands at once would time out in the handshake's queue)."""
    pairs = list(zip(languages, outputs, strict=True))
    step = batch or len(pairs) or 1
    opened = []
    for start in range(0, len(pairs), step):
        opened += await asyncio.gather(
            *(
                _open(
                    f"{url}?action=joinSession&sessionId={session_id}&targetLanguage={language}&{wire.OUTPUT}={output}",
                    expect_message=True,
                )
                for language, output in pairs[start : start + step]
            )
        )
    joined = [ws for ws, first, *_ in opened if ws is not None and isinstance(first, dict)]
    refused = [first for ws, first, *_ in opened if ws is None or not isinstance(first, dict)]
    if refused or any(first.get("type") != "sessionJoined" for _ws, first, *_ in opened):
        for ws in joined:
            await ws.close()
        raise RuntimeError(f"not every listener joined: {Counter(str(f)[:80] for _ws, f, *_ in opened)}")
    return joined


async def phase(
    url: str,
    token: str,
    languages: list[str],
    segments: int,
    every: int = SEGMENT_CHUNKS,
    before_end: Callable[[str], Any] | None = None,
    outputs: list[str] | None = None,
    text: Callable[[int], str] | None = None,
    first_kind: str = CAPTION,
    join_batch: int | None = None,
) -> tuple[Phase, Any]:
    """A session with one listener per entry of ``languages`` (its output the entry of ``outputs``: captions only
    by default, what the captions' phases time); the speaker streams until ``segments`` segments (one per ``every``
    chunks, each saying ``text(marker)`` if given) completed after the warm-up, which ends a second after the first
    message of type ``first_kind``; then ``before_end(session id)`` runs in a thread (its result is returned with
    the phase), and the session ends. ``join_batch``: the listeners join that many at a time."""
    outputs = outputs if outputs is not None else [wire.OUTPUT_CAPTIONS] * len(languages)
    speaker, session_id = await _speaker(url, token)
    sockets = [speaker]
    readers: list[asyncio.Task[None]] = []
    try:
        listeners = await _join(url, session_id, languages, outputs, join_batch)
        sockets += listeners
        first_caption = asyncio.Event()
        spoken, audience = Received(), [Received() for _ in listeners]
        readers = [asyncio.create_task(spoken.read(speaker, first_caption, first_kind))]
        readers += [
            asyncio.create_task(r.read(ws, first_caption, first_kind))
            for r, ws in zip(audience, listeners, strict=True)
        ]
        sent: dict[int, float] = {}
        counted_from: float | None = None
        warmup = 0
        started = time.perf_counter()
        marker = 0
        while len(sent) < segments:
            await asyncio.sleep(max(0.0, started + marker * CHUNK_SECONDS - time.perf_counter()))
            if counted_from is None and first_caption.is_set():
                counted_from = time.perf_counter() + WARMUP_AFTER_FIRST_CAPTION
            if counted_from is None and time.perf_counter() - started > WARMUP_TIMEOUT:
                raise RuntimeError(f"no {first_kind} within {WARMUP_TIMEOUT:.0f} s of the first chunk")
            at = time.perf_counter()
            message, completes = _send(marker, every, text)
            await speaker.send(message)
            if completes:
                if counted_from is not None and at >= counted_from:
                    sent[marker] = at
                else:
                    warmup += 1
            marker += 1
        deadline = time.perf_counter() + SETTLE_SECONDS
        last = max(sent)
        while time.perf_counter() < deadline:
            if all(
                r.has(kind, last)
                for r, output in zip(audience, outputs, strict=True)
                for kind in expected_kinds(output)
            ):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the speaker's last transcript, if it comes after the captions
        extra = await asyncio.to_thread(before_end, session_id) if before_end is not None else None
        await speaker.send(json.dumps({"action": "endSession", "sessionId": session_id}))
        await asyncio.sleep(0.2)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        await asyncio.gather(*readers, return_exceptions=True)
    phase_result = Phase(session_id, len(languages), sent, spoken, audience, marker, warmup, outputs, languages)
    return phase_result, extra


# -- requests per caption (the consumer's delivery, in this process, on the run's DynamoDB Local) ------------------


def delivery_requests(session_id: str, environment: dict[str, str], segments: int) -> dict[str, Any]:
    """``SegmentDelivery`` (what the consumer calls for each forwarded segment) for ``segments`` segments at the
    processor's top rate (one per ``PARTIAL_WINDOW_SECONDS``: partials at 5 a second), on the run's tables: its
    DynamoDB requests (recorded) and its posts (recorded, not sent)."""
    saved_client = connections_api.client
    fake = FakeConnectionsApi()
    pace = PARTIAL_WINDOW_SECONDS
    try:
        with stdout_to_devnull(), patched_environ(environment):
            runtime.reset()
            connections_api.client = lambda: fake  # type: ignore[assignment]
            session = runtime.sessions().get(session_id, int(time.time()))
            if session is None:
                raise RuntimeError(f"session {session_id} not found for the delivery's request count")
            client = dynamodb.client()
            started = time.perf_counter()
            with RequestRecorder(client) as recorder, delivery.SegmentDelivery() as deliver:
                for index in range(segments):
                    time.sleep(max(0.0, started + index * pace - time.perf_counter()))
                    segment = Segment(f"bench.{index}", scripted_recognizer.word(index), True, None, index * pace)
                    deliver(session, segment, time.time_ns() // 1_000_000)
            seconds = time.perf_counter() - started
    finally:
        connections_api.client = saved_client
        runtime.reset()
    posts = Counter(message.get("type") for operation, _, message in fake.calls if operation == "post" and message)
    return {
        "requests": len(recorder.calls),
        # an audience read is one Query and its continuation pages (ExclusiveStartKey)
        "reads": sum(1 for name, params in recorder.calls if name == "Query" and "ExclusiveStartKey" not in params),
        "by_operation": dict(Counter(name for name, _ in recorder.calls)),
        "captions": posts.get("caption", 0),
        "transcripts": posts.get("transcript", 0),
        "seconds": seconds,
        "windows": math.ceil(seconds / limits.CAPTION_AUDIENCE_CACHE_SECONDS),
    }


def scripted_recognizer_us(chunks: int = 2000) -> float:
    """The scripted recognizer's own time per chunk (µs, median of ``chunks``): what it adds to the path."""
    recognizer = scripted_recognizer.ScriptedRecognizer(SOURCE_LANGUAGE)
    pcm = [scripted_recognizer.chunk(marker) for marker in range(chunks)]
    samples = []
    for piece in pcm:
        start = time.perf_counter_ns()
        recognizer.feed(piece)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return percentile(samples, 50)


# -- figures ----------------------------------------------------------------------------------------------


def _latencies(phase_result: Phase, kind: str) -> tuple[list[float], int]:
    """Milliseconds from each counted chunk's send to each receipt of its segment (``kind``: caption or
    transcript); and how many expected receipts are missing or doubled."""
    sockets = phase_result.audience if kind == "caption" else [phase_result.speaker]
    samples: list[float] = []
    wrong = 0
    for received in sockets:
        arrivals = received.by_marker(kind)
        for marker, sent_at in phase_result.sent.items():
            times = arrivals.get(marker, [])
            wrong += abs(len(times) - 1)
            samples += [(at - sent_at) * 1000 for at in times[:1]]
    return samples, wrong


def _ack_ms(phase_result: Phase) -> list[float]:
    acks = phase_result.speaker.acks()
    return [(acks[m] - at) * 1000 for m, at in phase_result.sent.items() if m in acks]


def last_listener_ms(phase_result: Phase, kind: str = CAPTION) -> tuple[list[float], list[float], list[int]]:
    """Per counted segment: ms to the first and to the last listener's receipt of its message of type ``kind``,
    and how many listeners got it (of those whose output receives ``kind``)."""
    outputs = phase_result.outputs or [wire.OUTPUT_CAPTIONS] * len(phase_result.audience)
    arrivals = [
        received.by_marker(kind)
        for received, output in zip(phase_result.audience, outputs, strict=True)
        if kind in expected_kinds(output)
    ]
    firsts, lasts, counts = [], [], []
    for marker, sent_at in phase_result.sent.items():
        times = [by[marker][0] for by in arrivals if marker in by]
        counts.append(len(times))
        if times:
            firsts.append((min(times) - sent_at) * 1000)
            lasts.append((max(times) - sent_at) * 1000)
    return firsts, lasts, counts


def _phase_rows(context: Context, phase_result: Phase, label: str) -> list[Row]:
    captions, wrong_captions = _latencies(phase_result, "caption")
    transcripts, wrong_transcripts = _latencies(phase_result, "transcript")
    acks = _ack_ms(phase_result)
    segments = len(phase_result.sent)
    if wrong_captions or wrong_transcripts:
        context.failures.append(
            f"live path ({label}): {wrong_captions} caption and {wrong_transcripts} transcript receipts missing or "
            f"doubled over {segments} segments"
        )
    floor_is = "the same chunks' audioReceived reply (sendAudio's round trip through the gateway)"
    detail = (
        f"{segments} segments (+{phase_result.warmup_segments} warm-up, uncounted), {len(captions)} captions "
        f"received; missing or doubled: {wrong_captions}"
    )
    rows = []
    for p in (50, 99):
        rows.append(
            row(
                SECTION,
                f"{label}: chunk -> caption p{p}",
                round(percentile(captions, p), 1) if captions else None,
                "ms",
                floor=round(percentile(acks, p), 1) if acks else None,
                floor_is=floor_is,
                target=f"<= {TARGET_P50_MS:.0f} ms" if p == 50 else "",
                met=(percentile(captions, p) <= TARGET_P50_MS and not wrong_captions) if p == 50 and captions else None,
                note=detail if p == 50 else "",
                segments=segments,
                listeners=phase_result.listeners,
            )
        )
    for p in (50, 99):
        rows.append(
            row(
                SECTION,
                f"{label}: chunk -> speaker's transcript p{p}",
                round(percentile(transcripts, p), 1) if transcripts else None,
                "ms",
                floor=round(percentile(acks, p), 1) if acks else None,
                floor_is=floor_is,
                note=f"missing or doubled: {wrong_transcripts}" if p == 50 else "",
                segments=segments,
            )
        )
    return rows


def _wide_rows(context: Context, phase_result: Phase, requests: dict[str, Any]) -> list[Row]:
    firsts, lasts, counts = last_listener_ms(phase_result)
    acks = _ack_ms(phase_result)
    complete = bool(counts) and all(count == WIDE_LISTENERS for count in counts)
    if not complete:
        context.failures.append(f"live path ({WIDE_LISTENERS} listeners): captions received per segment {counts}")
    floor_is = "the same chunks' audioReceived reply (sendAudio's round trip through the gateway)"
    per_caption = requests["requests"] / requests["transcripts"] if requests["transcripts"] else math.nan
    posts_per_caption = requests["captions"] / requests["transcripts"] if requests["transcripts"] else math.nan
    reads = requests["by_operation"]
    return [
        row(
            SECTION,
            f"{WIDE_LISTENERS} listeners (es): chunk -> last listener's caption p50",
            round(percentile(lasts, 50), 1) if lasts else None,
            "ms",
            floor=round(percentile(acks, 50), 1) if acks else None,
            floor_is=floor_is,
            target=f"<= {TARGET_WIDE_MS:.0f} ms",
            met=bool(lasts) and percentile(lasts, 50) <= TARGET_WIDE_MS and complete,
            note=(
                f"{len(lasts)} segments (+{phase_result.warmup_segments} warm-up, uncounted); first listener's "
                f"p50 {percentile(firsts, 50):.0f} ms"
                if firsts
                else "no caption received"
            ),
        ),
        row(
            SECTION,
            f"{WIDE_LISTENERS} listeners (es): chunk -> last listener's caption, worst",
            round(max(lasts), 1) if lasts else None,
            "ms",
            floor=round(max(acks), 1) if acks else None,
            floor_is=floor_is,
            target=f"<= {TARGET_WIDE_MS:.0f} ms",
            met=bool(lasts) and max(lasts) <= TARGET_WIDE_MS and complete,
        ),
        row(
            SECTION,
            f"{WIDE_LISTENERS} listeners: captions received per segment (fewest)",
            min(counts) if counts else 0,
            "captions",
            target=f"= {WIDE_LISTENERS}",
            met=complete,
        ),
        row(
            SECTION,
            "DynamoDB requests per segment captioned (the consumer's delivery, 500 listeners)",
            round(per_caption, 3),
            "requests",
            target=f"<= 1 audience read per {limits.CAPTION_AUDIENCE_CACHE_SECONDS} s window",
            met=requests["reads"] <= requests["windows"],
            note=(
                f"{requests['requests']} requests ({reads}: {requests['reads']} audience reads) for "
                f"{requests['transcripts']} segments in {requests['seconds']:.1f} s (5 a second, the processor's top "
                f"rate); the consumer's loop also reads the buffer every "
                f"{limits.TRANSCRIBER_POLL_SECONDS * 1000:.0f} ms and renews its lease every "
                f"{limits.TRANSCRIBER_RENEW_SECONDS:.0f} s, whatever it delivers"
            ),
        ),
        row(
            SECTION,
            "posts per caption (500 listeners)",
            round(posts_per_caption, 1),
            "posts",
            target=f"= {WIDE_LISTENERS}",
            met=posts_per_caption == WIDE_LISTENERS,
            note="plus one transcript to the speaker per segment",
        ),
    ]


class LaterPhases(Protocol):
    """Phases that run in the same local run after the captions' (``bench.speech_path``, passed by ``bench``'s
    ``__main__``: it builds on this module's phases, which therefore do not import it)."""

    def connections(self) -> int:
        """The sockets they open, for the run's per-source connection limit."""
        ...

    def function_env(self, workdir: Path) -> dict[str, str]:
        """What they need in the local run's functions' environment."""
        ...

    def measure(self, context: Context, ready: dict[str, Any], consumer_environment: dict[str, str]) -> list[Row]:
        """Their rows, from the running local run (``ready``: its ready line) and the consumer's environment."""
        ...


def measure(context: Context, later: LaterPhases | None = None) -> list[Row]:
    wide = WIDE_LISTENERS
    lrc = {"env": "dev", "maxListenersPerSession": str(max(wide, limits.DEFAULT_MAX_LISTENERS_PER_SESSION))}
    connections = 3 + 1 + 50 + wide + (later.connections() if later is not None else 0)
    if connections > limits.DEFAULT_CONNECTIONS_PER_SOURCE_PER_MINUTE:
        lrc["connectionsPerSourcePerMinute"] = str(2 * connections)
    if wide > limits.DEFAULT_JOINS_PER_SESSION_PER_MINUTE:
        lrc["joinsPerSessionPerMinute"] = str(2 * wide)
    later_env = later.function_env(context.workdir) if later is not None else {}
    server = Server(context.workdir, lrc, function_env={**FUNCTION_ENV, **later_env}, name="live-path")
    try:
        ready = server.ready()
        assembly = cloud_assembly.load(
            context.workdir / "live-path-cdk.out", cloud_assembly.LocalAddresses(server.port, server.port + 1)
        )
        (consumer,) = [f for f in assembly.functions.values() if f.handler.endswith("transcriber.handler")]
        environment = {**endpoint_environment(ready["dynamodb"]), **STAND_INS, **FUNCTION_ENV, **consumer.environment}
        url, token = ready["url"], ready["token"]
        one, _ = asyncio.run(phase(url, token, ["es"], MEASURED_SEGMENTS))
        fifty, _ = asyncio.run(phase(url, token, ["es", "fr"] * 25, MEASURED_SEGMENTS))
        many, requests = asyncio.run(
            phase(
                url,
                token,
                ["es"] * WIDE_LISTENERS,
                WIDE_SEGMENTS,
                every=WIDE_SEGMENT_CHUNKS,
                before_end=lambda session_id: delivery_requests(session_id, environment, DELIVERY_SEGMENTS),
            )
        )
        later_rows = later.measure(context, ready, consumer.environment) if later is not None else []
    except BaseException:
        print(f"live path: the local run's log:\n{server.tail()}", flush=True)
        raise
    finally:
        server.stop()
    rows = _phase_rows(context, one, "1 listener") + _phase_rows(context, fifty, "50 listeners (25 es, 25 fr)")
    rows += _wide_rows(context, many, requests)
    rows.append(
        row(
            SECTION,
            "scripted recognizer per chunk (its own time on the path)",
            round(scripted_recognizer_us(), 2),
            "µs",
            note="a real recognizer's time is reported apart: pocketsphinx's real-time factor, section 8",
        )
    )
    return rows + later_rows
