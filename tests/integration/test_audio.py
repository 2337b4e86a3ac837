"""``sendAudio`` through the local gateway with a real WebSocket client: the local run creates the audio buffer
from the template, the speaker's chunks land in it in order, and a paused broadcast's chunks are dropped."""

from __future__ import annotations

import base64
import time

import pytest

from lambda_src.contract import limits, schema
from tests.integration.conftest import RunningService
from tests.integration.test_lifecycle import ask, listener, speaker

pytestmark = pytest.mark.integration

AUDIO = base64.b64encode(b"\x00\x01" * 1600).decode("ascii")  # 100 ms of 16-bit audio at 16 kHz


def _chunks(service: RunningService, session_id: str) -> list[dict]:
    table = service.run.table_name(f"Tables{schema.AUDIO_CHUNKS.construct_id}")
    return service.db.query(
        TableName=table,
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": schema.AUDIO_CHUNKS_PARTITION_KEY},
        ExpressionAttributeValues={":s": {"S": session_id}},
        ConsistentRead=True,
    )["Items"]


def test_the_speakers_chunks_land_in_the_buffer_and_a_pause_drops_them(service: RunningService) -> None:
    speaker_ws, created = speaker(service, user_id="audio-speaker")
    session_id = created["sessionId"]
    listener_ws, _ = listener(service, session_id, "es")
    with speaker_ws, listener_ws:
        # When the speaker sends three chunks
        answers = [ask(speaker_ws, action="sendAudio", audioData=AUDIO, sequenceNumber=n) for n in range(3)]
        # Then each is stored, in order
        assert answers == [{"type": "audioReceived", "sequenceNumber": n, "accepted": True} for n in range(3)]
        assert [int(item["sequenceNumber"]["N"]) for item in _chunks(service, session_id)] == [0, 1, 2]
        # And a listener may not send audio
        assert ask(listener_ws, action="sendAudio", audioData=AUDIO, sequenceNumber=0)["code"] == "FORBIDDEN"
        # And bad audio is refused by its own code
        refused = ask(speaker_ws, action="sendAudio", audioData="not base64!", sequenceNumber=3)
        assert (refused["code"], refused["field"]) == ("INVALID_AUDIO_FORMAT", "audioData")
        # When the speaker pauses, then (a second later) sends more
        assert ask(speaker_ws, action="pauseBroadcast")["isPaused"] is True
        time.sleep(limits.AUDIO_SESSION_CACHE_MS / 1000 + 0.1)
        dropped = ask(speaker_ws, action="sendAudio", audioData=AUDIO, sequenceNumber=4)
        # Then it is dropped, and nothing more is stored
        assert (dropped["accepted"], dropped["reason"]) == (False, "paused")
        assert len(_chunks(service, session_id)) == 3
