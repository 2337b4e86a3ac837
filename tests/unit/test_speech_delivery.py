"""Speech (decision record 0039): each final segment's caption spoken once per language with listeners who want
audio, numbered per session and language, to those listeners only; the listener's output choice and playback pause;
through the consumer's delivery, on moto tables, the recording ``@connections`` fake and the in-memory synthesizer
and audio store (the ``speech`` fixture)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from lambda_src import runtime
from lambda_src.adapters.translation.stand_in import StandInTranslator
from lambda_src.app.transcription.delivery import SegmentDelivery
from lambda_src.contract import limits, telemetry
from lambda_src.model.partial_result_processor import Segment
from lambda_src.model.session import Session
from tests.support.helpers import DynamoDBRequests, body_of
from tests.unit.conftest import Speech
from tests.unit.flows import SESSION_ID, connect_with, error_of, join, plain, send
from tests.unit.test_captions import published_counts

LEASE_ID = "lease-1"
WINDOW_MS = limits.CAPTION_AUDIENCE_CACHE_SECONDS * 1000 + 1
AUDIO_KEYS = {
    "type",
    "sessionId",
    "targetLanguage",
    "url",
    "timestamp",
    "duration",
    "sequenceNumber",
    "transcript",
    "segmentId",
}


def final(n: int, text: str | None = None) -> Segment:
    return Segment(
        segment_id=f"s.{n}", text=text or f"Sentence number {n}", is_partial=False, stability=None, start_time=float(n)
    )


def partial(n: int) -> Segment:
    return Segment(segment_id=f"s.{n}", text=f"Sentence num {n}", is_partial=True, stability=0.5, start_time=float(n))


def live_session(tables, **overrides: Any) -> Session:
    """An English session whose transcription consumer holds the lease ``LEASE_ID``, as the consumer reads it."""
    now_ms = time.time_ns() // 1_000_000
    tables.put_session(
        sessionId=SESSION_ID,
        sourceLanguage="en",
        transcriberLeaseId=LEASE_ID,
        transcriberLeaseUntil=now_ms + 60_000,
        **overrides,
    )
    session = runtime.sessions().get(SESSION_ID, None)
    assert session is not None
    return session


def listener(language: str, output: str | None = None) -> str:
    query = {"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": language}
    connection_id, response = connect_with(query | ({"output": output} if output else {}))
    assert response["statusCode"] == 200, response
    return connection_id


def of_type(gateway, connection_id: str, kind: str) -> list[dict[str, Any]]:
    return [message for message in gateway.messages_to(connection_id) if message["type"] == kind]


def audio_to(gateway, connection_id: str) -> list[dict[str, Any]]:
    return of_type(gateway, connection_id, "translatedAudio")


def deliver(session: Session, segments: list[Segment], start_ms: int, step_ms: int = WINDOW_MS) -> None:
    """One consumer's delivery of ``segments``, ``step_ms`` apart; returns once its speech is done."""
    with SegmentDelivery(StandInTranslator) as delivery:
        for n, segment in enumerate(segments):
            delivery(session, segment, start_ms + n * step_ms)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_a_final_is_spoken_once_per_language_whatever_the_number_of_listeners(tables, gateway, speech: Speech) -> None:
    # Given three Spanish listeners, two German and one English (the source language)
    session = live_session(tables)
    audience = {
        "es": [listener("es") for _ in range(3)],
        "de": [listener("de") for _ in range(2)],
        "en": [listener("en")],
    }
    # When a partial and then its final are delivered
    deliver(session, [partial(1), final(1)], now_ms(), step_ms=1)
    # Then each language was synthesized once, of the final only, and stored under its key
    assert speech.synthesizer.languages_spoken() == ["de", "en", "es"]
    assert sorted(speech.store.puts) == [f"audio/{SESSION_ID}/{language}/s.1.mp3" for language in ("de", "en", "es")]
    # And every listener got exactly one translatedAudio, of its language, saying the final caption it got
    for language, listeners in audience.items():
        for connection_id in listeners:
            (audio,) = audio_to(gateway, connection_id)
            captions = [c for c in of_type(gateway, connection_id, "caption") if not c["isPartial"]]
            assert set(audio) == AUDIO_KEYS
            assert (audio["targetLanguage"], audio["sequenceNumber"], audio["segmentId"]) == (language, 1, "s.1")
            assert audio["transcript"] == captions[0]["text"]
            assert audio["url"] == speech.store.url(
                f"audio/{SESSION_ID}/{language}/s.1.mp3", limits.AUDIO_URL_EXPIRY_SECONDS
            )
            assert audio["duration"] == pytest.approx(len(audio["transcript"]) / 10)
    # And the caption's own translation was spoken (no second translation)
    assert ("Sentence number 1", "en") in speech.synthesizer.spoken


def test_nothing_is_spoken_for_a_language_whose_listeners_all_want_captions_only(
    tables, gateway, speech: Speech
) -> None:
    # Given German listeners who want captions only, and a Spanish one who wants audio only
    session = live_session(tables)
    german = [listener("de", "captions"), listener("de", "captions")]
    spanish = listener("es", "audio")
    deliver(session, [partial(1), final(1)], now_ms(), step_ms=1)
    # Then German was never synthesized; its listeners got their captions and no audio
    assert speech.synthesizer.languages_spoken() == ["es"]
    for connection_id in german:
        assert audio_to(gateway, connection_id) == []
        assert len(of_type(gateway, connection_id, "caption")) == 2
    # And the Spanish listener got the audio and no caption (not even its partial)
    assert [a["sequenceNumber"] for a in audio_to(gateway, spanish)] == [1]
    assert of_type(gateway, spanish, "caption") == []


@pytest.mark.parametrize("state", [{"isPaused": True}, {"isMuted": True}, {"volume": 0}])
def test_a_paused_or_muted_broadcast_is_not_synthesized(tables, gateway, speech: Speech, state: dict) -> None:
    session = live_session(tables, **state)
    spanish = listener("es")
    deliver(session, [final(1)], now_ms())
    assert speech.synthesizer.spoken == []
    assert speech.store.puts == []
    assert audio_to(gateway, spanish) == []
    assert "audioSequence:es" not in tables.session(SESSION_ID)


def test_a_paused_listener_gets_no_audio_and_none_is_owed_after_it_resumes(tables, gateway, speech: Speech) -> None:
    session = live_session(tables)
    paused, other = listener("es"), listener("es")
    assert body_of(send({"action": "pausePlayback"}, paused))["type"] == "playbackPaused"
    start = now_ms()
    with SegmentDelivery(StandInTranslator) as delivery:
        # When a segment is spoken while it is paused
        delivery(session, final(1), start)
        # And another after it resumed (seen at the next audience window)
        assert body_of(send({"action": "resumePlayback"}, paused))["type"] == "playbackResumed"
        delivery(session, final(2), start + WINDOW_MS)
    # Then the paused listener got only the second (its captions went on), the other both
    assert [a["sequenceNumber"] for a in audio_to(gateway, paused)] == [2]
    assert [c["segmentId"] for c in of_type(gateway, paused, "caption")] == ["s.1", "s.2"]
    assert [a["sequenceNumber"] for a in audio_to(gateway, other)] == [1, 2]


def test_a_language_change_is_spoken_from_the_next_segment(tables, gateway, speech: Speech) -> None:
    session = live_session(tables)
    changing, german = listener("es"), listener("de")
    start = now_ms()
    with SegmentDelivery(StandInTranslator) as delivery:
        delivery(session, final(1), start)
        assert body_of(send({"action": "changeLanguage", "targetLanguage": "de"}, changing))["type"] == (
            "languageChanged"
        )
        delivery(session, final(2), start + WINDOW_MS)
    assert [(a["targetLanguage"], a["sequenceNumber"]) for a in audio_to(gateway, changing)] == [("es", 1), ("de", 2)]
    assert [(a["targetLanguage"], a["sequenceNumber"]) for a in audio_to(gateway, german)] == [("de", 1), ("de", 2)]
    # Spanish, with no listener left, was spoken once
    assert speech.synthesizer.languages_spoken() == ["de", "de", "es"]


def test_sequence_numbers_run_on_per_language_across_segments_and_consumers(tables, gateway, speech: Speech) -> None:
    session = live_session(tables)
    spanish = listener("es")
    german = listener("de")
    start = now_ms()
    # When one consumer speaks three segments (German joined the audience only for the last two)...
    with SegmentDelivery(StandInTranslator) as delivery:
        assert body_of(send({"action": "setOutput", "output": "captions"}, german))["type"] == "outputSet"
        delivery(session, final(1), start)
        assert body_of(send({"action": "setOutput", "output": "both"}, german))["type"] == "outputSet"
        delivery(session, final(2), start + WINDOW_MS)
        delivery(session, final(3), start + 2 * WINDOW_MS)
    # ...and its successor (another invocation: nothing in memory is shared) two more
    deliver(session, [final(4), final(5)], start + 3 * WINDOW_MS)
    # Then each language's numbers are consecutive from 1, carried by the session item
    assert [a["sequenceNumber"] for a in audio_to(gateway, spanish)] == [1, 2, 3, 4, 5]
    assert [a["sequenceNumber"] for a in audio_to(gateway, german)] == [1, 2, 3, 4]
    item = tables.session(SESSION_ID)
    assert (item["audioSequence:es"], item["audioSequence:de"]) == (5, 4)


def test_a_consumer_that_lost_its_lease_speaks_nothing(tables, gateway, speech: Speech) -> None:
    session = live_session(tables)
    spanish = listener("es")
    # Given a successor took the lease since this consumer read the session
    tables.put_session(sessionId=SESSION_ID, sourceLanguage="en", transcriberLeaseId="successor")
    deliver(session, [final(1)], now_ms())
    # Then its caption went out, but no audio was numbered or posted
    assert len(of_type(gateway, spanish, "caption")) == 1
    assert audio_to(gateway, spanish) == []
    assert "audioSequence:es" not in tables.session(SESSION_ID)


def test_a_failed_synthesis_skips_that_language_keeps_the_captions_and_is_counted(
    tables, gateway, speech: Speech, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a synthesizer that fails in German
    session = live_session(tables)
    speech.synthesizer.failing = {"de"}
    spanish, german = listener("es"), listener("de")
    capsys.readouterr()
    deliver(session, [final(1), final(2)], now_ms())
    # Then German listeners got their captions and no audio; Spanish ones both, with no gap in the numbers
    assert [c["segmentId"] for c in of_type(gateway, german, "caption")] == ["s.1", "s.2"]
    assert audio_to(gateway, german) == []
    assert [a["sequenceNumber"] for a in audio_to(gateway, spanish)] == [1, 2]
    # And nothing was stored or numbered for German; each failure counted once per segment and language
    assert all("/de/" not in key for key in speech.store.puts)
    assert "audioSequence:de" not in tables.session(SESSION_ID)
    assert published_counts(capsys)[telemetry.SYNTHESIS_FAILURES] == 2


def test_a_language_without_a_voice_gets_captions_only_and_no_error_per_segment(
    tables, gateway, speech: Speech, capsys: pytest.CaptureFixture[str]
) -> None:
    session = live_session(tables)
    speech.synthesizer.voices = {"es"}
    japanese = listener("ja")
    capsys.readouterr()
    deliver(session, [final(1), final(2)], now_ms())
    assert [c["segmentId"] for c in of_type(gateway, japanese, "caption")] == ["s.1", "s.2"]
    assert audio_to(gateway, japanese) == []
    assert ("Sentence number 1", "ja") not in speech.synthesizer.spoken
    assert published_counts(capsys)[telemetry.SYNTHESIS_FAILURES] == 0


def test_a_listener_wanting_audio_only_in_a_language_without_a_voice_gets_its_captions(
    tables, gateway, speech: Speech
) -> None:
    # Given a voice for Spanish only, and listeners who want audio only in Japanese and in Spanish
    session = live_session(tables)
    speech.synthesizer.voices = {"es"}
    japanese, spanish = listener("ja", "audio"), listener("es", "audio")
    deliver(session, [partial(1), final(1)], now_ms())
    # Then the Japanese listener (told audioUnavailable at join) gets the captions, partials too, and no audio
    assert [c["isPartial"] for c in of_type(gateway, japanese, "caption")] == [True, False]
    assert audio_to(gateway, japanese) == []
    # And the Spanish one gets what it asked for: audio, no caption
    assert of_type(gateway, spanish, "caption") == []
    assert [a["sequenceNumber"] for a in audio_to(gateway, spanish)] == [1]


def test_without_a_synthesizer_configured_listeners_get_captions_only(
    tables, gateway, caplog: pytest.LogCaptureFixture
) -> None:
    # Given no synthesizer and no audio store (the runtime's placeholders)
    session = live_session(tables)
    spanish, audio_only = listener("es"), listener("es", "audio")
    deliver(session, [final(1), final(2)], now_ms())
    # Then the captions went out, to the listener who asked for audio only too, nothing else, nothing numbered
    assert [m["type"] for m in gateway.messages_to(spanish)] == ["caption", "caption"]
    assert [m["type"] for m in gateway.messages_to(audio_only)] == ["caption", "caption"]
    assert "audioSequence:es" not in tables.session(SESSION_ID)


def test_speaking_a_segment_costs_one_counter_write_one_put_per_language_and_a_post_per_listener(
    tables, gateway, speech: Speech
) -> None:
    session = live_session(tables)
    listeners = [listener(language) for language in ("es", "es", "es", "de", "de", "fr")]
    start = now_ms()
    with SegmentDelivery(StandInTranslator) as delivery:
        delivery(session, partial(0), start)  # the audience (and the listeners' choices) read for this window
        with DynamoDBRequests() as requests:
            delivery(session, final(1), start + 1)
            delivery._speech.close()  # its speech done
    # One UpdateItem for all three languages' numbers (plus the transcript's batched write); one put per language
    assert requests.by_operation.get("UpdateItem") == 1
    assert set(requests.by_operation) <= {"UpdateItem", "BatchWriteItem"}
    assert len(speech.store.puts) == 3
    assert sum(len(audio_to(gateway, c)) for c in listeners) == len(listeners)


# -- the listener's output choice ------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", ["audio", "captions", "both"])
def test_the_output_is_chosen_at_join_on_the_url_and_by_message(tables, output: str) -> None:
    tables.put_session(sessionId=SESSION_ID)
    on_url = listener("es", output)
    by_message = plain()
    body = {"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es", "output": output}
    assert body_of(send(body, by_message))["type"] == "sessionJoined"
    for connection_id in (on_url, by_message):
        row = runtime.connections().get(connection_id)
        assert row is not None and row.output == output


def test_a_listener_that_says_nothing_gets_both(tables) -> None:
    tables.put_session(sessionId=SESSION_ID)
    row = tables.connection(join())
    assert row is not None and "output" not in row
    assert runtime.connections().get(row["connectionId"]).output == "both"  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["speech", "", 3, None, "AUDIO"])
def test_a_bad_output_is_refused_naming_the_field_and_nothing_is_written(tables, value: Any) -> None:
    tables.put_session(sessionId=SESSION_ID)
    member = join()
    before_rows, before_session = tables.connections_items(), tables.session(SESSION_ID)
    # setOutput
    answer = body_of(send({"action": "setOutput", "output": value}, member))
    assert (answer["type"], answer["code"], answer["field"]) == ("error", "INVALID_PARAMETERS", "output")
    # joinSession, on the URL and as a message (None: the message sends JSON null)
    if value is not None:
        query = {"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es", "output": str(value)}
        _connection, response = connect_with(query)
        assert response["statusCode"] == 400
        assert json.loads(response["body"])["field"] == "output"
    body = {"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es", "output": value}
    assert body_of(send(body, plain()))["field"] == "output"
    # Then nothing was written: the rows are the member's and the plain connections', the count unchanged
    assert [
        row for row in tables.connections_items() if row["connectionId"] in {r["connectionId"] for r in before_rows}
    ] == before_rows
    assert tables.session(SESSION_ID) == before_session


def test_set_output_without_output_names_the_field(tables) -> None:
    tables.put_session(sessionId=SESSION_ID)
    answer = body_of(send({"action": "setOutput"}, join()))
    assert (answer["code"], answer["field"]) == ("INVALID_PARAMETERS", "output")


def test_set_output_is_a_listeners_own(tables) -> None:
    tables.put_session(sessionId=SESSION_ID)
    assert error_of(send({"action": "setOutput", "output": "audio"}, plain())) == (404, "SESSION_NOT_FOUND")


def test_set_output_stores_the_choice_and_both_removes_it(tables) -> None:
    tables.put_session(sessionId=SESSION_ID)
    member = join()
    reply = body_of(send({"action": "setOutput", "output": "audio"}, member))
    assert (reply["type"], reply["sessionId"], reply["output"]) == ("outputSet", SESSION_ID, "audio")
    assert tables.connection(member)["output"] == "audio"
    body_of(send({"action": "setOutput", "output": "both"}, member))
    assert "output" not in tables.connection(member)


# -- audioUnavailable --------------------------------------------------------------------------------------------------
def test_a_listener_wanting_audio_in_a_language_without_a_voice_is_told_once(tables, gateway, speech: Speech) -> None:
    tables.put_session(sessionId=SESSION_ID)
    speech.synthesizer.voices = {"es", "de"}
    # On the URL: after its sessionJoined (the welcome function posts the row's messages in order)
    on_url = listener("ja")
    row = runtime.connections().get(on_url)
    assert row is not None
    assert [json.loads(message)["type"] for message in row.welcome_then] == ["audioUnavailable"]
    assert json.loads(row.welcome_then[0])["targetLanguage"] == "ja"
    # By message: posted before the reply; captions only says nothing
    by_message = plain()
    send({"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "ja"}, by_message)
    assert gateway.types_to(by_message) == ["audioUnavailable"]
    captions_only = listener("ja", "captions")
    assert runtime.connections().get(captions_only).welcome_then == ()  # type: ignore[union-attr]
    # Changing to such a language, or asking for audio in it, tells it; a language with a voice does not
    spanish = listener("es")
    send({"action": "changeLanguage", "targetLanguage": "ja"}, spanish)
    send({"action": "changeLanguage", "targetLanguage": "de"}, spanish)
    send({"action": "setOutput", "output": "captions"}, captions_only)
    send({"action": "setOutput", "output": "audio"}, captions_only)
    assert gateway.types_to(spanish) == ["audioUnavailable"]
    assert gateway.types_to(captions_only) == ["audioUnavailable"]


def test_without_a_synthesizer_configured_nobody_is_told_anything(tables, gateway) -> None:
    tables.put_session(sessionId=SESSION_ID)
    member = listener("ja")
    assert runtime.connections().get(member).welcome_then == ()  # type: ignore[union-attr]
    send({"action": "setOutput", "output": "audio"}, member)
    assert gateway.types_to(member) == []
