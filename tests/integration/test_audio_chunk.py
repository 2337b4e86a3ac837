"""The original speaker app's audio through the local run: exactly its ``audioChunk`` frames (4096 samples of
16 kHz mono s16le PCM about 4 times a second, its format spelt out, no sequence number) are placed by their
arrival, transcribed for the speaker and captioned for a listener (decision record 0035)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from lambda_src.contract import limits
from local_run.speech import chunks, speak_pcm
from tests.integration.conftest import RunningService, apertium_cli
from tests.integration.test_lifecycle import listener
from tests.integration.test_transcription import QUIET_SECONDS, drain, speaker, transcripts

pytestmark = pytest.mark.integration

SPOKEN = "Good morning everyone. Welcome to the service. Today we talk about the weather and the river."
APP_CHUNK_SAMPLES = 4096  # the speaker app's chunk: 256 ms at 16 kHz
APP_CHUNK_BYTES = APP_CHUNK_SAMPLES * 2
APP_CHUNK_SECONDS = APP_CHUNK_SAMPLES / limits.SAMPLE_RATE_HZ


def app_frame(session_id: str, pcm: bytes) -> dict[str, Any]:
    """One frame as the original speaker app sends it, field for field."""
    return {
        "action": "audioChunk",
        "sessionId": session_id,
        "audioData": base64.b64encode(pcm).decode("ascii"),
        "timestamp": int(time.time() * 1000),
        "format": "pcm",
        "sampleRate": 16000,
        "channels": 1,
        "encoding": "s16le",
    }


def test_the_speaker_apps_audio_chunks_are_transcribed_and_captioned(service: RunningService, tmp_path: Path) -> None:
    # Given a session with a Spanish listener, and speech in the speaker app's chunks, then 1.5 s of silence (so the
    # recognizer's endpointer closes the last utterance)
    pcm = speak_pcm(SPOKEN, tmp_path)
    audio = chunks(pcm, APP_CHUNK_BYTES)
    audio[-1] += b"\x00" * (APP_CHUNK_BYTES - len(audio[-1]))
    audio += [b"\x00" * APP_CHUNK_BYTES] * 6
    ws, session_id = speaker(service, "speaker-app-audio", partialResults="false")
    spanish, joined = listener(service, session_id, "es")
    assert joined["type"] == "sessionJoined"
    with ws, spanish:
        # When the speaker streams them in real time, as the app does, without waiting for replies
        received: list[dict[str, Any]] = []
        started = time.monotonic()
        for index, chunk in enumerate(audio):
            ws.send(json.dumps(app_frame(session_id, chunk)))
            received += drain(ws, until=started + (index + 1) * APP_CHUNK_SECONDS)
        last = time.monotonic()
        while time.monotonic() - last < QUIET_SECONDS:
            more = drain(ws, until=time.monotonic() + 0.5)
            if transcripts(more):
                last = time.monotonic()
            received += more
        heard = drain(spanish, until=time.monotonic() + 1.0)
    # Then every frame was taken, answered without a sequence number (it had none; the service numbers nothing)
    acks = [message for message in received if message["type"] == "audioReceived"]
    assert acks == [{"type": "audioReceived", "accepted": True}] * len(audio)
    assert [message for message in received if message["type"] == "error"] == []
    # And the speaker was told what it said (loosely: synthetic speech, small offline model)
    said = transcripts(received)
    finals = {m["segmentId"]: m["text"] for m in said if not m["isPartial"]}
    assert {message["sessionId"] for message in said} == {session_id}
    words = " ".join(finals.values()).lower().split()
    assert len(words) >= 3, words
    # And the listener got the same segments as captions in Spanish (the local run translates them with Apertium)
    captions = [message for message in heard if message["type"] == "caption"]
    assert {(m["sessionId"], m["sourceLanguage"], m["targetLanguage"]) for m in captions} == {(session_id, "en", "es")}
    assert {m["segmentId"]: m["text"] for m in captions if not m["isPartial"]} == {
        segment_id: apertium_cli(text, "eng-spa") if text.strip() else text for segment_id, text in finals.items()
    }
