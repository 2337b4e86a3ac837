"""Transcripts to take home: the documents (read back by a WebVTT / SubRip parser from the package index), each
final segment recorded through the transcription consumer and its captions (moto tables, the recording
``@connections`` fake, a scripted recognizer), and the owner's read and delete."""

from __future__ import annotations

import base64
import io
import threading
from typing import Any

import pytest
import webvtt

from lambda_src import runtime
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.transcripts import TranscriptEntry, TranscriptsRepository
from lambda_src.adapters.translation.stand_in import StandInTranslator
from lambda_src.app.transcription.delivery import SegmentDelivery
from lambda_src.app.transcripts import delete_transcript, read_transcript
from lambda_src.contract import function_settings, limits, telemetry
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.model.partial_result_processor import Segment
from lambda_src.model.session import Session
from lambda_src.model.transcripts import TranscriptSegment, render
from lambda_src.protocol import messages
from tests.support.helpers import body_of
from tests.unit.flows import OWNER, Clock, create_session, join, send
from tests.unit.test_captions import published_counts
from tests.unit.test_transcription_consumer import FakeTime, Run, consumer

DAY_S = 86_400


def vtt_cues(document: str) -> list[Any]:
    """The cues of a WebVTT document, as a WebVTT parser (strict) reads them."""
    return webvtt.from_buffer(io.StringIO(document), strict=True).captions


def srt_cues(document: str) -> list[Any]:
    """The cues of a SubRip document, as a SubRip parser reads them."""
    return webvtt.from_buffer(io.StringIO(document), format="srt").captions


# --- the documents ------------------------------------------------------------------------------------------

SEGMENTS = [
    TranscriptSegment(1_000, 2_500, {"en": "Good morning.", "es": "Buenos días."}),
    TranscriptSegment(3_000, 4_200, {"en": "Nobody listened in Spanish."}),
    TranscriptSegment(3_723_456, 3_725_000, {"en": "An hour later.", "es": "Una hora después."}),
]


def test_a_webvtt_document_holds_each_segment_in_its_language_and_a_webvtt_parser_reads_it_back() -> None:
    document = render(SEGMENTS, "es", "vtt")
    # Then it is WebVTT: the header, numbered cues with HH:MM:SS.mmm timings
    assert document.startswith("WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.500\nBuenos días.\n")
    parsed = vtt_cues(document)
    # And it holds the Spanish segments only, in order, at their times
    assert [(c.start, c.end, c.text) for c in parsed] == [
        ("00:00:01.000", "00:00:02.500", "Buenos días."),
        ("01:02:03.456", "01:02:05.000", "Una hora después."),
    ]
    # And the source language is a language too
    assert [c.text for c in vtt_cues(render(SEGMENTS, "en", "vtt"))] == [
        "Good morning.",
        "Nobody listened in Spanish.",
        "An hour later.",
    ]


def test_text_that_reads_as_markup_or_a_timing_arrow_is_escaped() -> None:
    segments = [TranscriptSegment(0, 1_000, {"en": "a <b>bold</b> & x --> y\nnext line"})]
    document = render(segments, "en", "vtt")
    cue_text = document.split("\n")[4]
    # Then no cue text holds "-->", "<" or a bare "&", nor a line break, and the parser gives the text back
    assert cue_text == "a &lt;b&gt;bold&lt;/b&gt; &amp; x --&gt; y next line"
    assert "-->" not in cue_text and "<" not in cue_text
    (cue,) = vtt_cues(document)
    assert cue.raw_text == cue_text
    # And SubRip, which has no escapes, keeps the arrow out of the text
    (srt_cue,) = srt_cues(render(segments, "en", "srt"))
    assert srt_cue.raw_text == "a <b>bold</b> & x -> y next line"


def test_a_language_without_segments_is_an_empty_document_in_every_format() -> None:
    assert render(SEGMENTS, "de", "vtt") == "WEBVTT\n"
    assert list(vtt_cues(render(SEGMENTS, "de", "vtt"))) == []
    assert render(SEGMENTS, "de", "srt") == ""
    assert render(SEGMENTS, "de", "txt") == ""


def test_an_srt_document_numbers_its_cues_and_a_subrip_parser_reads_it_back() -> None:
    document = render(SEGMENTS, "en", "srt")
    assert document.startswith("1\n00:00:01,000 --> 00:00:02,500\nGood morning.\n\n2\n00:00:03,000 --> ")
    parsed = srt_cues(document)
    assert [(c.start, c.end, c.text) for c in parsed] == [
        ("00:00:01.000", "00:00:02.500", "Good morning."),
        ("00:00:03.000", "00:00:04.200", "Nobody listened in Spanish."),
        ("01:02:03.456", "01:02:05.000", "An hour later."),
    ]


def test_plain_text_is_one_line_per_segment() -> None:
    assert render(SEGMENTS, "es", "txt") == "Buenos días.\nUna hora después.\n"


def test_cue_times_never_go_back_and_each_cue_lasts_at_least_the_minimum() -> None:
    # Given segments whose recorded times overlap, go back, or last nothing
    segments = [
        TranscriptSegment(5_000, 5_000, {"en": "one"}),
        TranscriptSegment(4_000, 6_000, {"en": "two"}),
        TranscriptSegment(7_000, 6_900, {"en": "three"}),
    ]
    parsed = vtt_cues(render(segments, "en", "vtt"))
    # Then the start times are in order (WebVTT requires it) and every cue lasts at least the minimum (0.5 s)
    assert limits.MIN_TRANSCRIPT_CUE_MS == 500
    assert [(c.start, c.end) for c in parsed] == [
        ("00:00:05.000", "00:00:05.500"),
        ("00:00:05.000", "00:00:06.000"),
        ("00:00:07.000", "00:00:07.500"),
    ]


# --- recording, through the consumer ------------------------------------------------------------------------

CHUNK_SECONDS = 0.1  # the scripted recognizer times each word 0.1 s of audio: one chunk of 0.1 s each
CHUNK_BYTES = int(CHUNK_SECONDS * limits.SAMPLE_RATE_HZ * limits.AUDIO_SAMPLE_BYTES)


@pytest.fixture(autouse=True)
def short_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "TRANSCRIBER_IDLE_SECONDS", 1)


def say(connection_id: str, words: list[str], first: int = 0, clock: Clock | None = None) -> None:
    """The speaker's connection sends one 0.1 s chunk per word (its PCM spells the word, for the scripted
    recognizer), as it is spoken: the service's ``clock``, when given, moves 0.1 s after each."""
    for index, word in enumerate(words):
        pcm = word.encode().ljust(CHUNK_BYTES, b" ")
        body = {"action": "sendAudio", "audioData": base64.b64encode(pcm).decode(), "sequenceNumber": first + index}
        assert body_of(send(body, connection_id))["accepted"] is True
        if clock is not None:
            clock.advance(CHUNK_SECONDS)


def transcribe(session_id: str) -> Run:
    run = Run()
    assert consumer(session_id, run, FakeTime()).run() == "idle"
    return run


def vtt(session_id: str, language: str, user_id: str = OWNER) -> list[Any]:
    content_type, body = read_transcript(session_id, user_id, language, "vtt")
    assert content_type == "text/vtt; charset=utf-8"
    return list(vtt_cues(body))


def test_a_sessions_transcript_holds_exactly_its_final_segments_in_order_in_each_captioned_language(
    tables, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an English session with a Spanish and a German listener
    clock = Clock.install(monkeypatch)
    session_id, speaker = create_session()
    spanish, german = join(session_id, "es"), join(session_id, "de")
    # When the speaker says two sentences, the second after a pause, each transcribed by a consumer (a stream each)
    clock.advance(10)
    say(speaker, ["Good", "morning."], clock=clock)
    transcribe(session_id)
    clock.advance(10)
    say(speaker, ["How", "are", "you", "all", "this", "morning?"], first=2, clock=clock)
    transcribe(session_id)
    # Then the listeners had partials and finals
    captions = [m for m in gateway.messages_to(spanish) if m["type"] == "caption"]
    assert any(m["isPartial"] for m in captions)
    assert [m["text"] for m in captions if not m["isPartial"]] == [
        "[es] Good morning.",
        "[es] How are you all this morning?",
    ]
    # And the transcript holds exactly the two finals, once each, in each language (the source one too)
    assert len(tables.transcripts_items()) == 2
    assert [c.text for c in vtt(session_id, "es")] == ["[es] Good morning.", "[es] How are you all this morning?"]
    assert [c.text for c in vtt(session_id, "de")] == ["[de] Good morning.", "[de] How are you all this morning?"]
    assert [c.text for c in vtt(session_id, "en")] == ["Good morning.", "How are you all this morning?"]
    assert [m["text"] for m in gateway.messages_to(german) if m["type"] == "caption" and not m["isPartial"]] == [
        "[de] Good morning.",
        "[de] How are you all this morning?",
    ]
    # And each cue is when its words were said, from the session's start (by the chunks' arrival, the pause
    # included): the first 10.0-10.2 s (lengthened to the shortest cue), the second 20.2-20.8 s
    assert [(c.start, c.end) for c in vtt(session_id, "es")] == [
        ("00:00:10.000", "00:00:10.500"),
        ("00:00:20.200", "00:00:20.800"),
    ]


def test_a_language_captioned_only_part_of_the_session_has_the_segments_said_while_it_was_listened_to(
    tables, gateway
) -> None:
    # Given a session whose first sentence nobody hears in French
    session_id, speaker = create_session()
    say(speaker, ["Before."])
    transcribe(session_id)
    # When a French listener joins and the speaker goes on
    join(session_id, "fr")
    say(speaker, ["After."], first=1)
    transcribe(session_id)
    # Then French has the second sentence only; the source language has both
    assert [c.text for c in vtt(session_id, "fr")] == ["[fr] After."]
    assert [c.text for c in vtt(session_id, "en")] == ["Before.", "After."]


def test_the_transcript_expires_the_retention_after_the_session_started(
    tables, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(function_settings.ENV_TRANSCRIPT_RETENTION_DAYS, "3")
    runtime.reset()
    session_id, speaker = create_session()
    say(speaker, ["Hello."])
    transcribe(session_id)
    (item,) = tables.transcripts_items()
    created_at_ms = tables.session(session_id)["createdAt"]
    assert item["expiresAt"] == created_at_ms // 1000 + 3 * DAY_S
    assert item["speakerUserId"] == OWNER


def session_of(session_id: str) -> Session:
    session = runtime.sessions().get(session_id, None)
    assert session is not None
    return session


def final(n: int) -> Segment:
    return Segment(f"s.r{n}-0", f"Sentence {n}.", False, None, float(n), float(n) + 0.5)


def test_segments_are_batched_and_captions_never_wait_for_a_write(
    tables, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a session with a Spanish listener, and a transcript store that holds its first write until released
    session_id, _speaker = create_session()
    spanish = join(session_id, "es")
    session = session_of(session_id)
    writing, release, writes = threading.Event(), threading.Event(), []
    put_all = TranscriptsRepository.put_all

    def held(repository: TranscriptsRepository, entries: Any) -> Any:
        writes.append(len(entries))
        writing.set()
        assert release.wait(10)
        return put_all(repository, entries)

    monkeypatch.setattr(TranscriptsRepository, "put_all", held)
    with SegmentDelivery(StandInTranslator) as delivery:
        # When a final is delivered, and two more while its write is held
        delivery(session, final(0), 1_000)
        assert writing.wait(10)
        for n in (1, 2):
            delivery(session, final(n), 1_000 + n)
        # Then every caption went out at once
        captions = [m["text"] for m in gateway.messages_to(spanish) if m["type"] == "caption"]
        assert captions == [f"[es] Sentence {n}." for n in range(3)]
        release.set()
    # And the two finals that waited went in one write (at most one write per final), all three recorded in order
    assert writes == [1, 2]
    assert [item["texts"]["es"] for item in tables.transcripts_items()] == [f"[es] Sentence {n}." for n in range(3)]


def test_segments_left_unprocessed_are_sent_again(tables, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a store that leaves the last item of the first request unprocessed (throttled)
    request, answers = dynamodb.request, []

    def first_answer_short(operation: str, **arguments: Any) -> Any:
        answers.append(operation)
        if operation == "batch_write_item" and len(answers) == 1:
            ((table, items),) = arguments["RequestItems"].items()
            request(operation, RequestItems={table: items[:-1]})
            return {"UnprocessedItems": {table: items[-1:]}}
        return request(operation, **arguments)

    monkeypatch.setattr(dynamodb, "request", first_answer_short)
    monkeypatch.setattr("time.sleep", lambda _seconds: None)
    entries = [
        TranscriptEntry("golden-eagle-427", 1, OWNER, "en", f"s.r{n}-0", 2, n, 3, 4, {"en": f"Hi {n}"}, 2**40)
        for n in range(2)
    ]
    # When both are written, then a write of both again (a repeat is harmless)
    assert runtime.transcripts().put_all(entries) == []
    assert runtime.transcripts().put_all(entries) == []
    # Then the unprocessed one was sent again, and both are stored once
    assert answers == ["batch_write_item"] * 3
    assert [item["texts"]["en"] for item in tables.transcripts_items()] == ["Hi 0", "Hi 1"]


# --- reading and deleting -------------------------------------------------------------------------------------


def spoken_session(user_id: str = OWNER) -> str:
    session_id, speaker = create_session(user_id)
    join(session_id, "es")
    say(speaker, ["Hello", "there."])
    transcribe(session_id)
    return session_id


def refusal(call: Any) -> tuple[str, str | None]:
    with pytest.raises(ServiceError) as refused:
        call()
    return refused.value.code.name, refused.value.field


def test_the_owner_reads_its_transcript_in_every_format_during_the_session(tables, gateway, monkeypatch) -> None:
    session_id = spoken_session()
    assert tables.session(session_id)["isActive"] is True
    assert read_transcript(session_id, OWNER, "es", "txt") == ("text/plain; charset=utf-8", "[es] Hello there.\n")
    content_type, body = read_transcript(session_id, OWNER, "es", "srt")
    assert content_type == "application/x-subrip; charset=utf-8"
    assert [c.text for c in srt_cues(body)] == ["[es] Hello there."]
    # A supported language nobody listened in is an empty document, not an error
    assert read_transcript(session_id, OWNER, "ja", "vtt") == ("text/vtt; charset=utf-8", "WEBVTT\n")


def test_another_speaker_is_forbidden_and_an_unknown_session_is_not_found(tables, gateway, monkeypatch) -> None:
    session_id = spoken_session()
    assert refusal(lambda: read_transcript(session_id, "user-2", "es", "vtt")) == ("FORBIDDEN", "sessionId")
    assert refusal(lambda: delete_transcript(session_id, "user-2")) == ("FORBIDDEN", "sessionId")
    assert len(tables.transcripts_items()) == 1
    assert refusal(lambda: read_transcript("quiet-owl-123", OWNER, "es", "vtt")) == ("SESSION_NOT_FOUND", "sessionId")
    assert refusal(lambda: delete_transcript("quiet-owl-123", OWNER)) == ("SESSION_NOT_FOUND", "sessionId")


def test_a_live_session_with_nothing_said_yet_is_an_empty_transcript_for_its_owner_only(tables, gateway) -> None:
    session_id, _speaker = create_session()
    assert read_transcript(session_id, OWNER, "en", "vtt") == ("text/vtt; charset=utf-8", "WEBVTT\n")
    assert refusal(lambda: read_transcript(session_id, "user-2", "en", "vtt")) == ("FORBIDDEN", "sessionId")


@pytest.mark.parametrize(
    ("session_id", "language", "fmt", "field"),
    [
        ("golden-eagle-427", "xx", "vtt", "language"),
        ("golden-eagle-427", None, "vtt", "language"),
        ("golden-eagle-427", "es", "pdf", "format"),
        ("golden-eagle-427", "es", None, "format"),
        ("not a session", "es", "vtt", "sessionId"),
    ],
)
def test_a_bad_parameter_is_invalid_parameters_naming_the_field(
    tables, session_id: str, language: Any, fmt: Any, field: str
) -> None:
    assert refusal(lambda: read_transcript(session_id, OWNER, language, fmt)) == ("INVALID_PARAMETERS", field)


def test_the_owner_reads_it_after_the_session_item_is_gone_and_nobody_else_does(tables, gateway, monkeypatch) -> None:
    session_id = spoken_session()
    # Given the session's item gone (ended and expired: TTL removed it)
    tables.client.delete_item(TableName=tables.sessions, Key={"sessionId": {"S": session_id}})
    # Then its owner still reads the transcript; another speaker is still refused
    assert [c.text for c in vtt(session_id, "es")] == ["[es] Hello there."]
    assert refusal(lambda: read_transcript(session_id, "user-2", "es", "vtt")) == ("FORBIDDEN", "sessionId")


def test_a_reused_session_id_keeps_each_speakers_transcript_apart(tables, gateway, monkeypatch) -> None:
    # Given a first session's transcript, its item gone, and its id taken by another speaker's session
    session_id = spoken_session()
    tables.client.delete_item(TableName=tables.sessions, Key={"sessionId": {"S": session_id}})
    tables.put_session(sessionId=session_id, speakerUserId="user-2", createdAt=messages.now_ms() + 1_000)
    # Then the new owner's transcript is empty (nothing said yet) and the first owner still reads theirs
    assert read_transcript(session_id, "user-2", "es", "txt") == ("text/plain; charset=utf-8", "")
    assert read_transcript(session_id, OWNER, "es", "txt")[1] == "[es] Hello there.\n"
    # And a third speaker is refused
    assert refusal(lambda: read_transcript(session_id, "user-3", "es", "vtt")) == ("FORBIDDEN", "sessionId")


def test_an_expired_transcript_is_gone_for_readers_before_ttl_removes_it(tables, gateway, monkeypatch) -> None:
    session_id = spoken_session()
    tables.client.delete_item(TableName=tables.sessions, Key={"sessionId": {"S": session_id}})
    (item,) = tables.transcripts_items()
    clock = Clock.install(monkeypatch)
    clock.now_ms = (item["expiresAt"] + 1) * 1000
    assert refusal(lambda: read_transcript(session_id, OWNER, "es", "vtt")) == ("SESSION_NOT_FOUND", "sessionId")


def test_the_owner_deletes_the_transcript_at_once(tables, gateway, monkeypatch) -> None:
    session_id = spoken_session()
    # When the owner deletes it during the session
    delete_transcript(session_id, OWNER)
    # Then nothing of it is stored, and the live session's transcript reads empty
    assert tables.transcripts_items() == []
    assert read_transcript(session_id, OWNER, "es", "vtt")[1] == "WEBVTT\n"
    # And once the session item is gone too, the session is not found
    tables.client.delete_item(TableName=tables.sessions, Key={"sessionId": {"S": session_id}})
    assert refusal(lambda: read_transcript(session_id, OWNER, "es", "vtt")) == ("SESSION_NOT_FOUND", "sessionId")


def test_a_failed_write_is_counted_and_logged(tables, gateway, monkeypatch, capsys, caplog) -> None:
    session_id, _speaker = create_session()
    session = session_of(session_id)

    def refused(_repository: TranscriptsRepository, _entries: Any) -> Any:
        raise ServiceError(ErrorCode.SERVICE_UNAVAILABLE, "busy")

    monkeypatch.setattr(TranscriptsRepository, "put_all", refused)
    capsys.readouterr()
    with SegmentDelivery(StandInTranslator) as delivery:
        delivery(session, final(1), 1_000)
    assert published_counts(capsys)[telemetry.TRANSCRIPT_WRITE_FAILURES] == 1
    assert any(r.getMessage() == "transcript segments not recorded" for r in caplog.records)
    assert tables.transcripts_items() == []


def test_entries_round_trip_through_their_items() -> None:
    entry = TranscriptEntry("golden-eagle-427", 1, "user-1", "en", "abc.r1-0", 2, 0, 3, 4, {"en": "Hi"}, 5)
    assert TranscriptEntry.from_item(entry.to_item()) == entry


def test_a_final_the_recognizer_says_only_when_a_long_quiet_stream_closes_is_captioned_and_recorded_once(
    tables, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the consumer's default idle time (a stream open for a minute of silence after the speech), and a
    # recognizer whose final comes only when its stream closes: the segment is flushed as an orphan after 15 s
    monkeypatch.setattr(limits, "TRANSCRIBER_IDLE_SECONDS", 60)
    session_id, speaker = create_session()
    listener = join(session_id, "es")
    say(speaker, ["Hello", "there."])
    # When the consumer runs until it is idle
    transcribe(session_id)
    # Then the Spanish listener got the segment's final once (not again when the stream closed, 45 s later)
    finals = [m for m in gateway.messages_to(listener) if m.get("type") == "caption" and not m["isPartial"]]
    assert [(m["segmentId"].rsplit(".", 1)[1], m["text"]) for m in finals] == [("r1-0", "[es] Hello there.")]
    # And the transcript holds it once
    assert [cue.text for cue in vtt(session_id, "es")] == ["[es] Hello there."]


def test_the_consumer_lets_go_of_its_lease_only_once_its_last_segments_speech_and_record_are_done(
    tables, gateway, speech, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a synthesizer and a transcript store that take their time, and a Spanish listener
    session_id, speaker = create_session()
    join(session_id, "es")
    slow_synthesis = speech.synthesizer.synthesize

    def synthesize(text: str, language: str) -> Any:
        threading.Event().wait(0.3)
        return slow_synthesis(text, language)

    monkeypatch.setattr(speech.synthesizer, "synthesize", synthesize)
    seen_at_release: list[tuple[int, int]] = []
    release = runtime.sessions().release_transcriber_lease

    def released(*args: Any, **kwargs: Any) -> Any:
        seen_at_release.append((len(speech.store.puts), len(tables.transcripts_items())))
        return release(*args, **kwargs)

    monkeypatch.setattr(runtime.sessions(), "release_transcriber_lease", released)
    say(speaker, ["Hello", "there."])
    # When the consumer delivers the segment and stops
    transcribe(session_id)
    # Then, when it let go of its lease, the segment's speech was stored and its transcript record written
    assert seen_at_release == [(1, 1)]
