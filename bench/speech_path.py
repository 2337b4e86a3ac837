"""Section 9's spoken translation: from the speaker's chunk that completes a final segment to the listeners'
``translatedAudio``, and what one segment's speech costs in synthesis calls and posts. ``bench.live_path`` runs
these phases in its local run, after the captions' phases.

The local run speaks as ``make local`` does: espeak-ng, MP3 by LAME (``lambda_src.adapters.speech.espeak``), stored
in moto's S3-API server; the recognizer is scripted and the translator is the stand-in, as in the captions' phases.
Each chunk that completes a segment carries one of ``SENTENCES`` (9–12 words, a final as a recognizer gives one
at a pause), then its marker's word, so each listener hears a sentence of a real final's length (the
stand-in's ``[es] ...``, in espeak-ng's Spanish voice). Phases, each on its own session, listeners joined before
the speaker streams:

1. 1 listener (``es``, output ``both``): ``SPEECH_SEGMENTS`` segments, one a second (a segment's speech is done
   well within the second, so each is timed alone, not behind the previous one's);
2. 50 listeners (25 ``es``, 25 ``fr``, output ``both``): as many;
3. 500 listeners: 200 ``es`` with output ``both``, 200 ``fr`` with ``audio``, 100 ``es`` with ``captions``:
   ``COUNT_SEGMENTS`` segments, one every 2 s (posting to 500 sockets through the local ``@connections`` takes
   most of a second).

Timed per counted segment (the warm-up ends a second after the first ``translatedAudio``): from the send of its
chunk to the first listener's ``translatedAudio`` (phase 3: also the last listener's). That time includes the
synthesis, which is the synthesizer's part, not the service's, so the synthesis is timed apart: in this process,
once the phases are over (the local run idle), on the very texts the listeners received (each ``transcript``),
each segment's languages in parallel as the delivery speaks them (``SPEECH_PARALLELISM`` threads), by
``EspeakSynthesizer``, the class the local run's consumer calls, after one untimed call per language. The
service's own part of a segment is its receipt time minus its synthesis time (p50 over the segments): the caption
path before it, the upload, the URL, the number drawn and the posts. The synthesis is timed with the local run idle,
whereas in the run it shares the two cores with the gateway, DynamoDB Local and the captions' posts: the
difference over-states the service's part rather than under-states it. The floor of the latency rows is the same
segments' first ``caption`` receipt (the delivery speaks a segment once its captions are posted: speech never
comes before them).

Counted in phase 3 (every segment it spoke, warm-up included): synthesis calls per segment, each stored by one
PutObject: the bench turns versioning on in the run's bucket, so that every PutObject is one version of
``audio/<session>/<language>/<segment>.mp3`` (a segment spoken twice in a language would show as two); and
``translatedAudio`` posts per counted segment, as received. Correctness checks, in every phase: each segment
stored exactly once per language that has listeners wanting audio; each such listener received each counted
segment exactly once, and its ``sequenceNumber`` values run consecutively; a captions-only listener received
none; a posted URL answers 200 with the MP3.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from bench.common import Context, Row, percentile, row
from bench.live_path import AUDIO, CAPTION, SECTION, SEGMENT_CHUNKS, Phase, Received, _last_listener_ms, phase
from lambda_src.adapters.speech.espeak import EspeakSynthesizer
from lambda_src.adapters.transcription import scripted_recognizer
from lambda_src.app.speech import audio_key
from lambda_src.contract import limits, wire
from local_run.dynamodb_local import LOCAL_CREDENTIALS, LOCAL_REGION

SPEECH_SEGMENTS = 25
SPEECH_SEGMENT_CHUNKS = 2 * SEGMENT_CHUNKS  # a final each second
COUNT_SEGMENTS = 5
COUNT_SEGMENT_CHUNKS = 4 * SEGMENT_CHUNKS  # a final every 2 s
# (language, output, listeners) of phase 3
COUNT_AUDIENCE = (("es", wire.OUTPUT_BOTH, 200), ("fr", wire.OUTPUT_AUDIO, 200), ("es", wire.OUTPUT_CAPTIONS, 100))
TARGET_OWN_P50_MS = 150.0
# What a speaker says between two pauses (a recognizer's final): 9-12 words, 45-72 characters (about 4 s at 150
# words a minute).
SENTENCES = (
    "Good morning everyone and thank you for joining us today",
    "We will start with a short review of last quarter",
    "Sales grew in every region except the north west",
    "The new warehouse opens in March if the permits arrive",
    "Please send your questions through the chat during the talk",
    "After the break we will look at the plans for next year",
    "Our customers asked for faster delivery and clearer prices",
    "The slides and the recording will be shared with everyone this afternoon",
    "Thank you all and see you at the next meeting",
)  # an odd number: segments every 2 or 4 scripted segments' chunks still go through all of them


def sentence(marker: int) -> str:
    """What the chunk carrying ``marker`` says when it completes a segment: a sentence, then the marker's word
    (which every caption, transcript and ``translatedAudio`` of it names)."""
    return f"{SENTENCES[marker // SEGMENT_CHUNKS % len(SENTENCES)]} {scripted_recognizer.word(marker)}"


@dataclass(frozen=True)
class Heard:
    """One ``translatedAudio`` a listener received."""

    at: float
    marker: int | None
    language: str
    segment_id: str
    sequence_number: int
    transcript: str
    url: str
    duration: float
    size: int  # the frame's bytes


def heard(received: Received) -> list[Heard]:
    """The ``translatedAudio`` messages ``received``, in arrival order."""
    out = []
    for at, frame in received.frames:
        message = json.loads(frame)
        if message.get("type") != AUDIO:
            continue
        transcript = str(message.get("transcript", ""))
        out.append(
            Heard(
                at,
                scripted_recognizer.marker_in(transcript),
                str(message.get("targetLanguage")),
                str(message.get("segmentId")),
                int(message.get("sequenceNumber", 0)),
                transcript,
                str(message.get("url", "")),
                float(message.get("duration", 0.0)),
                len(frame.encode() if isinstance(frame, str) else frame),
            )
        )
    return out


# -- pure helpers (tests/unit/test_bench_speech_path.py) ------------------------------------------------------


def receipt_ms(sent: dict[int, float], arrivals: Iterable[dict[int, list[float]]]) -> dict[int, float]:
    """Per segment marker of ``sent`` (when its chunk's send began): ms to its first receipt among ``arrivals``
    (one dict of arrival times by marker per listener). Segments nobody received are left out."""
    arrivals = list(arrivals)
    out: dict[int, float] = {}
    for marker, sent_at in sent.items():
        times = [by[marker][0] for by in arrivals if by.get(marker)]
        if times:
            out[marker] = (min(times) - sent_at) * 1000
    return out


def own_part_ms(receipts: dict[int, float], synthesis: dict[int, float]) -> list[float]:
    """Per segment timed both ways: its receipt time minus its synthesis time (ms), the service's own part."""
    return [receipts[marker] - synthesis[marker] for marker in sorted(receipts) if marker in synthesis]


def consecutive(numbers: list[int]) -> bool:
    """Whether ``numbers`` (as received) run one after the other, each once, in order."""
    return all(b == a + 1 for a, b in zip(numbers, numbers[1:], strict=False))


def stored(keys: Iterable[str], session_id: str) -> Counter[tuple[str, str]]:
    """How many times each (segment id, language) of ``session_id`` was stored, from the audio store's keys (one
    per object version), as ``lambda_src.app.speech.audio_key`` names them; other keys are left out."""
    out: Counter[tuple[str, str]] = Counter()
    for key in keys:
        parts = key.split("/")
        if len(parts) != 4:
            continue
        language, segment_id = parts[2], parts[3].removesuffix(".mp3")
        if key == audio_key(session_id, language, segment_id):
            out[(segment_id, language)] += 1
    return out


def per_segment(counts: Counter[tuple[str, str]]) -> float:
    """Stores (synthesis calls) per segment spoken, over the segments ``counts`` names."""
    segments = {segment for segment, _ in counts}
    return sum(counts.values()) / len(segments) if segments else 0.0


def wanting_audio(phase_result: Phase) -> dict[str, int]:
    """Listeners of the phase who want audio, by language."""
    out: Counter[str] = Counter()
    for language, output in zip(phase_result.languages, phase_result.outputs, strict=True):
        if output != wire.OUTPUT_CAPTIONS:
            out[language] += 1
    return dict(out)


# -- the synthesis, timed apart --------------------------------------------------------------------------------


def synthesis_ms(texts: dict[int, dict[str, str]], synthesize: Callable[[str, str], object]) -> dict[int, float]:
    """Per segment: the wall time (ms) of synthesizing its texts (language -> text), languages in parallel as the
    delivery speaks them (``SPEECH_PARALLELISM`` threads), after one untimed call per language."""
    out: dict[int, float] = {}
    with ThreadPoolExecutor(limits.SPEECH_PARALLELISM) as pool:
        warm = {language: text for by_language in texts.values() for language, text in by_language.items()}
        list(pool.map(lambda item: synthesize(item[1], item[0]), warm.items()))
        for marker, by_language in texts.items():
            start = time.perf_counter()
            list(pool.map(lambda item: synthesize(item[1], item[0]), by_language.items()))
            out[marker] = (time.perf_counter() - start) * 1000
    return out


def spoken_texts(phase_result: Phase) -> dict[int, dict[str, str]]:
    """What was spoken for each counted segment, by language: the ``transcript`` its first listener of each
    language received."""
    out: dict[int, dict[str, str]] = {}
    for received in phase_result.audience:
        for message in heard(received):
            if message.marker in phase_result.sent:
                out.setdefault(message.marker, {}).setdefault(message.language, message.transcript)
    return out


# -- the local run's audio bucket -----------------------------------------------------------------------------


class Bucket:
    """The run's audio bucket on its S3-API server: versioning turned on (every PutObject kept as a version),
    its versions under a session's prefix counted."""

    def __init__(self, endpoint: str, name: str) -> None:
        self.name = name
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=LOCAL_REGION,
            config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10),
            aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
        )
        self.client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})

    def stored(self, session_id: str) -> Counter[tuple[str, str]]:
        keys = []
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.name):
            keys += [version["Key"] for version in page.get("Versions", [])]
        return stored(keys, session_id)


def _fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the run's S3-API server, on loopback
        return response.status, response.headers.get("Content-Type", ""), response.read()


# -- checks and figures -------------------------------------------------------------------------------------------


def _check(context: Context, phase_result: Phase, bucket: Bucket, label: str) -> Counter[tuple[str, str]]:
    """The phase's correctness checks (failures recorded in ``context``); what the bucket stored for it."""
    problems = []
    for received, output in zip(phase_result.audience, phase_result.outputs, strict=True):
        messages = heard(received)
        if output == wire.OUTPUT_CAPTIONS:
            if messages:
                problems.append(f"a captions-only listener received {len(messages)} translatedAudio")
            continue
        counted = Counter(m.marker for m in messages if m.marker in phase_result.sent)
        wrong = sum(abs(counted.get(marker, 0) - 1) for marker in phase_result.sent)
        if wrong:
            problems.append(f"a listener's translatedAudio missing or doubled {wrong} times")
        if not consecutive([m.sequence_number for m in messages]):
            problems.append(f"sequenceNumber not consecutive: {[m.sequence_number for m in messages]}")
    counts = bucket.stored(phase_result.session_id)
    languages = set(wanting_audio(phase_result))
    segments = {segment for segment, _ in counts}
    expected = {(segment, language) for segment in segments for language in languages}
    if set(counts) != expected or any(n != 1 for n in counts.values()):
        extra = {key: n for key, n in counts.items() if n != 1}
        problems.append(
            f"stored {sum(counts.values())} times for {len(segments)} segments in {sorted(languages)}: "
            f"missing {sorted(expected - set(counts))[:3]}, more than once {dict(list(extra.items())[:3])}"
        )
    for language in sorted(languages):
        last = next(
            (m for received in phase_result.audience for m in reversed(heard(received)) if m.language == language),
            None,
        )
        if last is None:
            problems.append(f"no translatedAudio in {language}")
            continue
        try:
            status, content_type, body = _fetch(last.url)
            if status != 200 or content_type != "audio/mpeg" or not body:
                problems.append(f"its URL in {language} answered {status} {content_type} ({len(body)} bytes)")
        except OSError as error:
            problems.append(f"its URL in {language} failed: {error}")
    context.failures += [f"live path, speech ({label}): {problem}" for problem in problems[:5]]
    return counts


def _first_ms(phase_result: Phase, kind: str) -> dict[int, float]:
    arrivals = [received.by_marker(kind) for received in phase_result.audience]
    return receipt_ms(phase_result.sent, arrivals)


def _p(samples: Iterable[float], p: int) -> float | None:
    values = list(samples)
    return round(percentile(values, p), 1) if values else None


def latency_rows(phase_result: Phase, label: str, synthesis: dict[int, float]) -> list[Row]:
    """Chunk -> first listener's ``translatedAudio`` p50 and p99, the synthesis apart, and the difference."""
    audio, captions = _first_ms(phase_result, AUDIO), _first_ms(phase_result, CAPTION)
    own = own_part_ms(audio, synthesis)
    floor_is = "the same segments' first caption (a segment is spoken once its captions are posted)"
    sizes = [m.size for received in phase_result.audience for m in heard(received)]
    spoken = spoken_texts(phase_result)
    characters = [len(text) for by_language in spoken.values() for text in by_language.values()]
    durations = [m.duration for m in heard(phase_result.audience[0]) if m.marker in phase_result.sent]
    detail = (
        f"{len(audio)} of {len(phase_result.sent)} segments received (+{phase_result.warmup_segments} warm-up, "
        f"uncounted); {len(phase_result.sent) * sum(wanting_audio(phase_result).values())} receipts expected; "
        f"translatedAudio frames up to {max(sizes, default=0)} bytes"
    )
    rows = [
        row(
            SECTION,
            f"{label}: chunk -> first listener's translatedAudio p{p}",
            _p(audio.values(), p),
            "ms",
            floor=_p(captions.values(), p),
            floor_is=floor_is,
            note=detail if p == 50 else "",
            segments=len(audio),
            listeners=phase_result.listeners,
        )
        for p in (50, 99)
    ]
    rows.append(
        row(
            SECTION,
            f"{label}: synthesis per segment (espeak-ng + LAME, timed apart) p50",
            _p(synthesis.values(), 50),
            "ms",
            note=(
                f"p99 {_p(synthesis.values(), 99)} ms; {len(synthesis)} segments, "
                f"{', '.join(sorted({lang for by in spoken.values() for lang in by}))} in parallel, "
                f"{sum(characters) / max(len(characters), 1):.0f} characters and "
                f"{sum(durations) / max(len(durations), 1):.1f} s of speech per segment and language; in this "
                "process, on the texts received"
            ),
        )
    )
    met = bool(own) and percentile(own, 50) <= TARGET_OWN_P50_MS
    rows.append(
        row(
            SECTION,
            f"{label}: translatedAudio minus synthesis (the service's own part) p50",
            _p(own, 50),
            "ms",
            floor=_p(captions.values(), 50),
            floor_is=floor_is,
            target=f"<= {TARGET_OWN_P50_MS:.0f} ms",
            met=met,
            note=f"p99 {_p(own, 99)} ms; per segment, its receipt minus its synthesis",
        )
    )
    return rows


def count_rows(phase_result: Phase, counts: Counter[tuple[str, str]], label: str) -> list[Row]:
    """Synthesis calls and ``translatedAudio`` posts per segment; the last listener's receipt."""
    wanting = wanting_audio(phase_result)
    languages, listeners = len(wanting), sum(wanting.values())
    received = sum(
        1 for r in phase_result.audience for m in heard(r) if m.marker in phase_result.sent
    )  # the counted segments' posts, as received
    segments = len(phase_result.sent)
    posts = received / segments if segments else 0.0
    calls = per_segment(counts)
    exact = all(n == 1 for n in counts.values())
    firsts, lasts, received_per_segment = _last_listener_ms(phase_result, AUDIO)
    _, caption_lasts, _ = _last_listener_ms(phase_result, CAPTION)
    return [
        row(
            SECTION,
            f"{label}: synthesis calls per segment",
            round(calls, 2),
            "calls",
            floor=languages,
            floor_is="languages with listeners wanting audio (one call each, whatever their number)",
            target=f"= {languages}",
            met=calls == languages and exact,
            note=(
                f"{sum(counts.values())} PutObject (as many synthesis calls) for "
                f"{len({s for s, _ in counts})} segments, warm-up included"
            ),
        ),
        row(
            SECTION,
            f"{label}: translatedAudio posts per segment",
            round(posts, 1),
            "posts",
            floor=listeners,
            floor_is="listeners wanting audio (output audio or both)",
            target=f"= {listeners}",
            met=posts == listeners and all(n == listeners for n in received_per_segment),
            note=f"{segments} segments; the {len(phase_result.outputs) - listeners} captions-only listeners get none",
        ),
        row(
            SECTION,
            f"{label}: chunk -> last listener's translatedAudio p50",
            _p(lasts, 50),
            "ms",
            floor=_p(caption_lasts, 50),
            floor_is="the same segments' last caption",
            note=(
                f"first listener's p50 {_p(firsts, 50)} ms, the last's worst {max(lasts, default=0):.0f} ms; "
                "synthesis included"
            ),
        ),
    ]


# -- the phases ---------------------------------------------------------------------------------------------------


def connections() -> int:
    """Sockets the phases open (speakers and listeners), for the run's per-source connection limit."""
    return 3 + 1 + 50 + sum(n for _, _, n in COUNT_AUDIENCE)


def measure(context: Context, url: str, token: str, bucket: Bucket) -> list[Row]:
    """The three phases on the running local run (``url``, a speaker ``token``), then the synthesis timed apart."""
    both = wire.OUTPUT_BOTH
    speech: dict[str, Any] = {"every": SPEECH_SEGMENT_CHUNKS, "text": sentence, "first_kind": AUDIO}
    one, _ = asyncio.run(phase(url, token, ["es"], SPEECH_SEGMENTS, outputs=[both], **speech))
    fifty, _ = asyncio.run(phase(url, token, ["es", "fr"] * 25, SPEECH_SEGMENTS, outputs=[both] * 50, **speech))
    languages = [language for language, _, n in COUNT_AUDIENCE for _ in range(n)]
    outputs = [output for _, output, n in COUNT_AUDIENCE for _ in range(n)]
    wide, _ = asyncio.run(
        phase(
            url,
            token,
            languages,
            COUNT_SEGMENTS,
            outputs=outputs,
            every=COUNT_SEGMENT_CHUNKS,
            text=sentence,
            first_kind=AUDIO,
        )
    )
    counts = {
        label: _check(context, result, bucket, label)
        for label, result in (("1 listener", one), ("50 listeners", fifty), ("500 listeners", wide))
    }
    synthesizer = EspeakSynthesizer()
    rows = []
    for result, label in ((one, "speech, 1 listener (es, both)"), (fifty, "speech, 50 listeners (25 es, 25 fr, both)")):
        rows += latency_rows(result, label, synthesis_ms(spoken_texts(result), synthesizer.synthesize))
    audience = ", ".join(f"{n} {language} {output}" for language, output, n in COUNT_AUDIENCE)
    rows += count_rows(wide, counts["500 listeners"], f"speech, 500 listeners ({audience})")
    return rows
