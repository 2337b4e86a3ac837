"""``sendAudio``: the session's speaker's chunks go into the audio buffer (AudioChunks), in key order; every bad
chunk is refused with a catalogue error naming its field and writes nothing; a chunk sent while the broadcast is
paused, muted or at volume 0, or sent twice, is dropped without an error."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lambda_src.contract import limits, schema
from lambda_src.protocol import messages
from tests.support.helpers import body_of
from tests.unit.flows import Clock, create_session, error_of, join, send

PCM = bytes(range(256)) * 12  # 3072 bytes: ~100 ms of 16-bit audio at 16 kHz
AUDIO = base64.b64encode(PCM).decode("ascii")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock.install(monkeypatch)


@pytest.fixture
def speaker(tables, clock: Clock) -> tuple[str, str, int]:
    """A live session; (session id, speaker connection id, the connection's connectedAt)."""
    session_id, connection_id = create_session()
    return session_id, connection_id, clock.now_ms


def send_audio(connection_id: str, connected_at_ms: int, sequence_number: Any = 0, **fields: Any) -> dict[str, Any]:
    body = {"action": "sendAudio", "audioData": AUDIO, "sequenceNumber": sequence_number, **fields}
    return send(body, connection_id, connected_at_ms=connected_at_ms)


def test_the_speakers_chunks_are_stored_in_order_with_their_connection(tables, speaker) -> None:
    session_id, connection_id, connected_at = speaker
    for sequence_number in (2, 0, 1):  # concurrent invocations write in any order
        reply = body_of(send_audio(connection_id, connected_at, sequence_number, chunkId=f"c{sequence_number}"))
        assert reply == {"type": "audioReceived", "sequenceNumber": sequence_number, "accepted": True}
    chunks = tables.audio_chunks_items()
    assert [chunk["sequenceNumber"] for chunk in chunks] == [0, 1, 2]
    assert {chunk["sessionId"] for chunk in chunks} == {session_id}
    assert {chunk["connectionId"] for chunk in chunks} == {connection_id}
    assert [chunk["chunkId"] for chunk in chunks] == ["c0", "c1", "c2"]
    assert all(chunk["audio"] == PCM for chunk in chunks)
    assert chunks[0][schema.AUDIO_CHUNKS_SORT_KEY] == schema.audio_chunk_sort_key(connected_at, connection_id, 0)
    assert chunks[0]["expiresAt"] == messages.now_ms() // 1000 + limits.AUDIO_CHUNK_LIFETIME_SECONDS


def test_a_chunk_may_name_its_session_and_carry_the_clients_timestamp(tables, speaker) -> None:
    session_id, connection_id, connected_at = speaker
    reply = body_of(send_audio(connection_id, connected_at, 7, sessionId=session_id, timestamp=1_700_000_000_123))
    assert reply["accepted"] is True
    (chunk,) = tables.audio_chunks_items()
    assert chunk["clientTimestamp"] == 1_700_000_000_123


def test_a_refreshed_speakers_new_sequence_follows_the_old_connections_chunks(tables, speaker, clock: Clock) -> None:
    session_id, connection_id, connected_at = speaker
    send_audio(connection_id, connected_at, 5)
    clock.advance(2)
    refreshed, response = _refresh(session_id, connection_id)
    assert response["statusCode"] == 200, response
    assert body_of(send_audio(refreshed, clock.now_ms, 0))["accepted"] is True
    chunks = tables.audio_chunks_items()
    assert [(chunk["connectionId"], chunk["sequenceNumber"]) for chunk in chunks] == [
        (connection_id, 5),
        (refreshed, 0),
    ]


def _refresh(session_id: str, previous: str, connected_at_ms: int | None = None) -> tuple[str, dict[str, Any]]:
    from tests.unit.flows import OWNER, connect_with

    query = {
        "action": "refreshConnection",
        "sessionId": session_id,
        "role": "speaker",
        "previousConnectionId": previous,
    }
    return connect_with(query, user_id=OWNER, connected_at_ms=connected_at_ms or messages.now_ms())


def test_a_duplicate_chunk_is_dropped_not_refused(tables, speaker) -> None:
    _, connection_id, connected_at = speaker
    assert body_of(send_audio(connection_id, connected_at, 3))["accepted"] is True
    other = base64.b64encode(b"\x01\x00" * 100).decode("ascii")
    reply = send_audio(connection_id, connected_at, 3, audioData=other)
    assert reply["statusCode"] == 200
    assert body_of(reply) == {"type": "audioReceived", "sequenceNumber": 3, "accepted": False, "reason": "duplicate"}
    (chunk,) = tables.audio_chunks_items()
    assert chunk["audio"] == PCM  # the first one stays


@pytest.mark.parametrize(
    ("control", "reason"),
    [
        ({"action": "pauseBroadcast"}, "paused"),
        ({"action": "muteBroadcast"}, "muted"),
        ({"action": "setVolume", "volumeLevel": 0}, "volumeZero"),
        ({"action": "speakerStateChange", "state": {"isPaused": True, "isMuted": True}}, "paused"),
    ],
    ids=["paused", "muted", "volume-0", "paused-and-muted"],
)
def test_a_chunk_is_dropped_while_the_broadcast_does_not_forward_audio(
    tables, speaker, clock: Clock, control: dict, reason: str
) -> None:
    _, connection_id, connected_at = speaker
    assert body_of(send(control, connection_id))["type"] == "broadcastState"
    clock.advance(limits.AUDIO_SESSION_CACHE_MS / 1000)
    reply = send_audio(connection_id, connected_at, 0)
    assert reply["statusCode"] == 200
    assert body_of(reply) == {"type": "audioReceived", "sequenceNumber": 0, "accepted": False, "reason": reason}
    assert tables.audio_chunks_items() == []


def test_a_listener_may_not_send_audio(tables, speaker, clock: Clock) -> None:
    session_id, _, _ = speaker
    listener = join(session_id)
    assert error_of(send_audio(listener, clock.now_ms)) == (403, "FORBIDDEN")
    assert error_of(send_audio(listener, clock.now_ms, sessionId=session_id)) == (403, "FORBIDDEN")
    assert tables.audio_chunks_items() == []


def test_a_connection_without_a_session_may_not_send_audio(tables, clock: Clock) -> None:
    from tests.unit.flows import plain

    connection_id = plain(user_id="someone")
    assert error_of(send_audio(connection_id, clock.now_ms)) == (403, "FORBIDDEN")
    assert tables.audio_chunks_items() == []


def test_audio_for_a_session_that_does_not_exist_is_refused(tables, speaker) -> None:
    _, connection_id, connected_at = speaker
    reply = send_audio(connection_id, connected_at, sessionId="silver-otter-512")
    assert error_of(reply) == (404, "SESSION_NOT_FOUND")
    assert tables.audio_chunks_items() == []


def test_audio_for_an_ended_session_is_refused(tables, speaker) -> None:
    session_id, connection_id, connected_at = speaker
    assert body_of(send({"action": "endSession"}, connection_id))["type"] == "sessionEnded"
    refused = send_audio(connection_id, connected_at)
    assert error_of(refused) == (410, "SESSION_ENDED")
    # naming the action it refuses: a client that sent endSession while this chunk was in flight can tell the
    # chunk's refusal from the end's reply
    assert body_of(refused)["action"] == "sendAudio"
    assert tables.audio_chunks_items() == []


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(None, id="missing"),
        pytest.param(12345, id="a-number"),
        pytest.param("not base64 at all!", id="not-base64"),
        pytest.param(AUDIO[:-1], id="bad-padding"),
        pytest.param(AUDIO[:40] + "\n" + AUDIO[40:], id="embedded-newline"),
        pytest.param(_b64(b"\x00" * (limits.MIN_AUDIO_CHUNK_BYTES - 2)), id="too-small"),
        pytest.param(_b64(b"\x00" * (limits.MAX_AUDIO_CHUNK_BYTES + 2)), id="too-large"),
        pytest.param(_b64(b"\x00" * 201), id="odd-length"),
        pytest.param("A" * (limits.MAX_FRAME_BYTES // 2), id="far-too-long-text"),
    ],
)
def test_bad_audio_is_refused_as_invalid_audio_format(tables, speaker, audio: Any) -> None:
    _, connection_id, connected_at = speaker
    body = {"action": "sendAudio", "sequenceNumber": 0}
    if audio is not None:
        body["audioData"] = audio
    reply = send(body, connection_id, connected_at_ms=connected_at)
    assert error_of(reply) == (400, "INVALID_AUDIO_FORMAT")
    assert body_of(reply)["field"] == "audioData"
    assert tables.audio_chunks_items() == []


def test_the_size_bounds_themselves_are_allowed(tables, speaker) -> None:
    _, connection_id, connected_at = speaker
    for sequence_number, size in enumerate((limits.MIN_AUDIO_CHUNK_BYTES, limits.MAX_AUDIO_CHUNK_BYTES)):
        reply = send_audio(connection_id, connected_at, sequence_number, audioData=_b64(b"\x00" * size))
        assert body_of(reply)["accepted"] is True
    assert len(tables.audio_chunks_items()) == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sequenceNumber": "1"}, "sequenceNumber"),
        ({"sequenceNumber": 1.0}, "sequenceNumber"),
        ({"sequenceNumber": 1.5}, "sequenceNumber"),
        ({"sequenceNumber": True}, "sequenceNumber"),
        ({"sequenceNumber": -1}, "sequenceNumber"),
        ({"sequenceNumber": limits.MAX_AUDIO_SEQUENCE_NUMBER + 1}, "sequenceNumber"),
        ({"sequenceNumber": [1]}, "sequenceNumber"),
        ({"chunkId": 5}, "chunkId"),
        ({"chunkId": "x" * (limits.MAX_FIELD_LENGTH + 1)}, "chunkId"),
        ({"timestamp": "1700000000000"}, "timestamp"),
        ({"timestamp": 1.7e12}, "timestamp"),
        ({"timestamp": False}, "timestamp"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, dict) else "",
)
def test_bad_chunk_fields_are_refused_naming_the_field(tables, speaker, fields: dict, field: str) -> None:
    _, connection_id, connected_at = speaker
    body: dict[str, Any] = {"action": "sendAudio", "audioData": AUDIO, "sequenceNumber": 0, **fields}
    body = {name: value for name, value in body.items() if value is not None}
    reply = send(body, connection_id, connected_at_ms=connected_at)
    assert error_of(reply) == (400, "INVALID_PARAMETERS")
    assert body_of(reply)["field"] == field
    assert tables.audio_chunks_items() == []


def test_a_chunk_is_validated_before_its_session_is_looked_up(tables, clock: Clock) -> None:
    # A connection without a session still learns what is wrong with its chunk first.
    from tests.unit.flows import plain

    connection_id = plain(user_id="someone")
    reply = send({"action": "sendAudio", "audioData": "%%%", "sequenceNumber": 0}, connection_id)
    assert error_of(reply) == (400, "INVALID_AUDIO_FORMAT")


def test_a_refreshed_speaker_is_not_refused_on_a_read_made_during_its_handshake(tables, speaker, clock: Clock) -> None:
    # Given a new connection of the speaker, opened at T; while its $connect runs, the old connection's chunk has
    # this process read the session (still naming the old connection) after T
    session_id, connection_id, connected_at = speaker
    clock.advance(1)
    opened_at = clock.now_ms
    clock.advance(0.005)
    assert body_of(send_audio(connection_id, connected_at, 0))["accepted"] is True
    # When the takeover completes and the new connection sends within the second the read is kept
    refreshed, response = _refresh(session_id, connection_id, connected_at_ms=opened_at)
    assert response["statusCode"] == 200, response
    reply = send_audio(refreshed, opened_at, 0)
    # Then its chunk is stored, not refused on that read
    assert body_of(reply)["accepted"] is True
    assert [chunk["connectionId"] for chunk in tables.audio_chunks_items()] == [connection_id, refreshed]


def test_two_connections_of_one_millisecond_do_not_collide(tables, speaker) -> None:
    # Given a chunk from the speaker's connection, and a new connection of the same millisecond that takes over
    session_id, connection_id, connected_at = speaker
    assert body_of(send_audio(connection_id, connected_at, 0))["accepted"] is True
    refreshed, response = _refresh(session_id, connection_id)
    assert response["statusCode"] == 200, response
    assert messages.now_ms() == connected_at
    # When the new connection sends its own first chunk, then it is stored beside the old one's
    assert body_of(send_audio(refreshed, connected_at, 0))["accepted"] is True
    assert sorted(chunk["connectionId"] for chunk in tables.audio_chunks_items()) == sorted([connection_id, refreshed])
