"""The client library (``session_client``): every server message typed, and the connection logic — replies and
pushes, refresh, a speaker's resume, a listener's rejoin with backoff, heartbeats, closing — against a fake service
whose sockets follow a script."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import wave
from pathlib import Path
from typing import Any

import pytest

from lambda_src.contract import limits, partial_result_fields, routes, wire
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.contract.limits import SAMPLE_RATE_HZ
from lambda_src.protocol import messages
from session_client import cli
from session_client.audio import UnsupportedAudio, chunk_bytes, wav_chunks
from session_client.clients import ListenerClient, SpeakerClient
from session_client.connection import Backoff, ConnectionLost, HandshakeRefused, ServiceRefused
from session_client.messages import (
    MESSAGE_CLASSES,
    BroadcastSettings,
    ErrorMessage,
    LanguageCount,
    MessageFormatError,
    ServerMessage,
    SessionStatus,
    UnknownMessage,
    attribute_name,
    parse,
    wire_name,
)
from tests.unit.scripted_service import (
    CREATED,
    JOINED,
    REJOINED,
    RESUMED,
    TOKEN,
    URL,
    FakeService,
    FakeTime,
    eventually,
    options,
    run,
)
from tests.unit.server_samples import NOW_MS, SESSION, SESSION_ID, every_sample


# -- typed messages ---------------------------------------------------------------------------------------------
def test_the_client_has_a_type_for_every_server_message_and_no_other() -> None:
    assert set(MESSAGE_CLASSES) == set(messages.SERVER_MESSAGE_TYPES)


def test_every_message_the_service_builds_parses_into_its_type_with_every_field_known() -> None:
    samples = every_sample()
    assert {sample["type"] for sample in samples} == set(MESSAGE_CLASSES)
    for sample in samples:
        parsed = parse(json.dumps(sample))
        assert type(parsed) is MESSAGE_CLASSES[sample["type"]]
        assert parsed.type == sample["type"]
        assert parsed.extra == {}, sample
        for name, value in sample.items():
            if name != "type":
                assert as_sent(getattr(parsed, attribute_name(name))) == value, (sample["type"], name)


def as_sent(value: Any) -> Any:
    """A parsed value in the form the service sent it: nested dataclasses as their fields by wire name, tuples as
    lists."""
    if isinstance(value, ServerMessage):
        return {
            wire_name(f.name): as_sent(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "extra"
        }
    if isinstance(value, tuple):
        return [as_sent(item) for item in value]
    return value


def test_a_status_carries_its_broadcast_state_typed() -> None:
    status = parse(json.dumps(messages.session_status(SESSION, {"es": 2}, NOW_MS, wire.STATUS_PERIODIC)))
    assert status.broadcast_state == BroadcastSettings(is_paused=True, is_muted=False, volume=0.4)  # type: ignore[attr-defined]
    assert status.listeners_by_language == {"es": 2}  # type: ignore[attr-defined]


def test_a_status_carries_its_language_distribution_largest_audience_first() -> None:
    # Given a status of three languages, two of them with as many listeners
    sent = messages.session_status(SESSION, {"fr": 1, "es": 3, "de": 1}, NOW_MS, wire.STATUS_REQUESTED)
    # Then the distribution the original speaker app reads holds the same counts, largest first, then by code
    assert sent["languageDistribution"] == [
        {"languageCode": "es", "count": 3},
        {"languageCode": "de", "count": 1},
        {"languageCode": "fr", "count": 1},
    ]
    # And the client library reads it typed
    status = parse(json.dumps(sent))
    assert isinstance(status, SessionStatus)
    assert status.language_distribution == (LanguageCount("es", 3), LanguageCount("de", 1), LanguageCount("fr", 1))
    # And an empty audience is an empty list, never absent
    assert messages.session_status(SESSION, {}, NOW_MS, wire.STATUS_PERIODIC)["languageDistribution"] == []


def test_an_unknown_type_is_kept_whole_and_unknown_fields_go_to_extra() -> None:
    unknown = parse('{"type":"somethingNew","a":1}')
    assert isinstance(unknown, UnknownMessage)
    assert (unknown.type, unknown.extra) == ("somethingNew", {"a": 1})
    ack = parse(json.dumps({"type": "heartbeatAck", "timestamp": 5, "addedLater": True}))
    assert (ack.timestamp, ack.extra) == (5, {"addedLater": True})  # type: ignore[attr-defined]


@pytest.mark.parametrize("frame", ["not json", "[1]", '{"type":3}', '{"no":"type"}', '{"type":"sessionLeft"}'])
def test_a_frame_that_is_not_a_complete_server_message_is_a_format_error(frame: str) -> None:
    with pytest.raises(MessageFormatError):
        parse(frame)


def test_an_error_message_names_its_catalogue_entry() -> None:
    error = parse(json.dumps({"type": "error", "code": "SESSION_FULL", "message": "full", "timestamp": 1}))
    assert isinstance(error, ErrorMessage)
    assert error.error_code is ErrorCode.SESSION_FULL
    assert parse('{"type":"error","code":"NEWER_CODE","message":"m","timestamp":1}').error_code is None  # type: ignore[attr-defined]


# -- against a scripted service (tests/unit/scripted_service.py) ------------------------------------------------
@pytest.mark.parametrize("order", ["declared", "reversed"])
def test_create_session_puts_the_partial_result_settings_on_the_url(
    order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The settings are named, not placed: however the fields' table is ordered, each value goes to its own field.
    if order == "reversed":
        monkeypatch.setattr(partial_result_fields, "FIELDS", tuple(reversed(partial_result_fields.FIELDS)))

    async def scenario() -> None:
        service = FakeService(CREATED)
        speaker = await SpeakerClient.create(
            URL,
            token=TOKEN,
            source_language="en",
            quality_tier="premium",
            partial_results_enabled=False,
            min_stability=0.9,
            max_buffer_timeout=3,
            **options(service),
        )
        assert service.queries == [
            {
                "action": routes.CREATE_SESSION,
                "sourceLanguage": "en",
                "qualityTier": "premium",
                "partialResults": "false",
                "minStability": "0.9",
                "maxBufferTimeout": "3",
                "token": TOKEN,
            }
        ]
        assert (speaker.session_id, speaker.connection_id) == (SESSION_ID, "speaker-1")
        await speaker.close()

    run(scenario)


def test_a_reply_answers_its_request_and_pushed_messages_go_to_the_stream() -> None:
    async def scenario() -> None:
        service = FakeService(CREATED)
        periodic = messages.session_status(SESSION, {}, NOW_MS, wire.STATUS_PERIODIC)
        service.replies[routes.PAUSE_BROADCAST] = lambda _: [
            periodic,
            messages.broadcast_state(SESSION_ID, SESSION.broadcast, 1),
        ]
        service.replies[routes.GET_SESSION_STATUS] = lambda _: [
            periodic,
            messages.session_status(SESSION, {"es": 2}, NOW_MS, wire.STATUS_REQUESTED),
        ]
        speaker = await SpeakerClient.create(URL, token=TOKEN, **options(service))
        paused = await speaker.pause_broadcast()
        status = await speaker.status()
        assert (paused.type, paused.is_paused) == ("broadcastState", True)
        assert (status.update_reason, status.listeners_by_language) == ("requested", {"es": 2})
        pushed = [await speaker.next_message(timeout=1), await speaker.next_message(timeout=1)]
        assert [(m.type, m.update_reason) for m in pushed] == [("sessionStatus", "periodic")] * 2  # type: ignore[attr-defined]
        # And each speaker action names the session
        assert service.sockets[0].sent == [
            {"action": "pauseBroadcast", "sessionId": SESSION_ID},
            {"action": "getSessionStatus", "sessionId": SESSION_ID},
        ]
        await speaker.close()

    run(scenario)


def test_an_error_reply_raises_with_its_code() -> None:
    async def scenario() -> None:
        service = FakeService(CREATED)
        service.replies[routes.SET_VOLUME] = lambda body: [
            {"type": "error", "code": "INVALID_PARAMETERS", "message": "bad", "field": "volumeLevel", "timestamp": 1}
        ]
        speaker = await SpeakerClient.create(URL, token=TOKEN, **options(service))
        with pytest.raises(ServiceRefused) as refused:
            await speaker.set_volume(7)
        assert (refused.value.error.error_code, refused.value.error.field) == (
            ErrorCode.INVALID_PARAMETERS,
            "volumeLevel",
        )
        assert service.sockets[0].sent == [{"action": "setVolume", "sessionId": SESSION_ID, "volumeLevel": 7}]
        await speaker.close()

    run(scenario)


def test_an_error_refusing_another_action_goes_to_the_stream_and_not_to_the_waiting_request() -> None:
    async def scenario() -> None:
        service = FakeService(CREATED)
        chunk_refused = ServiceError(ErrorCode.SESSION_ENDED, "ended").to_message(NOW_MS, routes.SEND_AUDIO)
        # A chunk in flight is refused (the end overtook it) before the end's own reply arrives
        service.replies[routes.END_SESSION] = lambda _: [
            chunk_refused,
            messages.session_ended(SESSION_ID, wire.ENDED_BY_SPEAKER, NOW_MS),
        ]
        speaker = await SpeakerClient.create(URL, token=TOKEN, **options(service))
        assert (await speaker.end()).reason == wire.ENDED_BY_SPEAKER
        assert [(m.type, m.action) async for m in speaker] == [("error", routes.SEND_AUDIO)]  # type: ignore[attr-defined]

    run(scenario)


@pytest.mark.parametrize("action", [routes.END_SESSION, None], ids=["naming-it", "naming-none"])
def test_an_error_refusing_the_waiting_request_or_naming_no_action_answers_it(action: str | None) -> None:
    async def scenario() -> None:
        service = FakeService(CREATED)
        service.replies[routes.END_SESSION] = lambda _: [
            ServiceError(ErrorCode.SERVICE_UNAVAILABLE, "busy", retry_after=1).to_message(NOW_MS, action)
        ]
        speaker = await SpeakerClient.create(URL, token=TOKEN, **options(service))
        with pytest.raises(ServiceRefused) as refused:
            await speaker.end()
        assert (refused.value.error.code, refused.value.error.action) == ("SERVICE_UNAVAILABLE", action)
        await speaker.close()

    run(scenario)


def test_send_audio_numbers_the_chunks_and_base64_encodes_them() -> None:
    async def scenario() -> None:
        service = FakeService(CREATED)
        speaker = await SpeakerClient.create(URL, token=TOKEN, **options(service))
        numbers = [await speaker.send_audio(b"\x01\x00" * 100) for _ in range(2)]
        assert numbers == [0, 1]
        second = service.sockets[0].sent[1]
        assert (second["action"], second["sessionId"], second["sequenceNumber"]) == ("sendAudio", SESSION_ID, 1)
        assert base64.b64decode(second["audioData"], validate=True) == b"\x01\x00" * 100
        await speaker.close()

    run(scenario)


def test_refresh_required_moves_a_speaker_to_a_refreshed_connection_and_closes_the_old_one() -> None:
    async def scenario() -> None:
        complete = messages.connection_refresh_complete(SESSION, "speaker", None, "speaker-2", NOW_MS)
        service = FakeService(CREATED, complete)
        service.replies[routes.HEARTBEAT] = lambda _: [
            messages.connection_refresh_required(20, NOW_MS),
            messages.heartbeat_ack(NOW_MS),
        ]
        speaker = await SpeakerClient.create(URL, token=TOKEN, **options(service))
        await speaker.heartbeat()
        await eventually(lambda: speaker.connection_id == "speaker-2")
        old, new = service.sockets
        new.push(messages.state_restored(SESSION_ID, SESSION.broadcast, NOW_MS))
        # Then the refresh named the session, the role and the owner's token, and the old connection is closed
        assert service.queries[1] == {
            "action": "refreshConnection",
            "sessionId": SESSION_ID,
            "role": "speaker",
            "token": TOKEN,
        }
        await eventually(lambda: old.closed)
        # And the notice and the restored state are in the stream; requests go on the new connection
        assert (await speaker.next_message(timeout=1)).type == "connectionRefreshRequired"
        assert (await speaker.next_message(timeout=1)).type == "stateRestored"
        service.replies[routes.HEARTBEAT] = lambda _: [messages.heartbeat_ack(NOW_MS)]
        await speaker.heartbeat()
        assert new.sent == [{"action": "heartbeat"}]
        assert speaker.is_open
        await speaker.close()

    run(scenario)


def test_a_listener_refresh_names_its_previous_connection_and_language() -> None:
    async def scenario() -> None:
        complete = messages.connection_refresh_complete(SESSION, "listener", "fr", "listener-2", NOW_MS)
        service = FakeService(JOINED, complete)
        service.replies[routes.CHANGE_LANGUAGE] = lambda body: [
            messages.language_changed(SESSION_ID, body["targetLanguage"], NOW_MS)
        ]
        listener = await ListenerClient.join(URL, session_id=SESSION_ID, language="es", **options(service))
        await listener.change_language("fr")
        service.sockets[0].push(messages.connection_warning(14, NOW_MS))
        await eventually(lambda: listener.connection_id == "listener-2")
        assert service.queries[1] == {
            "action": "refreshConnection",
            "sessionId": SESSION_ID,
            "role": "listener",
            "targetLanguage": "fr",
            "previousConnectionId": "listener-1",
        }
        await listener.close()

    run(scenario)


def test_a_dropped_speaker_resumes_its_session_after_backing_off() -> None:
    async def scenario() -> None:
        time = FakeTime()
        service = FakeService(CREATED, HandshakeRefused(503), OSError("connection refused"), RESUMED)
        speaker = await SpeakerClient.create(URL, token=TOKEN, **options(service, time))
        service.sockets[0].drop()
        await eventually(lambda: speaker.connection_id == "speaker-2")
        assert time.waits == [0.5, 1.0]
        assert service.queries[1:] == [{"action": "resumeSession", "sessionId": SESSION_ID, "token": TOKEN}] * 3
        assert speaker.is_open and speaker.failure is None
        await speaker.close()

    run(scenario)


def test_a_dropped_speaker_gives_up_when_its_grace_window_would_close() -> None:
    async def scenario() -> None:
        time = FakeTime()
        service = FakeService(CREATED, *[HandshakeRefused(503)] * 10)
        speaker = await SpeakerClient.create(URL, token=TOKEN, resume_window=3.0, **options(service, time))
        service.sockets[0].drop()
        # Then it waits 0.5 and 1 s, and not the 2 s that would end past the 3 s window; the stream ends
        assert [m async for m in speaker] == []
        assert time.waits == [0.5, 1.0]
        assert isinstance(speaker.failure, ConnectionLost)
        assert not speaker.is_open

    run(scenario)


def test_a_dropped_speaker_stops_at_once_when_the_session_has_ended() -> None:
    async def scenario() -> None:
        time = FakeTime()
        service = FakeService(CREATED, HandshakeRefused(410))
        speaker = await SpeakerClient.create(URL, token=TOKEN, **options(service, time))
        service.sockets[0].drop()
        assert [m async for m in speaker] == []
        assert (time.waits, len(service.queries)) == ([], 2)
        assert isinstance(speaker.failure, ConnectionLost)

    run(scenario)


def test_a_dropped_listener_joins_again_with_backoff() -> None:
    async def scenario() -> None:
        time = FakeTime()
        service = FakeService(JOINED, HandshakeRefused(503), HandshakeRefused(429), REJOINED)
        listener = await ListenerClient.join(URL, session_id=SESSION_ID, language="es", **options(service, time))
        service.sockets[0].drop()
        await eventually(lambda: listener.connection_id == "listener-2")
        assert time.waits == [0.5, 1.0]
        assert service.queries[1:] == [{"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"}] * 3
        assert listener.joined is not None and listener.joined.connection_id == "listener-2"
        await listener.close()

    run(scenario)


def test_a_dropped_listener_gives_up_after_its_attempts() -> None:
    async def scenario() -> None:
        time = FakeTime()
        service = FakeService(JOINED, *[HandshakeRefused(503)] * 5)
        listener = await ListenerClient.join(
            URL, session_id=SESSION_ID, language="es", reconnect_attempts=3, **options(service, time)
        )
        service.sockets[0].drop()
        assert [m async for m in listener] == []
        assert (time.waits, len(service.queries)) == ([0.5, 1.0], 4)
        assert isinstance(listener.failure, ConnectionLost)

    run(scenario)


def test_a_listener_told_the_session_ended_does_not_reconnect_and_its_stream_ends() -> None:
    async def scenario() -> None:
        service = FakeService(JOINED, REJOINED)
        listener = await ListenerClient.join(URL, session_id=SESSION_ID, language="es", **options(service))
        socket = service.sockets[0]
        socket.push(messages.session_event("broadcastPaused", SESSION_ID, NOW_MS))
        socket.push(messages.session_ended(SESSION_ID, wire.ENDED_BY_SPEAKER, NOW_MS))
        socket.drop()
        assert [m.type async for m in listener] == ["broadcastPaused", "sessionEnded"]
        assert (len(service.queries), listener.failure) == (1, None)

    run(scenario)


def test_the_heartbeat_timer_sends_heartbeats_until_closed() -> None:
    async def scenario() -> None:
        service = FakeService(JOINED)
        service.replies[routes.HEARTBEAT] = lambda _: [messages.heartbeat_ack(NOW_MS)]
        listener = await ListenerClient.join(
            URL, session_id=SESSION_ID, language="es", **options(service, heartbeat_interval=0.01, sleep=asyncio.sleep)
        )
        await eventually(lambda: len(service.sockets[0].sent) >= 3)
        await listener.close()
        sent = len(service.sockets[0].sent)
        await asyncio.sleep(0.05)
        assert service.sockets[0].sent == [{"action": "heartbeat"}] * sent
        assert service.sockets[0].closed

    run(scenario)


def test_leave_and_end_close_the_client_and_its_stream() -> None:
    async def scenario() -> None:
        service = FakeService(JOINED, CREATED)
        service.replies[routes.LEAVE_SESSION] = lambda _: [messages.session_event("sessionLeft", SESSION_ID, NOW_MS)]
        service.replies[routes.END_SESSION] = lambda _: [
            messages.session_ended(SESSION_ID, wire.ENDED_BY_SPEAKER, NOW_MS)
        ]
        listener = await ListenerClient.join(URL, session_id=SESSION_ID, language="es", **options(service))
        speaker = await SpeakerClient.create(URL, token=TOKEN, **options(service))
        assert (await listener.leave()).type == "sessionLeft"
        assert (await speaker.end()).reason == "endedBySpeaker"
        assert [m async for m in listener] == [] and [m async for m in speaker] == []
        assert all(socket.closed for socket in service.sockets)
        assert len(service.queries) == 2

    run(scenario)


def test_a_first_message_that_is_an_error_refuses_the_client() -> None:
    async def scenario() -> None:
        error = {"type": "error", "code": "SESSION_FULL", "message": "full", "timestamp": 1}
        service = FakeService(error)
        with pytest.raises(ServiceRefused):
            await ListenerClient.join(URL, session_id=SESSION_ID, language="es", **options(service))
        assert service.sockets[0].closed

    run(scenario)


def test_backoff_doubles_its_ceiling_up_to_the_maximum_and_draws_below_it() -> None:
    ceilings = Backoff(initial=0.5, maximum=3.0, draw=lambda low, high: high).delays()
    assert [next(ceilings) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = Backoff(initial=1.0, maximum=8.0).delays()
    draws = [next(jittered) for _ in range(50)]
    assert all(0 <= delay <= 8.0 for delay in draws) and len(set(draws)) > 1


# -- audio and the command line ---------------------------------------------------------------------------------
def _wav(path: Path, rate: int = SAMPLE_RATE_HZ, channels: int = 1, width: int = 2, seconds: float = 0.25) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(b"\x00" * int(rate * seconds) * channels * width)
    return path


def test_a_wav_is_read_in_100_ms_chunks(tmp_path: Path) -> None:
    chunks = list(wav_chunks(_wav(tmp_path / "a.wav")))
    assert chunk_bytes() == 3200
    assert [len(chunk) for chunk in chunks] == [3200, 3200, 1600]
    assert all(len(chunk) >= limits.MIN_AUDIO_CHUNK_BYTES for chunk in chunks)


@pytest.mark.parametrize(("rate", "channels", "width"), [(8000, 1, 2), (SAMPLE_RATE_HZ, 2, 2), (SAMPLE_RATE_HZ, 1, 1)])
def test_a_wav_of_another_format_is_refused_before_any_connection(
    tmp_path: Path, rate: int, channels: int, width: int
) -> None:
    path = _wav(tmp_path / "other.wav", rate, channels, width)
    with pytest.raises(UnsupportedAudio, match="needed: mono, 16-bit PCM, 16000 Hz"):
        list(wav_chunks(path))
    err = io.StringIO()
    assert cli.main(["speak", str(path), "--token", TOKEN, "--url", "ws://127.0.0.1:9/none"], io.StringIO(), err) == 2
    assert "needed: mono" in err.getvalue()


def test_speak_without_a_token_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.TOKEN_VARIABLE, raising=False)
    err = io.StringIO()
    assert cli.main(["speak", str(_wav(tmp_path / "a.wav"))], io.StringIO(), err) == 2
    assert "make -s token" in err.getvalue()


def test_partials_are_rewritten_in_place_on_a_terminal_and_only_finals_printed_elsewhere() -> None:
    terminal, pipe = io.StringIO(), io.StringIO()
    for out, in_place in ((terminal, True), (pipe, False)):
        printer = cli.LinePrinter(out, in_place)
        printer.show("hola", is_partial=True)
        printer.show("hola a", is_partial=True)
        printer.show("hola a todos", is_partial=False)
    assert terminal.getvalue() == "\r\x1b[Khola\r\x1b[Khola a\r\x1b[Khola a todos\n"
    assert pipe.getvalue() == "hola a todos\n"
