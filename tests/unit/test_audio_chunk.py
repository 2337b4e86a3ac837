"""``audioChunk``, the original speaker app's chunk, is taken as ``sendAudio``: unnumbered, its audio format spelt
out (and refused when it is not the one the service takes), placed in the audio buffer by its arrival and answered
``audioReceived`` without a sequence number. ``sendAudio`` may omit its number too (decision record 0035)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lambda_src.contract import limits, schema
from lambda_src.handlers import message
from tests.support.helpers import body_of, message_event
from tests.unit.flows import Clock, create_session, error_of, join, send

PCM = b"\x01\x02" * 4096  # 4096 samples: one of the speaker app's chunks (256 ms at 16 kHz)
AUDIO = base64.b64encode(PCM).decode("ascii")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock.install(monkeypatch)


@pytest.fixture
def speaker(tables, clock: Clock) -> tuple[str, str, int]:
    """A live session; (session id, speaker connection id, the connection's connectedAt)."""
    session_id, connection_id = create_session()
    return session_id, connection_id, clock.now_ms


def app_chunk(session_id: str, timestamp: int, audio: str = AUDIO, **fields: Any) -> dict[str, Any]:
    """Exactly what the original speaker app sends about 4 times a second (no sequence number)."""
    return {
        "action": "audioChunk",
        "sessionId": session_id,
        "audioData": audio,
        "timestamp": timestamp,
        "format": "pcm",
        "sampleRate": 16000,
        "channels": 1,
        "encoding": "s16le",
        **fields,
    }


def deliver(
    body: dict[str, Any], connection_id: str, connected_at_ms: int, arrived_at_ms: int, request_id: str | None = None
) -> dict[str, Any]:
    """The frame as API Gateway hands it over: routed on its action, stamped with when it reached the API."""
    event = message_event(
        body,
        connection_id=connection_id,
        route_key=body["action"],
        connected_at_ms=connected_at_ms,
        request_time_ms=arrived_at_ms,
        request_id=request_id,
    )
    return message.handler(event, None)


def test_the_speaker_apps_audio_chunk_is_stored_and_answered_like_send_audio(tables, speaker, clock: Clock) -> None:
    session_id, connection_id, connected_at = speaker
    reply = deliver(app_chunk(session_id, 1_700_000_000_000), connection_id, connected_at, clock.now_ms)
    # Answered as sendAudio is; no sequence number, since the chunk had none and the service numbers nothing
    assert reply["statusCode"] == 200
    assert body_of(reply) == {"type": "audioReceived", "accepted": True}
    (chunk,) = tables.audio_chunks_items()
    assert chunk["audio"] == PCM
    assert chunk["connectionId"] == connection_id
    assert chunk["clientTimestamp"] == 1_700_000_000_000
    assert "sequenceNumber" not in chunk
    assert chunk[schema.AUDIO_CHUNKS_SORT_KEY].startswith(
        f"{connected_at:015d}#{connection_id}#{schema.AUDIO_CHUNK_ARRIVAL_MARK}{clock.now_ms:015d}."
    )


def test_unnumbered_chunks_are_ordered_by_their_arrival_whatever_order_they_are_written_in(
    tables, speaker, clock: Clock
) -> None:
    # Given chunks that reached the API at t, t+256 and t+512 ms (a tie at t+512 broken by the client's own time),
    # written by concurrent invocations in another order
    session_id, connection_id, connected_at = speaker
    t = clock.now_ms
    arrivals = [(t + 512, 4), (t, 1), (t + 512, 3), (t + 256, 2)]
    for arrived_at, client_time in arrivals:
        reply = deliver(app_chunk(session_id, client_time), connection_id, connected_at, arrived_at)
        assert body_of(reply)["accepted"] is True
    # Then the buffer holds them in the order they arrived
    assert [chunk["clientTimestamp"] for chunk in tables.audio_chunks_items()] == [1, 2, 3, 4]


def test_send_audio_may_omit_its_sequence_number(tables, speaker, clock: Clock) -> None:
    session_id, connection_id, connected_at = speaker
    body = {"action": "sendAudio", "audioData": AUDIO}
    reply = deliver(body, connection_id, connected_at, clock.now_ms)
    assert body_of(reply) == {"type": "audioReceived", "accepted": True}
    (chunk,) = tables.audio_chunks_items()
    assert "sequenceNumber" not in chunk and chunk["audio"] == PCM


def test_a_retry_of_the_same_request_stores_one_chunk_and_is_answered_accepted(tables, speaker, clock: Clock) -> None:
    # The key holds the request's id: a second write of the same request (its own retry after an unanswered attempt)
    # finds it stored, which is what the client asked for.
    session_id, connection_id, connected_at = speaker
    body = app_chunk(session_id, 1)
    for _attempt in range(2):
        reply = deliver(body, connection_id, connected_at, clock.now_ms, request_id="same-request")
        assert body_of(reply) == {"type": "audioReceived", "accepted": True}
    assert len(tables.audio_chunks_items()) == 1


def test_a_frame_sent_twice_without_a_number_is_stored_twice(tables, speaker, clock: Clock) -> None:
    # What ordering by arrival costs: nothing tells a client's resend from new audio (numbers do).
    session_id, connection_id, connected_at = speaker
    body = app_chunk(session_id, 1)
    for _send in range(2):
        assert body_of(deliver(body, connection_id, connected_at, clock.now_ms))["accepted"] is True
    assert len(tables.audio_chunks_items()) == 2


def test_a_connection_that_mixes_numbered_and_unnumbered_chunks_has_its_unnumbered_ones_after(
    tables, speaker, clock: Clock
) -> None:
    # Accepted, not refused (knowing what a connection sent before would cost a read per chunk): a connection's
    # numbered chunks sort before its unnumbered ones.
    session_id, connection_id, connected_at = speaker
    deliver(app_chunk(session_id, 1), connection_id, connected_at, clock.now_ms)
    numbered = {"action": "sendAudio", "audioData": AUDIO, "sequenceNumber": 0, "timestamp": 2}
    assert body_of(deliver(numbered, connection_id, connected_at, clock.now_ms + 1))["sequenceNumber"] == 0
    assert [chunk["clientTimestamp"] for chunk in tables.audio_chunks_items()] == [2, 1]


@pytest.mark.parametrize(
    ("field", "value", "expected", "came"),
    [
        ("format", "opus", '"pcm"', "opus"),
        ("format", "PCM", '"pcm"', "PCM"),
        ("format", 1, '"pcm"', "1"),
        ("encoding", "f32le", '"s16le"', "f32le"),
        ("encoding", "", '"s16le"', "an empty string"),
        ("sampleRate", 44100, "the JSON integer 16000", "44100"),
        ("sampleRate", 16000.0, "the JSON integer 16000", "16000.0"),
        ("sampleRate", "16000", "the JSON integer 16000", "16000"),
        ("channels", 2, "the JSON integer 1", "2"),
        ("channels", True, "the JSON integer 1", "true"),
        ("channels", [1], "the JSON integer 1", "a JSON array"),
    ],
)
@pytest.mark.parametrize("action", ["audioChunk", "sendAudio"])
def test_a_chunk_that_says_another_audio_format_is_refused_naming_the_field(
    tables, speaker, clock: Clock, action: str, field: str, value: Any, expected: str, came: str
) -> None:
    session_id, connection_id, connected_at = speaker
    body = app_chunk(session_id, 1, action=action, **{field: value})
    reply = deliver(body, connection_id, connected_at, clock.now_ms)
    # An error from the catalogue naming the field, what was expected and what came; nothing stored
    assert error_of(reply) == (400, "INVALID_PARAMETERS")
    error = body_of(reply)
    assert error["field"] == field
    assert error["message"].startswith(f"{field} must be {expected} ")
    assert error["message"].endswith(f", got {came}")
    assert tables.audio_chunks_items() == []


def test_the_format_fields_are_optional_each_on_its_own(tables, speaker, clock: Clock) -> None:
    session_id, connection_id, connected_at = speaker
    spelt_out = {"format": "pcm", "sampleRate": 16000, "channels": 1, "encoding": "s16le"}
    for index, (name, value) in enumerate(spelt_out.items()):
        body = {"action": "audioChunk", "sessionId": session_id, "audioData": AUDIO, "timestamp": index, name: value}
        assert body_of(deliver(body, connection_id, connected_at, clock.now_ms))["accepted"] is True
    assert len(tables.audio_chunks_items()) == len(spelt_out)


def test_an_audio_chunk_from_a_listener_is_forbidden_and_writes_nothing(tables, speaker, clock: Clock) -> None:
    # The same checks as sendAudio: only the session's speaker connection may send audio
    session_id, _, _ = speaker
    listener = join(session_id)
    reply = deliver(app_chunk(session_id, 1), listener, clock.now_ms, clock.now_ms)
    assert error_of(reply) == (403, "FORBIDDEN")
    assert tables.audio_chunks_items() == []


def test_an_audio_chunk_while_the_broadcast_is_paused_is_dropped_without_a_number(
    tables, speaker, clock: Clock
) -> None:
    session_id, connection_id, connected_at = speaker
    assert body_of(send({"action": "pauseBroadcast"}, connection_id))["isPaused"] is True
    clock.advance(limits.AUDIO_SESSION_CACHE_MS / 1000)
    reply = deliver(app_chunk(session_id, 1), connection_id, connected_at, clock.now_ms)
    assert body_of(reply) == {"type": "audioReceived", "accepted": False, "reason": "paused"}
    assert tables.audio_chunks_items() == []
