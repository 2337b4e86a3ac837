"""The transcription consumer over the moto tables and the recording ``@connections`` API, with a scripted
recognizer (a test source, named as such): one consumer per session by its lease, the buffer's chunks fed in
sequence order, the session's broadcast state and settings obeyed, the speaker told each forwarded segment, and
the lease released, handed over or lost as the consumer stops."""

from __future__ import annotations

import base64
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

from lambda_src import runtime
from lambda_src.adapters.transcription import starter
from lambda_src.adapters.transcription.transcribe_recognizer import TranscribeRecognizer, encode_event
from lambda_src.adapters.translation.stand_in import StandInTranslator
from lambda_src.app.transcription.consumer import (
    HANDED_OVER,
    IDLE,
    LEASE_LAPSED,
    LEASED_ELSEWHERE,
    SESSION_OVER,
    Consumer,
)
from lambda_src.app.transcription.delivery import SegmentDelivery
from lambda_src.contract import limits
from lambda_src.contract.errors import ErrorCode
from lambda_src.model.partial_result_processor import Item, RecognitionResult, Segment
from lambda_src.model.recognizer import unsupported_language
from lambda_src.model.session import Session
from tests.support.helpers import body_of
from tests.unit.flows import OWNER, Clock, connect_with, create_session, join, send

# Signs the test stand-in's stream URLs (never sent to AWS).
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
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

    def fits(self, _settings: Any) -> bool:
        return True


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


@dataclass
class DeliveringConsumer(Consumer):
    """A consumer that closes its delivery once it stopped, as the transcriber handler's ``with`` block does (the
    transcript's writes in flight are done when ``run`` returns)."""

    delivery: SegmentDelivery | None = None

    def run(self, handed_over_by: str | None = None) -> str:
        try:
            return super().run(handed_over_by)
        finally:
            if self.delivery is not None:
                self.delivery.__exit__(None, None, None)


def consumer(session_id: str, run: Run, fake: FakeTime, time_left: float = 900.0, **kwargs: Any) -> Consumer:
    def open_recognizer(_session: Session) -> ScriptedRecognizer:
        run.recognizers.append(ScriptedRecognizer())
        return run.recognizers[-1]

    delivery = SegmentDelivery(StandInTranslator)

    def deliver(session: Session, segment: Segment, now_ms: int) -> None:
        run.delivered.append(segment)
        delivery(session, segment, now_ms)

    return DeliveringConsumer(
        session_id,
        open_recognizer=open_recognizer,
        deliver=deliver,
        delivery=delivery,
        start_successor=lambda sid, by: run.successors.append((sid, by)),
        time_left=lambda: time_left,
        clock=fake.clock,
        sleep=fake.sleep,
        **{"settle": delivery.settle, **kwargs},
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
    from tests.support.helpers import DynamoDBRequests

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
    # the one final recorded in the transcript: one write, nothing read
    assert requests.by_operation["BatchWriteItem"] == 1
    assert set(requests.by_operation) == {"UpdateItem", "Query", "BatchWriteItem"}


def test_sendaudio_starts_a_consumer_once_and_none_while_one_holds_the_lease(
    tables, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []

    def start(session_id: str, *_args: Any, **_kwargs: Any) -> bool:
        started.append(session_id)
        return True

    monkeypatch.setattr(starter, "start", start)
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


def captions_by_listener(gateway: Any, listeners: list[str]) -> dict[str, list[dict[str, Any]]]:
    return {c: [m for m in gateway.messages_to(c) if m["type"] == "caption"] for c in listeners}


def test_a_consumer_that_lost_its_lease_during_a_slow_call_delivers_nothing_more(tables, gateway) -> None:
    # Given a session with listeners and 40 chunks of audio
    session_id, speaker = create_session()
    listeners = [join(session_id, "es"), join(session_id, "en")]
    words = [f"w{n}" for n in range(40)]
    speak(speaker, words)
    fake = FakeTime()
    successor = Run()

    class SlowFirstFeed(ScriptedRecognizer):
        def feed(self, pcm: bytes) -> list[RecognitionResult]:
            if not self.fed:
                # The first recognizer call takes 6 s: the lease (5 s) lapses, and a second consumer takes it and
                # transcribes the buffer meanwhile.
                fake.now += 6
                assert consumer(session_id, successor, fake).run() == IDLE
            return super().feed(pcm)

    slow = SlowFirstFeed()
    first = consumer(session_id, Run(), fake)
    first.open_recognizer = lambda _session: slow
    # When the first consumer's slow call returns
    stopped = first.run()
    # Then each listener got each segment once: one final, of all the words, under one segment id
    for captions in captions_by_listener(gateway, listeners).values():
        finals = [m for m in captions if not m["isPartial"]]
        assert [(m["segmentId"], m["text"].split()[-1]) for m in finals] == [(captions[0]["segmentId"], "w39")]
        assert {m["segmentId"] for m in captions} == {finals[0]["segmentId"]}
    told = transcripts(gateway, speaker)
    assert {m["segmentId"] for m in told} == {told[-1]["segmentId"]}
    # And the first consumer stopped on learning that the lease was no longer its own, its stream closed; the
    # second one transcribed all the audio
    assert stopped == LEASED_ELSEWHERE and slow.closed
    assert successor.recognizers[0].fed == words


def test_a_lease_renewal_succeeds_only_for_its_holders_own_lease_id(tables, gateway) -> None:
    session_id, speaker = create_session()
    speak(speaker, ["hello"])
    fake = FakeTime()
    first, second = consumer(session_id, Run(), fake), consumer(session_id, Run(), fake)
    assert first._hold(fake.now)
    # Once the first one's lease has lapsed, another takes it
    fake.now += limits.TRANSCRIBER_LEASE_SECONDS
    assert second._hold(fake.now)
    sessions = runtime.sessions()
    # Then the first one's renewal is refused, lapsed or not
    assert (
        sessions.hold_transcriber_lease(session_id, first.lease_id, int(fake.now * 1000), None, renewing=True)[0]
        is False
    )
    # and its release leaves the other's lease alone; the holder's own renewal succeeds
    assert sessions.release_transcriber_lease(session_id, first.lease_id, None) is False
    assert sessions.hold_transcriber_lease(session_id, second.lease_id, int(fake.now * 1000), None, renewing=True)[0]
    # And once the holder released it, nobody renews it: it must be taken again
    assert sessions.release_transcriber_lease(session_id, second.lease_id, None)
    assert (
        sessions.hold_transcriber_lease(session_id, second.lease_id, int(fake.now * 1000), None, renewing=True)[0]
        is False
    )


def throttle(
    monkeypatch: pytest.MonkeyPatch, fake: FakeTime, until: list[float], operations: tuple[str, ...]
) -> list[int]:
    """The store's ``operations`` answer ThrottlingException while the fake clock is before ``until[0]``; the
    store's retry pauses move the fake clock (nothing is slept). The throttled attempts, counted."""
    from moto.core.botocore_stubber import BotocoreStubber

    from lambda_src.adapters.repositories import dynamodb

    answer = BotocoreStubber.process_request
    throttled = [0]

    def process_request(stubber: BotocoreStubber, request: Any) -> Any:
        target = request.headers.get("X-Amz-Target")
        target = target.decode() if isinstance(target, bytes) else target or ""
        if target.rpartition(".")[2] in operations and fake.now < until[0]:
            throttled[0] += 1
            body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException"})
            return 400, {"Content-Type": "application/x-amz-json-1.0"}, body
        return answer(stubber, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
    monkeypatch.setattr(dynamodb.time, "sleep", lambda seconds: setattr(fake, "now", fake.now + seconds))
    dynamodb.start_invocation(None)
    return throttled


@pytest.mark.parametrize("operations", [("Query",), ("Query", "UpdateItem")], ids=["buffer", "buffer and lease"])
def test_a_throttled_store_does_not_end_the_consumer_and_its_open_segment_is_finalised(
    tables, gateway, monkeypatch: pytest.MonkeyPatch, operations: tuple[str, ...]
) -> None:
    # Given a consumer that transcribed the first words (a partial is showing)
    session_id, speaker = create_session()
    listener = join(session_id, "en")
    speak(speaker, ["good", "morning"])
    run, fake = Run(), FakeTime()
    the_consumer = consumer(session_id, run, fake)
    until = [float("inf")]
    throttled = throttle(monkeypatch, fake, until, operations)
    until[0] = 0.0
    original_sleep = fake.sleep

    def throttled_for_a_while(seconds: float) -> None:
        if fake.sleeps == 0:
            # When the store is throttled for 1.5 s, while the speaker goes on
            until[0] = fake.now + 1.5
            speak(speaker, ["every", "one"], first=2)
        original_sleep(seconds)

    the_consumer.sleep = throttled_for_a_while
    assert the_consumer.run() == IDLE
    # Then the consumer went on: the later words were transcribed once the store answered
    assert throttled[0] > 0 and fake.now > until[0]
    assert run.recognizers[0].fed == ["good", "morning", "every", "one"] and run.recognizers[0].closed
    # And the segment the listener was shown as partial got its final
    captions = [m for m in gateway.messages_to(listener) if m["type"] == "caption"]
    assert captions[-1]["isPartial"] is False and captions[-1]["text"] == "good morning every one"
    item = tables.session(session_id)
    assert "transcriberLeaseUntil" not in item and item["transcriberCursor"].endswith("#0000000000000003")


def test_a_consumer_whose_renewals_go_unanswered_past_its_lease_stops_delivering(
    tables, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "TRANSCRIBER_IDLE_SECONDS", 2 * limits.TRANSCRIBER_LEASE_SECONDS)
    session_id, speaker = create_session()
    speak(speaker, ["one"])
    run, fake = Run(), FakeTime()
    the_consumer = consumer(session_id, run, fake)
    until = [0.0]
    throttle(monkeypatch, fake, until, ("UpdateItem",))
    original_sleep = fake.sleep

    def store_stops_answering_renewals(seconds: float) -> None:
        if fake.sleeps == 0:
            until[0] = float("inf")
        original_sleep(seconds)

    the_consumer.sleep = store_stops_answering_renewals
    started = fake.now
    # When no renewal gets through for longer than the lease
    assert the_consumer.run() == LEASE_LAPSED
    # Then it stopped once its lease ran out, its stream closed and its last results not delivered: another
    # consumer may have taken the lapsed lease by then
    assert started + limits.TRANSCRIBER_LEASE_SECONDS <= fake.now
    assert run.recognizers[0].closed and all(segment.is_partial for segment in run.delivered)
    assert tables.session(session_id)["transcriberLeaseId"] == the_consumer.lease_id


def test_however_the_consumer_stops_its_stream_is_closed_and_its_lease_released(tables, gateway) -> None:
    session_id, speaker = create_session()
    speak(speaker, ["one", "two"])
    run, fake = Run(), FakeTime()
    the_consumer = consumer(session_id, run, fake)

    def breaks(_seconds: float) -> None:
        raise RuntimeError("something unforeseen")

    the_consumer.sleep = breaks
    with pytest.raises(RuntimeError, match="unforeseen"):
        the_consumer.run()
    assert run.recognizers[0].closed
    assert run.delivered[-1].is_partial is False and run.delivered[-1].text == "one two"
    assert "transcriberLeaseId" not in tables.session(session_id)


@dataclass
class TranscribeStandIn:
    """Test stand-in for Amazon Transcribe's WebSocket API (no engine): each audio event's PCM spells a word,
    answered with a partial of the words of the current result, or its final when the word ends a sentence."""

    urls: list[str] = field(default_factory=list)
    audio: list[list[str]] = field(default_factory=list)

    def connect(self, url: str) -> Any:
        self.urls.append(url)
        self.audio.append([])
        return _StandInSocket(self.audio[-1])

    def stabilities(self) -> list[str]:
        return [parse_qs(urlsplit(url).query)["partial-results-stability"][0] for url in self.urls]


@dataclass
class _StandInSocket:
    words: list[str]
    replies: list[bytes] = field(default_factory=list)
    result: list[str] = field(default_factory=list)
    results: int = 0

    def send(self, message: bytes) -> None:
        buffer = EventStreamBuffer()
        buffer.add_data(message)
        (event,) = list(buffer)
        if not event.payload:
            return
        word = event.payload.decode().strip()
        self.words.append(word)
        self.result.append(word)
        final = word.endswith(".")
        items = [
            {"Content": w, "StartTime": n * 0.1, "EndTime": n * 0.1 + 0.1, "Type": "pronunciation"}
            | ({} if final else {"Stable": True})
            for n, w in enumerate(self.result)
        ]
        result = {
            "ResultId": f"r{self.results}", "StartTime": 0.0, "EndTime": len(items) * 0.1, "IsPartial": not final,
            "Alternatives": [{"Transcript": " ".join(self.result), "Items": items}],
        }  # fmt: skip
        headers = {":content-type": "application/json", ":event-type": "TranscriptEvent", ":message-type": "event"}
        self.replies.append(encode_event(headers, json.dumps({"Transcript": {"Results": [result]}}).encode()))
        if final:
            self.result, self.results = [], self.results + 1

    def recv(self, timeout: float | None = None) -> bytes:
        if not self.replies:
            raise TimeoutError
        return self.replies.pop(0)

    def close(self) -> None:
        pass


def test_a_min_stability_change_reopens_the_stream_at_the_next_segment_boundary_with_its_level(
    tables, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "TRANSCRIBER_IDLE_SECONDS", 3)
    # Given a session at minStability 0.85 (Transcribe's "medium") whose speaker has begun a sentence
    session_id, speaker = create_session(minStability="0.85")
    speak(speaker, ["good"])
    transcribe_stand_in = TranscribeStandIn()

    def open_transcribe(session: Session) -> TranscribeRecognizer:
        threshold = float(session.config.min_stability_threshold)
        return TranscribeRecognizer(
            session.source_language, threshold, region="us-east-1", credentials=CREDENTIALS,
            connect=transcribe_stand_in.connect,
        )  # fmt: skip

    run, fake = Run(), FakeTime()
    the_consumer = consumer(session_id, run, fake)
    the_consumer.open_recognizer = open_transcribe
    original_sleep = fake.sleep

    def speaker_changes_the_setting(seconds: float) -> None:
        if fake.sleeps == 0:
            # When the speaker raises minStability mid-sentence
            reply = send({"action": "updateSessionConfig", "minStability": 0.95}, speaker)
            assert body_of(reply)["minStabilityThreshold"] == 0.95
        if fake.sleeps == 30:  # read by the consumer at its next renewal; the sentence goes on, then the next
            speak(speaker, ["morning."], first=1)
        if fake.sleeps == 40:
            speak(speaker, ["hello", "again."], first=2)
        original_sleep(seconds)

    the_consumer.sleep = speaker_changes_the_setting
    assert the_consumer.run() == IDLE
    # Then the open sentence finished in its stream, and the next one went to a new stream at the new level
    assert transcribe_stand_in.audio == [["good", "morning."], ["hello", "again."]]
    assert transcribe_stand_in.stabilities() == ["medium", "low"]
    finals = [m["text"] for m in transcripts(gateway, speaker) if not m["isPartial"]]
    assert finals == ["good morning.", "hello again."]


def test_chunk_0_of_a_refreshed_speaker_connection_stored_after_chunk_1_is_fed_in_order(tables, gateway) -> None:
    # Given a consumer transcribing the speaker's first connection
    session_id, speaker = create_session()
    speak(speaker, ["hello"])
    run, fake = Run(), FakeTime()
    the_consumer = consumer(session_id, run, fake)
    original_sleep = fake.sleep
    refreshed: list[str] = []

    def speaker_refreshes(seconds: float) -> None:
        if fake.sleeps == 0:
            # When the speaker refreshes its connection, and the new connection's chunk 1 is stored first
            query = {"action": "refreshConnection", "sessionId": session_id, "role": "speaker"}
            connection, response = connect_with(query, user_id=OWNER)
            assert response["statusCode"] == 200, response
            refreshed.append(connection)
            speak(connection, ["new", "world"], order=[1])
        if fake.sleeps == 2:  # within the reorder window
            speak(refreshed[0], ["new", "world"], order=[0])
        original_sleep(seconds)

    the_consumer.sleep = speaker_refreshes
    assert the_consumer.run() == IDLE
    # Then both of its chunks were fed, in order
    assert [word for recognizer in run.recognizers for word in recognizer.fed] == ["hello", "new", "world"]


def test_unnumbered_chunks_are_fed_in_arrival_order_as_soon_as_they_are_read(tables, gateway) -> None:
    # Given a speaker's unnumbered chunks (the original app's audioChunk) that reached the API 256 ms apart, and
    # were written by concurrent invocations in another order
    from lambda_src.handlers import message
    from tests.support.helpers import message_event

    session_id, speaker = create_session()
    words = ["good", "morning", "every", "one"]
    first_arrival = time.time_ns() // 1_000_000
    for index in [1, 0, 3, 2]:
        body = {"action": "audioChunk", "sessionId": session_id, "audioData": word_chunk(words[index])}
        event = message_event(
            body,
            connection_id=speaker,
            route_key="audioChunk",
            connected_at_ms=CONNECTED_AT[speaker],
            request_time_ms=first_arrival + 256 * index,
        )
        assert body_of(message.handler(event, None)) == {"type": "audioReceived", "accepted": True}
    run, fake = Run(), FakeTime()
    fed_at_poll: list[int] = []
    the_consumer = consumer(session_id, run, fake)
    open_scripted = the_consumer.open_recognizer

    def open_recognizer(session: Session) -> ScriptedRecognizer:
        recognizer = open_scripted(session)
        assert isinstance(recognizer, ScriptedRecognizer)
        feed = recognizer.feed

        def timed_feed(pcm: bytes) -> list[RecognitionResult]:
            fed_at_poll.append(fake.sleeps)
            return feed(pcm)

        recognizer.feed = timed_feed  # type: ignore[method-assign]
        return recognizer

    the_consumer.open_recognizer = open_recognizer
    # When its consumer runs
    assert the_consumer.run() == IDLE
    # Then the recognizer heard them in the order they arrived, all at the first poll: no gap is waited for
    assert run.recognizers[0].fed == words
    assert fed_at_poll == [0, 0, 0, 0]
    assert transcripts(gateway, speaker)[-1]["text"] == "good morning every one"
    # And its position is the last one's arrival key
    assert tables.session(session_id)["transcriberCursor"] == tables.audio_chunks_items()[-1]["sequence"]


def speak_unnumbered(connection_id: str, session_id: str, words: list[str], arrived_at_ms: int) -> None:
    """The speaker's connection sends the words as the original app does (``audioChunk``, no sequence number), one
    chunk each, reaching the API 256 ms apart from ``arrived_at_ms``."""
    from lambda_src.handlers import message
    from tests.support.helpers import message_event

    for index, word in enumerate(words):
        event = message_event(
            {"action": "audioChunk", "sessionId": session_id, "audioData": word_chunk(word)},
            connection_id=connection_id,
            route_key="audioChunk",
            connected_at_ms=CONNECTED_AT[connection_id],
            request_time_ms=arrived_at_ms + 256 * index,
        )
        assert body_of(message.handler(event, None)) == {"type": "audioReceived", "accepted": True}


def test_a_connection_that_goes_from_numbered_to_unnumbered_chunks_is_fed_all_of_them_in_that_order(
    tables, gateway
) -> None:
    # Given a speaker connection that numbered its first chunks, then sent unnumbered ones
    session_id, speaker = create_session()
    speak(speaker, ["good", "morning"])
    speak_unnumbered(speaker, session_id, ["every", "one"], time.time_ns() // 1_000_000)
    # When its consumer runs
    run = Run()
    assert consumer(session_id, run, FakeTime()).run() == IDLE
    # Then the recognizer heard the numbered chunks, then the unnumbered ones
    assert run.recognizers[0].fed == ["good", "morning", "every", "one"]


def test_numbered_chunks_a_connection_sends_after_unnumbered_ones_go_before_them_or_not_at_all(tables, gateway) -> None:
    # Given a speaker connection that sent unnumbered chunks, then numbered ones, all stored before its consumer
    # reads: a connection's numbered chunks are placed before its unnumbered ones (decision record 0035)
    session_id, speaker = create_session()
    speak_unnumbered(speaker, session_id, ["every", "one"], time.time_ns() // 1_000_000)
    speak(speaker, ["good", "morning"])
    run = Run()
    assert consumer(session_id, run, FakeTime()).run() == IDLE
    assert run.recognizers[0].fed == ["good", "morning", "every", "one"]
    # When it sends more numbered chunks after the consumer read its unnumbered ones
    speak(speaker, ["hello", "again"], first=2)
    run = Run()
    assert consumer(session_id, run, FakeTime()).run() == IDLE
    # Then they are behind the consumer's position, as a late chunk is: never fed
    assert [word for recognizer in run.recognizers for word in recognizer.fed] == []
