"""Section 9's spoken translation: from the speaker's chunk that completes a final segment to the listeners'
``translatedAudio``, and what one segment's speech costs in synthesis calls and posts. ``bench.live_path`` runs
these phases in its local run, after the captions' phases (``bench``'s ``__main__`` hands it this module).

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
synthesis, which is the synthesizer's part, not the service's, so the synthesis is timed apart, where it happens:
the bench has the local run's workers import ``bench.synthesis_log``, which records the start and end of each
``EspeakSynthesizer.synthesize`` call the consumer makes (its text, so its segment). A segment's synthesis is the
span from the first of its languages' calls starting to the last one ending (they run in parallel); the service's
own part is the segment's receipt time minus that span (p50 over the segments): the caption path before it, the
upload, the URL, the number drawn and the posts. The floor of the latency rows is the same segments' first
``caption`` receipt (the delivery speaks a segment once its captions are posted: speech never comes before them).

Counted in phase 3 (every segment it spoke, warm-up included): synthesis calls per segment, from the same record,
and the PutObject requests that stored them: the bench turns versioning on in the run's bucket, so that every
PutObject is one version of ``audio/<session>/<language>/<segment>.mp3`` (a segment spoken twice in a language
would show as two); and ``translatedAudio`` posts per counted segment, as received. Correctness checks, in every
phase: each segment synthesized and stored exactly once per language that has listeners wanting audio; each such
listener received each counted segment exactly once, and its ``sequenceNumber`` values run consecutively; a
captions-only listener received none; each language's last URL answers 200 with the MP3.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench import synthesis_log
from bench.common import Context, Row, percentile, row
from bench.live_path import AUDIO, CAPTION, SECTION, SEGMENT_CHUNKS, Phase, Received, last_listener_ms, phase
from bench.synthesis_log import Synthesis
from lambda_src.adapters.transcription import scripted_recognizer
from lambda_src.app.speech import audio_key
from lambda_src.contract import function_settings, wire
from local_run.dynamodb_local import LOCAL_CREDENTIALS, LOCAL_REGION
from local_run.worker import ENV_PRELOAD

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


def receipt_ms(
    sent: dict[int, float], arrivals: Iterable[dict[int, list[float]]], last: bool = False
) -> dict[int, float]:
    """Per segment marker of ``sent`` (when its chunk's send began): ms to its first receipt (``last``: to the last
    listener's) among ``arrivals`` (one dict of arrival times by marker per listener). Segments nobody received are
    left out."""
    arrivals = list(arrivals)
    out: dict[int, float] = {}
    for marker, sent_at in sent.items():
        times = [by[marker][0] for by in arrivals if by.get(marker)]
        if times:
            out[marker] = ((max(times) if last else min(times)) - sent_at) * 1000
    return out


def own_part_ms(
    receipts: dict[int, float], synthesis: dict[int, float], before: dict[int, float] | None = None
) -> list[float]:
    """Per segment timed both ways: its receipt time minus its synthesis time (ms), the service's own part; given
    ``before`` (e.g. its last caption's receipt), minus that too."""
    return [
        receipts[marker] - synthesis[marker] - (before or {}).get(marker, 0.0)
        for marker in sorted(receipts)
        if marker in synthesis and (before is None or marker in before)
    ]


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


# -- the synthesis, timed where it happens (bench.synthesis_log) --------------------------------------------------


def synthesis_spans(records: Iterable[Synthesis], markers: Iterable[int]) -> dict[int, float]:
    """Per segment of ``markers``: ms from the first of its syntheses starting to the last one ending (its languages
    are synthesized in parallel), over the ``records`` whose text names it; segments with none are left out."""
    wanted = set(markers)
    spans: dict[int, tuple[float, float]] = {}
    for record in records:
        marker = scripted_recognizer.marker_in(record.text)
        if marker in wanted and record.ok:
            start, end = spans.get(marker, (record.start, record.end))
            spans[marker] = (min(start, record.start), max(end, record.end))
    return {marker: (end - start) * 1000 for marker, (start, end) in spans.items()}


def calls_per_segment(records: Iterable[Synthesis]) -> Counter[int]:
    """Synthesis calls by the segment (marker) their text names."""
    return Counter(
        marker for marker in (scripted_recognizer.marker_in(record.text) for record in records) if marker is not None
    )


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


@dataclass
class SpeechPhase:
    """One phase: what its listeners received, the syntheses the consumer made meanwhile (``bench.synthesis_log``)
    and what the bucket stored for its session, by (segment id, language)."""

    result: Phase
    syntheses: list[Synthesis]
    stored: Counter[tuple[str, str]]


def _problems(spoken: SpeechPhase) -> list[str]:
    """What is wrong with the phase's speech (nothing, normally)."""
    result, problems = spoken.result, []
    for received, output in zip(result.audience, result.outputs, strict=True):
        messages = heard(received)
        if output == wire.OUTPUT_CAPTIONS:
            if messages:
                problems.append(f"a captions-only listener received {len(messages)} translatedAudio")
            continue
        counted = Counter(m.marker for m in messages if m.marker in result.sent)
        wrong = sum(abs(counted.get(marker, 0) - 1) for marker in result.sent)
        if wrong:
            problems.append(f"a listener's translatedAudio missing or doubled {wrong} times")
        if not consecutive([m.sequence_number for m in messages]):
            problems.append(f"sequenceNumber not consecutive: {[m.sequence_number for m in messages]}")
    languages = set(wanting_audio(result))
    segments = {segment for segment, _ in spoken.stored}
    expected = {(segment, language) for segment in segments for language in languages}
    if set(spoken.stored) != expected or any(n != 1 for n in spoken.stored.values()):
        twice = {key: n for key, n in spoken.stored.items() if n != 1}
        problems.append(
            f"stored {sum(spoken.stored.values())} times for {len(segments)} segments in {sorted(languages)}: "
            f"missing {sorted(expected - set(spoken.stored))[:3]}, more than once {dict(list(twice.items())[:3])}"
        )
    calls = calls_per_segment(spoken.syntheses)
    if any(n != len(languages) for n in calls.values()) or sum(calls.values()) != sum(spoken.stored.values()):
        problems.append(f"synthesis calls per segment {dict(calls)} for {len(languages)} languages")
    return problems


def _url_problems(result: Phase) -> list[str]:
    """Each language's last posted URL must answer 200 with an MP3."""
    problems = []
    for language in sorted(wanting_audio(result)):
        last = next(
            (m for received in result.audience for m in reversed(heard(received)) if m.language == language), None
        )
        if last is None:
            problems.append(f"no translatedAudio in {language}")
            continue
        try:
            status, content_type, body = _fetch(last.url)
        except OSError as error:
            problems.append(f"its URL in {language} failed: {error}")
            continue
        if status != 200 or content_type != "audio/mpeg" or not body:
            problems.append(f"its URL in {language} answered {status} {content_type} ({len(body)} bytes)")
    return problems


def _first_ms(result: Phase, kind: str, last: bool = False) -> dict[int, float]:
    return receipt_ms(result.sent, [received.by_marker(kind) for received in result.audience], last)


def _p(samples: Iterable[float], p: int) -> float | None:
    values = list(samples)
    return round(percentile(values, p), 1) if values else None


def latency_rows(spoken: SpeechPhase, label: str) -> list[Row]:
    """Chunk -> first listener's ``translatedAudio`` p50 and p99, the synthesis apart, and the difference."""
    result = spoken.result
    audio, captions = _first_ms(result, AUDIO), _first_ms(result, CAPTION)
    synthesis = synthesis_spans(spoken.syntheses, result.sent)
    own = own_part_ms(audio, synthesis)
    after_captions = own_part_ms(audio, synthesis, before=_first_ms(result, CAPTION, last=True))
    floor_is = "the same segments' first caption (a segment is spoken once its captions are posted)"
    counted = [r for r in spoken.syntheses if scripted_recognizer.marker_in(r.text) in result.sent]
    durations = [m.duration for received in result.audience for m in heard(received) if m.marker in result.sent]
    sizes = [m.size for received in result.audience for m in heard(received)]
    detail = (
        f"{len(audio)} of {len(result.sent)} segments received (+{result.warmup_segments} warm-up, uncounted), "
        f"every audio listener each once; translatedAudio frames up to {max(sizes, default=0)} bytes"
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
            listeners=result.listeners,
        )
        for p in (50, 99)
    ]
    spoken_languages = sorted(wanting_audio(result))
    languages = " and ".join(spoken_languages) + (" in parallel" if len(spoken_languages) > 1 else "")
    rows.append(
        row(
            SECTION,
            f"{label}: synthesis per segment (espeak-ng + LAME, in the consumer) p50",
            _p(synthesis.values(), 50),
            "ms",
            note=(
                f"p99 {_p(synthesis.values(), 99)} ms; {languages}; per call "
                f"{sum(len(r.text) for r in counted) / max(len(counted), 1):.0f} characters, "
                f"{sum(durations) / max(len(durations), 1):.1f} s of speech"
            ),
        )
    )
    rows.append(
        row(
            SECTION,
            f"{label}: translatedAudio minus synthesis (the service's own part) p50",
            _p(own, 50),
            "ms",
            floor=_p(captions.values(), 50),
            floor_is=floor_is,
            target=f"<= {TARGET_OWN_P50_MS:.0f} ms",
            met=bool(own) and percentile(own, 50) <= TARGET_OWN_P50_MS,
            note=(
                f"p99 {_p(own, 99)} ms; per segment, its first receipt minus its synthesis; of which after its "
                f"last caption's receipt (the upload, the URL, the number, the first post) p50 "
                f"{_p(after_captions, 50)} ms"
            ),
        )
    )
    return rows


def count_rows(spoken: SpeechPhase, label: str) -> list[Row]:
    """Synthesis calls and ``translatedAudio`` posts per segment; the last listener's receipt."""
    result = spoken.result
    wanting = wanting_audio(result)
    languages, listeners = len(wanting), sum(wanting.values())
    calls = calls_per_segment(spoken.syntheses)
    per_call = sum(calls.values()) / len(calls) if calls else 0.0
    puts = sum(spoken.stored.values())
    segments = len(result.sent)
    posts = sum(1 for r in result.audience for m in heard(r) if m.marker in result.sent) / max(segments, 1)
    firsts, lasts, received_per_segment = last_listener_ms(result, AUDIO)
    _, caption_lasts, _ = last_listener_ms(result, CAPTION)
    return [
        row(
            SECTION,
            f"{label}: synthesis calls per segment",
            round(per_call, 2),
            "calls",
            floor=languages,
            floor_is="languages with listeners wanting audio (one call each, whatever their number)",
            target=f"= {languages}",
            met=all(n == languages for n in calls.values()) and bool(calls) and puts == sum(calls.values()),
            note=f"{sum(calls.values())} calls and {puts} PutObject for {len(calls)} segments, warm-up included",
        ),
        row(
            SECTION,
            f"{label}: translatedAudio posts per segment",
            round(posts, 1),
            "posts",
            floor=listeners,
            floor_is="listeners wanting audio (output audio or both)",
            target=f"= {listeners}",
            met=bool(received_per_segment) and all(n == listeners for n in received_per_segment),
            note=f"{segments} segments; the {len(result.outputs) - listeners} captions-only listeners get none",
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


def _log(workdir: Path) -> Path:
    return workdir / "live-path-syntheses.jsonl"


def function_env(workdir: Path) -> dict[str, str]:
    """What the local run's functions need for the consumer's syntheses to be recorded (in ``workdir``)."""
    return {ENV_PRELOAD: synthesis_log.__name__, synthesis_log.ENV_LOG: str(_log(workdir))}


def _run(log: Path, bucket: Bucket, url: str, token: str, languages: list[str], **options: Any) -> SpeechPhase:
    before = synthesis_log.lines(log)
    segments = options.pop("segments")
    result, _ = asyncio.run(phase(url, token, languages, segments, text=sentence, first_kind=AUDIO, **options))
    return SpeechPhase(result, synthesis_log.read(log, before), bucket.stored(result.session_id))


def measure(context: Context, ready: dict[str, Any], consumer_environment: dict[str, str]) -> list[Row]:
    """The three phases on the running local run (``ready``: its ready line, with the URL, a speaker token and the
    S3-API server's endpoint; its functions started with :func:`function_env`)."""
    url, token, log = ready["url"], ready["token"], _log(context.workdir)
    bucket = Bucket(ready["s3"], consumer_environment[function_settings.ENV_AUDIO_BUCKET])
    both = wire.OUTPUT_BOTH
    every = SPEECH_SEGMENT_CHUNKS
    one = _run(log, bucket, url, token, ["es"], segments=SPEECH_SEGMENTS, every=every, outputs=[both])
    fifty = _run(log, bucket, url, token, ["es", "fr"] * 25, segments=SPEECH_SEGMENTS, every=every, outputs=[both] * 50)
    wide = _run(
        log,
        bucket,
        url,
        token,
        [language for language, _, n in COUNT_AUDIENCE for _ in range(n)],
        segments=COUNT_SEGMENTS,
        every=COUNT_SEGMENT_CHUNKS,
        outputs=[output for _, output, n in COUNT_AUDIENCE for _ in range(n)],
    )
    for label, spoken in (("1 listener", one), ("50 listeners", fifty), ("500 listeners", wide)):
        problems = _problems(spoken) + _url_problems(spoken.result)
        context.failures += [f"live path, speech ({label}): {problem}" for problem in problems[:5]]
    rows = latency_rows(one, "speech, 1 listener (es, both)")
    rows += latency_rows(fifty, "speech, 50 listeners (25 es, 25 fr, both)")
    audience = ", ".join(f"{n} {language} {output}" for language, output, n in COUNT_AUDIENCE)
    return rows + count_rows(wide, f"speech, 500 listeners ({audience})")
