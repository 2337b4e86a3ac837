"""The transcription consumer over the moto tables and the recording ``@connections`` API, with a scripted
recognizer (a test source, named as such): one consumer per session by its lease, the buffer's chunks fed in
sequence order, the session's broadcast state and settings obeyed, the speaker told each forwarded segment, and
the lease released, handed over or lost as the consumer stops."""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

from lambda_src import limits
from lambda_src.errors import ErrorCode
from lambda_src.repositories.sessions import Session
from lambda_src.transcription import starter
from lambda_src.transcription.consumer import HANDED_OVER, IDLE, LEASED_ELSEWHERE, SESSION_OVER, Consumer
from lambda_src.transcription.delivery import SegmentDelivery
from lambda_src.transcription.processor import Item, RecognitionResult, Segment
from lambda_src.transcription.recognizer import unsupported_language
from lambda_src.translation.stand_in import StandInTranslator
from tests.unit.flows import Clock, create_session, join, send
from tests.unit.helpers import body_of

# Each speaker connection's connectedAt, fixed at its first chunk (a connection's chunks share it, as API Gateway's
# events do).
CONNECTED_AT: defaultdict[str, int] = defaultdict(lambda: time.time_ns() // 1_000_000)


def word_chunk(word: str) -> str:
    """A chunk whose PCM spells ``word`` (padded to the smallest chunk), base64 as the speaker app sends it."""
    return base64.b64encode(word.encode().ljust(limits.MIN_AUDIO_CHUNK_BYTES, b" ")).decode()


@dataclass
class ScriptedRecognizer:
    """Test source: each chunk's PCM spells a word; every chunk gives a partial of the words so far (stable), and
    the close gives the final."""

    fed: list[str] = field(default_factory=list)
    closed: bool = False

    def _result(self, partial: bool) -> RecognitionResult:
        items = tuple(
            Item(word, index * 0.1, index * 0.1 + 0.1, stability=1.0 if partial else None)
            for index, word in enumerate(self.fed)
        )
        return RecognitionResult("r1", 0.0, len(self.fed) * 0.1, partial, items)

    def feed(self, pcm: bytes) -> list[RecognitionResult]:
        self.fed.append(pcm.decode().strip())
        return [self._result(partial=True)]

    def close(self) -> list[RecognitionResult]:
        self.closed = True
        return [self._result(partial=False)] if self.fed else []


class FakeTime:
    """The consumer's clock: real time at the start, moved only by its sleeps."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


@dataclass
class Run:
    delivered: list[Segment] = field(default_factory=list)
    successors: list[tuple[str, str | None]] = field(default_factory=list)
    recognizers: list[ScriptedRecognizer] = field(default_factory=list)


@pytest.fixture(autouse=True)
def short_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "TRANSCRIBER_IDLE_SECONDS", 1)


def consumer(session_id: str, run: Run, fake: FakeTime, time_left: float = 900.0, **kwargs: Any) -> Consumer:
    def open_recognizer(_session: Session) -> ScriptedRecognizer:
        run.recognizers.append(ScriptedRecognizer())
        return run.recognizers[-1]

    delivery = SegmentDelivery(StandInTranslator)

    def deliver(session: Session, segment: Segment, now_ms: int) -> None:
        run.delivered.append(segment)
        delivery(session, segment, now_ms)

    return Consumer(
        session_id,
        open_recognizer=open_recognizer,
        deliver=deliver,
        start_successor=lambda sid, by: run.successors.append((sid, by)),
        time_left=lambda: time_left,
        clock=fake.clock,
        sleep=fake.sleep,
        **kwargs,
    )


def speak(connection_id: str, words: list[str], order: list[int] | None = None, first: int = 0) -> None:
    """The speaker's connection sends the words, one chunk each (sequence numbers from ``first``, sent in
    ``order``), as one connection: the same ``connectedAt`` on every message."""
    for index in order if order is not None else range(len(words)):
        body = {"action": "sendAudio", "audioData": word_chunk(words[index]), "sequenceNumber": first + index}
        reply = send(body, connection_id, connected_at_ms=CONNECTED_AT[connection_id])
        assert body_of(reply)["accepted"] is True


def transcripts(gateway: Any, connection_id: str) -> list[dict[str, Any]]:
    return [m for m in gateway.messages_to(connection_id) if m["type"] == "transcript"]


def test_chunks_stored_out_of_order_are_transcribed_in_order_and_the_speaker_told(tables, gateway) -> None:
    # Given a session whose chunks were stored out of order (concurrent invocations)
    session_id, speaker = create_session()
    speak(speaker, ["good", "morning", "every", "one"], order=[1, 0, 3, 2])
    run, fake = Run(), FakeTime()
    # When its consumer runs until a second of silence
    assert consumer(session_id, run, fake).run() == IDLE
    # Then the recognizer heard the words in order, and the speaker was told partials then the final
    assert run.recognizers[0].fed == ["good", "morning", "every", "one"]
    told = transcripts(gateway, speaker)
    assert told[-1]["isPartial"] is False and told[-1]["text"] == "good morning every one"
    assert {m["segmentId"] for m in told} == {told[-1]["segmentId"]}
    assert any(m["isPartial"] for m in told)
    # And its lease is released, its position recorded
    item = tables.session(session_id)
    assert "transcriberLeaseUntil" not in item and item["transcriberCursor"].endswith("#0000000000000003")


def test_one_consumer_per_session_the_second_finds_the_lease_held(tables, gateway) -> None:
    session_id, speaker = create_session()
    speak(speaker, ["hello"])
    fake = FakeTime()
    first = consumer(session_id, Run(), fake)
    assert first._hold(fake.now)
    assert consumer(session_id, Run(), fake).run() == LEASED_ELSEWHERE
    # Once the first one's lease lapses, another may take it
    fake.now += limits.TRANSCRIBER_LEASE_SECONDS
    assert consumer(session_id, Run(), fake).run() == IDLE


def test_a_paused_broadcasts_chunks_are_read_and_not_transcribed(tables, gateway) -> None:
    session_id, speaker = create_session()
    speak(speaker, ["hello", "there"])
    assert body_of(send({"action": "pauseBroadcast"}, speaker))["isPaused"] is True
    run = Run()
    assert consumer(session_id, run, FakeTime()).run() == IDLE
    assert run.recognizers == [] and transcripts(gateway, speaker) == []


def test_partial_results_off_the_speaker_is_told_finals_only(tables, gateway) -> None:
    session_id, speaker = create_session(partialResults="false")
    speak(speaker, ["good", "evening"])
    consumer(session_id, Run(), FakeTime()).run()
    assert [(m["text"], m["isPartial"]) for m in transcripts(gateway, speaker)] == [("good evening", False)]


def test_listeners_get_the_same_segments_as_captions_in_their_language(tables, gateway) -> None:
    session_id, speaker = create_session(partialResults="false")
    spanish, english = join(session_id, "es"), join(session_id, "en")
    speak(speaker, ["good", "evening"])
    consumer(session_id, Run(), FakeTime()).run()
    [final] = transcripts(gateway, speaker)
    captions = {c: [m for m in gateway.messages_to(c) if m["type"] == "caption"] for c in (spanish, english)}
    assert [(m["segmentId"], m["text"]) for m in captions[spanish]] == [(final["segmentId"], "[es] good evening")]
    assert [(m["segmentId"], m["text"]) for m in captions[english]] == [(final["segmentId"], "good evening")]


def test_near_its_timeout_a_consumer_hands_over_and_its_successor_goes_on_from_its_position(tables, gateway) -> None:
    session_id, speaker = create_session()
    speak(speaker, ["one", "two"])
    run, fake = Run(), FakeTime()
    first = consumer(session_id, run, fake)
    first.time_left = lambda: 900.0 if fake.sleeps < 3 else limits.TRANSCRIBER_HANDOVER_SECONDS - 1
    assert first.run() == HANDED_OVER
    assert run.recognizers[0].fed == ["one", "two"] and run.recognizers[0].closed
    # Then it invoked its successor with its lease, which is still held for it
    assert run.successors == [(session_id, first.lease_id)]
    assert tables.session(session_id)["transcriberLeaseId"] == first.lease_id
    assert consumer(session_id, Run(), fake).run() == LEASED_ELSEWHERE  # nobody else may take it meanwhile
    # When more audio comes and the successor runs
    speak(speaker, ["three"], first=2)
    successor_run = Run()
    assert consumer(session_id, successor_run, fake).run(handed_over_by=first.lease_id) == IDLE
    # Then it went on from the first one's position: only the new chunk
    assert successor_run.recognizers[0].fed == ["three"]


def test_a_session_that_ends_stops_its_consumer_with_its_last_words_final(tables, gateway, monkeypatch) -> None:
    session_id, speaker = create_session()
    speak(speaker, ["last", "words"])
    run, fake = Run(), FakeTime()
    the_consumer = consumer(session_id, run, fake)
    original_sleep = fake.sleep

    def end_after_first_poll(seconds: float) -> None:
        if fake.sleeps == 0:
            assert body_of(send({"action": "endSession"}, speaker))["type"] == "sessionEnded"
        original_sleep(seconds)

    the_consumer.sleep = end_after_first_poll
    assert the_consumer.run() == SESSION_OVER
    assert run.recognizers[0].closed
    assert run.delivered[-1].is_partial is False and run.delivered[-1].text == "last words"


def test_a_language_the_recognizer_refuses_is_told_to_the_speaker_once(tables, gateway) -> None:
    session_id, speaker = create_session()
    speak(speaker, ["hola", "amigos"])

    def refuse(session: Session) -> ScriptedRecognizer:
        raise unsupported_language(session.source_language, "scripted", ("xx",))

    fake = FakeTime()
    refused = Consumer(
        session_id,
        open_recognizer=refuse,
        deliver=lambda *_: None,
        start_successor=lambda *_: None,
        time_left=lambda: 900.0,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert refused.run() == IDLE
    errors = [m for m in gateway.messages_to(speaker) if m["type"] == "error"]
    assert [(m["code"], m["field"]) for m in errors] == [(ErrorCode.INVALID_PARAMETERS.name, "sourceLanguage")]


def test_each_poll_is_one_query_and_the_session_is_written_once_a_second(tables, gateway) -> None:
    from tests.unit.helpers import DynamoDBRequests

    session_id, speaker = create_session()
    speak(speaker, ["a"])
    fake = FakeTime()
    with DynamoDBRequests() as requests:
        assert consumer(session_id, Run(), fake).run() == IDLE
    polls = fake.sleeps + 1
    seconds = limits.TRANSCRIBER_IDLE_SECONDS
    # the lease: taken, renewed each second, released
    assert requests.by_operation["UpdateItem"] == 1 + round(seconds / limits.TRANSCRIBER_RENEW_SECONDS) + 1
    # one page of the buffer per poll, and the captions' audience read once (kept CAPTION_AUDIENCE_CACHE_SECONDS)
    assert seconds < limits.CAPTION_AUDIENCE_CACHE_SECONDS
    assert requests.by_operation["Query"] == polls + 1
    assert set(requests.by_operation) == {"UpdateItem", "Query"}


def test_sendaudio_starts_a_consumer_once_and_none_while_one_holds_the_lease(
    tables, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    monkeypatch.setattr(starter, "start", lambda session_id, *_args, **_kwargs: started.append(session_id) or True)
    clock = Clock.install(monkeypatch)
    session_id, speaker = create_session()
    # When a burst of chunks arrives with no consumer: one start (the memo covers the lease period)
    speak(speaker, [f"w{n}" for n in range(10)])
    assert started == [session_id]
    # When a consumer holds the lease and the message function's read of the session sees it
    fake = FakeTime()
    fake.now = clock.now_ms / 1000
    assert consumer(session_id, Run(), fake)._hold(fake.now)
    clock.advance(limits.TRANSCRIBER_LEASE_SECONDS - 1)  # the memo has lapsed, the lease has not
    speak(speaker, ["more"], first=10)
    # Then nobody starts another
    assert started == [session_id]
    # And once the lease has lapsed (the consumer died), the next chunk starts one
    clock.advance(limits.TRANSCRIBER_LEASE_SECONDS)
    speak(speaker, ["again"], first=11)
    assert started == [session_id, session_id]


def test_a_failed_recognizer_stream_is_replaced_and_the_audio_goes_on(tables, gateway) -> None:
    # (Amazon Transcribe closes a stream that had no audio for 15 s; a network error does the same.)
    session_id, speaker = create_session(partialResults="false")
    speak(speaker, ["one", "two", "three"])
    streams: list[ScriptedRecognizer] = []

    class BreaksOnTwo(ScriptedRecognizer):
        def feed(self, pcm: bytes) -> list[RecognitionResult]:
            if pcm.decode().strip() == "two" and len(streams) == 1:
                raise ConnectionError("stream closed")
            return super().feed(pcm)

    def open_recognizer(_session: Session) -> ScriptedRecognizer:
        streams.append(BreaksOnTwo())
        return streams[-1]

    fake = FakeTime()
    the_consumer = consumer(session_id, Run(), fake)
    the_consumer.open_recognizer = open_recognizer
    assert the_consumer.run() == IDLE
    # Then the first stream's words were delivered as final, and the rest went to a second stream
    assert [stream.fed for stream in streams] == [["one"], ["two", "three"]]
    assert [m["text"] for m in transcripts(gateway, speaker)] == ["one", "two three"]


def test_a_recognizer_that_cannot_be_reached_is_tried_again_with_later_audio(
    tables, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "TRANSCRIBER_IDLE_SECONDS", 3)
    session_id, speaker = create_session(partialResults="false")
    speak(speaker, ["lost"])
    attempts: list[float] = []
    fake = FakeTime()

    def open_recognizer(_session: Session) -> ScriptedRecognizer:
        attempts.append(fake.now)
        if len(attempts) == 1:
            raise OSError("no route to the recognizer")
        return ScriptedRecognizer()

    the_consumer = consumer(session_id, Run(), fake)
    the_consumer.open_recognizer = open_recognizer
    original_sleep = fake.sleep

    def more_audio_later(seconds: float) -> None:
        if fake.sleeps == 2:
            speak(speaker, ["soon"], first=1)  # within the second: not tried again yet, the chunk is dropped
        if fake.sleeps == 30:
            speak(speaker, ["found"], first=2)
        original_sleep(seconds)

    the_consumer.sleep = more_audio_later
    assert the_consumer.run() == IDLE
    # Then the consumer lived on, and once a second had passed the later audio reached a new stream
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= limits.TRANSCRIBER_RENEW_SECONDS
    assert [m["text"] for m in transcripts(gateway, speaker)] == ["found"]
