"""From the speaker's audio to its ``transcript`` messages through the local run: speech spoken by espeak-ng is
streamed in 100 ms ``sendAudio`` chunks, the message function starts the session's transcription consumer (an
asynchronous invocation, served by the local gateway's Lambda Invoke API), and the consumer runs the local
recognizer (pocketsphinx) and the partial-result processor with the session's own settings.

The local recognizer's accuracy on synthetic speech is modest: these tests hold the flow, the order and the
settings, and the words only loosely."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from lambda_src.adapters.translation import stand_in
from lambda_src.contract import limits
from local_run.speech import CHUNK_BYTES, chunks, speak_pcm
from tests.integration.conftest import RunningService, apertium_cli
from tests.integration.test_lifecycle import ask, attribute, eventually, listener

pytestmark = pytest.mark.integration

SPOKEN = "Good morning everyone. Welcome to the service. Today we talk about the weather and the river."
SILENCE = b"\x00" * CHUNK_BYTES
QUIET_SECONDS = 4.0  # no transcript for this long after the last chunk: the consumer has said all it will


@pytest.fixture(scope="module")
def pcm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speak_pcm(SPOKEN, Path(tmp_path_factory.mktemp("speech")))


def speaker(service: RunningService, user_id: str, **query: str) -> tuple[ClientConnection, str]:
    parameters = "&".join(f"{key}={value}" for key, value in {"sourceLanguage": "en", **query}.items())
    ws = connect(
        f"{service.url}?action=createSession&{parameters}&token={service.token(user_id=user_id)}",
        open_timeout=10,
        legacy=True,
    )
    created = json.loads(ws.recv(timeout=10))
    assert created["type"] == "sessionCreated", created
    return ws, created["sessionId"]


def stream(ws: ClientConnection, audio: list[bytes], first_sequence: int = 0) -> list[dict[str, Any]]:
    """Send the chunks in real time (one each 100 ms), without waiting for replies; then everything received until
    nothing has come for ``QUIET_SECONDS``."""
    received: list[dict[str, Any]] = []
    started = time.monotonic()
    for index, chunk in enumerate(audio):
        message = {
            "action": "sendAudio",
            "audioData": base64.b64encode(chunk).decode(),
            "sequenceNumber": first_sequence + index,
        }
        ws.send(json.dumps(message))
        received += drain(ws, until=started + (index + 1) * 0.1)
    last = time.monotonic()
    while time.monotonic() - last < QUIET_SECONDS:
        more = drain(ws, until=time.monotonic() + 0.5)
        if any(message["type"] == "transcript" for message in more):
            last = time.monotonic()
        received += more
    return received


def drain(ws: ClientConnection, until: float) -> list[dict[str, Any]]:
    out = []
    while (left := until - time.monotonic()) > 0:
        try:
            out.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
    return out


def transcripts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [message for message in messages if message["type"] == "transcript"]


def with_silence(pcm: bytes) -> list[bytes]:
    """The speech, then 1.5 s of silence (so the recognizer's endpointer closes the last utterance)."""
    return chunks(pcm) + [SILENCE] * 15


def test_partials_then_finals_reach_the_speaker_with_partial_results_on(service: RunningService, pcm: bytes) -> None:
    ws, session_id = speaker(service, "transcribed-speaker", partialResults="true", minStability="0.7")
    with ws:
        received = stream(ws, with_silence(pcm))
    said = transcripts(received)
    # Then every chunk was taken, and the speaker heard partial and final transcript segments of its session
    acks = [message for message in received if message["type"] == "audioReceived"]
    assert acks and all(ack["accepted"] for ack in acks)
    assert {message["sessionId"] for message in said} == {session_id}
    partials = [message for message in said if message["isPartial"]]
    finals = [message for message in said if not message["isPartial"]]
    assert partials and finals, said
    # And each segment's partials come before its final, which settles it; no segment is final twice
    final_ids = [message["segmentId"] for message in finals]
    assert len(final_ids) == len(set(final_ids))
    for partial in partials:
        later = said[said.index(partial) :]
        assert any(m["segmentId"] == partial["segmentId"] and not m["isPartial"] for m in later), partial
        assert 0 <= partial["stability"] <= 1  # (at or above 0.7, unless released by maxBufferTimeout)
    assert all(isinstance(message["timestamp"], int) for message in said)
    # And some words came through (loosely: synthetic speech, small offline model)
    heard = " ".join(message["text"] for message in finals).lower().split()
    assert len(heard) >= 3, heard


def test_only_finals_reach_the_speaker_with_partial_results_off(service: RunningService, pcm: bytes) -> None:
    ws, _session_id = speaker(service, "finals-only-speaker", partialResults="false")
    with ws:
        said = transcripts(stream(ws, with_silence(pcm)))
    assert said, "no transcript at all"
    assert [message["isPartial"] for message in said] == [False] * len(said)


def test_a_paused_broadcasts_audio_produces_no_transcript_and_no_caption(service: RunningService, pcm: bytes) -> None:
    ws, session_id = speaker(service, "paused-speaker")
    spanish, _ = listener(service, session_id, "es")
    with ws, spanish:
        assert ask(ws, action="pauseBroadcast")["isPaused"] is True
        time.sleep(limits.AUDIO_SESSION_CACHE_MS / 1000 + 0.1)  # the audio path's view of the state is a second old
        received = stream(ws, with_silence(pcm))
        heard = drain(spanish, until=time.monotonic() + 0.5)
    acks = [message for message in received if message["type"] == "audioReceived"]
    assert acks and {(ack["accepted"], ack.get("reason")) for ack in acks} == {(False, "paused")}
    assert transcripts(received) == []
    assert [m["type"] for m in heard if m["type"] == "caption"] == []
    assert "broadcastPaused" in [m["type"] for m in heard]


def test_each_listener_gets_captions_in_its_language_for_the_speakers_segments(
    service: RunningService, pcm: bytes
) -> None:
    # Given a session with a Spanish and a French listener
    ws, session_id = speaker(service, "captioned-speaker", partialResults="true", minStability="0.7")
    spanish, _ = listener(service, session_id, "es")
    french, _ = listener(service, session_id, "fr")
    with ws, spanish, french:
        # When the speaker speaks
        said = transcripts(stream(ws, with_silence(pcm)))
        heard = {
            language: drain(client, until=time.monotonic() + 1.0)
            for language, client in (("es", spanish), ("fr", french))
        }
    # Then each listener got captions in its own language, for exactly the segments the speaker was told about, and
    # each segment's final caption is its final transcript translated: by Apertium into Spanish (the local run has
    # the English-Spanish pair), by the marked stand-in into French (it has no English-French pair)
    final_transcripts = {m["segmentId"]: m["text"] for m in said if not m["isPartial"]}
    assert final_transcripts
    for language, messages in heard.items():
        captions = [m for m in messages if m["type"] == "caption"]
        assert captions, f"no caption in {language}"
        assert {(m["sessionId"], m["sourceLanguage"], m["targetLanguage"]) for m in captions} == {
            (session_id, "en", language)
        }
        assert {m["segmentId"] for m in captions} <= {m["segmentId"] for m in said}
        finals = {m["segmentId"]: m["text"] for m in captions if not m["isPartial"]}
        translated = {"es": lambda text: apertium_cli(text, "eng-spa"), "fr": lambda text: stand_in.mark(text, "fr")}
        assert finals == {
            segment_id: translated[language](text) if text.strip() else text
            for segment_id, text in final_transcripts.items()
        }


def test_a_listener_that_changed_language_gets_the_new_one_from_the_next_segments(
    service: RunningService, pcm: bytes
) -> None:
    # Given a Spanish listener that switched to French, longer ago than the consumer keeps its audience
    ws, session_id = speaker(service, "switching-speaker", partialResults="false")
    switching, _ = listener(service, session_id, "es")
    with ws, switching:
        assert ask(switching, action="changeLanguage", targetLanguage="fr")["targetLanguage"] == "fr"
        time.sleep(limits.CAPTION_AUDIENCE_CACHE_SECONDS + 0.1)
        # When the speaker speaks
        said = transcripts(stream(ws, with_silence(pcm)))
        heard = [m for m in drain(switching, until=time.monotonic() + 1.0) if m["type"] == "caption"]
    # Then every caption it gets is French, one per segment the speaker was told
    assert said and heard
    assert {m["targetLanguage"] for m in heard} == {"fr"}
    assert [m["segmentId"] for m in heard] == [m["segmentId"] for m in said]


def test_a_listener_gone_without_its_disconnect_is_counted_out_at_the_next_caption(
    service: RunningService, pcm: bytes
) -> None:
    # Given a session with a listener that joined by message (so a 410 proves it gone at once: its handshake is over)
    ws, session_id = speaker(service, "losing-speaker", partialResults="false")
    staying, _ = listener(service, session_id, "es")
    vanishing = connect(service.url, open_timeout=10, legacy=True)
    joined = ask(vanishing, action="joinSession", sessionId=session_id, targetLanguage="fr")
    assert (joined["type"], joined["listenerCount"]) == ("sessionJoined", 2)
    with ws, staying, vanishing:
        # When API Gateway loses that connection without a $disconnect reaching the service
        assert service.run.gateway is not None
        del service.run.gateway.clients[joined["connectionId"]]
        # And the speaker speaks
        said = transcripts(stream(ws, with_silence(pcm)))
        assert said
        # Then the first caption to it finds it gone and counts it out, once: the count is exact again
        assert eventually(lambda: attribute(service, session_id, "listenerCount") == "1")
        assert service.listener_rows(session_id) == 1
        # And the listener that stayed got every segment
        captions = [m for m in drain(staying, until=time.monotonic() + 0.5) if m["type"] == "caption"]
        assert [m["segmentId"] for m in captions] == [m["segmentId"] for m in said]
