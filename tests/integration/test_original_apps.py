"""The original speaker and listener apps' exact requests and frames (../shared/seed/original-apps.md, summarized in
docs/http-api.md), through `make local`'s gateway: the speaker app creates its session over the HTTP API with its
Bearer token, opens its socket by session id, streams `audioChunk` frames without numbers, asks for its status every
5 s, uses the four controls with `{timestamp}` and ends with `endSession {sessionId, reason}`; the listener app opens
its URL, joins with `joinSession`, is counted once and receives the session's content. And `DELETE
/sessions/{id}` ends a live session. Each answer the apps read is checked field by field."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.sync.client import ClientConnection, connect

from lambda_src.contract import limits, wire
from local_run.speech import speak_pcm
from tests.integration.conftest import RunningService
from tests.integration.test_lifecycle import attribute, eventually

pytestmark = pytest.mark.integration

SPOKEN = "Good morning everyone. Welcome to the service. Today we talk about the weather and the river."
# The speaker app's chunk: 4096 samples of s16le PCM at 16 kHz (256 ms), about 4 a second.
APP_CHUNK_SAMPLES = 4096
APP_CHUNK_BYTES = APP_CHUNK_SAMPLES * limits.AUDIO_SAMPLE_BYTES
APP_ORIGIN = "http://localhost:5173"  # the apps' own dev server, another local port
SPEAKER = "original-speaker-app-user"


@pytest.fixture(scope="module")
def pcm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speak_pcm(SPOKEN, Path(tmp_path_factory.mktemp("speech")))


def call_api(
    service: RunningService, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request as the speaker app's fetch sends it (its Origin, its Bearer token, a JSON body)."""
    base = service.run.http_api_url
    assert base is not None, "the stack has no HTTP API"
    url = urlsplit(base)
    headers = {"Origin": APP_ORIGIN}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=15)
    try:
        connection.request(method, url.path.rstrip("/") + path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


class Frames:
    """Every frame a socket receives, read on a thread of its own (as the app's onmessage does)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in self.ws:
                with self._lock:
                    self.received.append(json.loads(frame))
        except Exception:  # the socket closed: the frames read so far stay
            return

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [frame for frame in self.received if frame.get("type") == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        assert eventually(lambda: len(self.of_type(kind)) >= count, timeout=timeout), (kind, self.received)
        return self.of_type(kind)


@pytest.fixture()
def apps_session(service: RunningService) -> Iterator[tuple[str, str, dict[str, Any]]]:
    token = service.token(user_id=SPEAKER)
    # The app retries a failed POST 3 times: the first answer must already be the session
    status, headers, body = call_api(
        service, "POST", "/sessions", {"sourceLanguage": "en", "qualityTier": "standard"}, token
    )
    assert status == 201, body
    assert headers["access-control-allow-origin"] == APP_ORIGIN
    yield token, json.loads(body)["sessionId"], json.loads(body)


def test_the_original_apps_create_stream_control_and_end_a_session(
    service: RunningService, pcm: bytes, apps_session: tuple[str, str, dict[str, Any]]
) -> None:
    token, session_id, metadata = apps_session
    # Then the 201's SessionMetadata has every field the speaker app reads
    assert metadata["speakerId"] == SPEAKER
    assert (metadata["sourceLanguage"], metadata["qualityTier"]) == ("en", "standard")
    assert (metadata["status"], metadata["listenerCount"]) == ("active", 0)
    assert isinstance(metadata["createdAt"], int) and metadata["updatedAt"] >= metadata["createdAt"]
    assert call_api(service, "GET", "/health")[0] == 200
    status, _headers, body = call_api(service, "GET", f"/sessions/{session_id}", token=token)
    assert (status, json.loads(body)["sessionId"]) == (200, session_id)
    # When the speaker app opens its socket by session id (no action, no targetLanguage)
    with connect(f"{service.url}?token={token}&sessionId={session_id}", open_timeout=10) as speaker_ws:
        speaker = Frames(speaker_ws)
        speaker.wait_for("sessionResumed")
        assert (
            attribute(service, session_id, "speakerConnectionId")
            == speaker.of_type("sessionResumed")[0]["connectionId"]
        )
        # And the listener app opens its URL and joins with its message
        listener_token = service.token(user_id="original-listener-app-user")
        listener_url = f"{service.url}?token={listener_token}&sessionId={session_id}&targetLanguage=es"
        with connect(listener_url, open_timeout=10) as listener_ws:
            listener = Frames(listener_ws)
            listener_ws.send(json.dumps({"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}))
            joined = listener.wait_for("sessionJoined")[0]
            assert (joined["sessionId"], joined["targetLanguage"]) == (session_id, "es")
            assert attribute(service, session_id, "listenerCount") == "1"
            assert service.listener_rows(session_id) == 1
            # And the speaker streams the app's audioChunk frames (no sequence number), asking for its status
            # every 5 s and sending a heartbeat, as the app does
            started = time.monotonic()
            next_status = started
            audio = [pcm[i : i + APP_CHUNK_BYTES] for i in range(0, len(pcm), APP_CHUNK_BYTES)]
            audio += [b"\x00" * APP_CHUNK_BYTES] * 8  # 2 s of silence: the last utterance ends
            speaker_ws.send(json.dumps({"action": "heartbeat", "timestamp": int(time.time() * 1000)}))
            for index, chunk in enumerate(audio):
                if time.monotonic() >= next_status:
                    speaker_ws.send(json.dumps({"action": "getSessionStatus"}))
                    next_status += 5.0
                frame = {
                    "action": "audioChunk",
                    "sessionId": session_id,
                    "audioData": base64.b64encode(chunk).decode(),
                    "timestamp": int(time.time() * 1000),
                    "format": "pcm",
                    "sampleRate": 16000,
                    "channels": 1,
                    "encoding": "s16le",
                }
                speaker_ws.send(json.dumps(frame))
                time.sleep(max(0.0, started + (index + 1) * 0.25 - time.monotonic()))
            # Then every status the speaker page reads carries listenerCount and languageDistribution
            statuses = speaker.wait_for("sessionStatus")
            assert statuses[-1]["listenerCount"] == 1
            assert statuses[-1]["languageDistribution"] == [{"languageCode": "es", "count": 1}]
            assert not speaker.of_type("error"), speaker.of_type("error")
            # And the listener receives the session's content in its language
            captions = listener.wait_for("caption", timeout=30)
            assert {caption["targetLanguage"] for caption in captions} == {"es"}
            # And it hears them: its only content path, translatedAudio, numbered from 1 without a gap, each URL an
            # MP3 its page (another local origin) may fetch
            spoken = listener.wait_for("translatedAudio", timeout=30)
            assert [heard["sequenceNumber"] for heard in spoken] == list(range(1, len(spoken) + 1))
            for heard in spoken:
                assert (heard["sessionId"], heard["targetLanguage"]) == (session_id, "es")
                assert heard["transcript"].strip() and heard["duration"] > 0 and isinstance(heard["timestamp"], int)
            fetched = urllib.request.urlopen(
                urllib.request.Request(spoken[0]["url"], headers={"Origin": APP_ORIGIN}), timeout=10
            )
            mp3 = fetched.read()
            assert fetched.status == 200 and fetched.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
            assert mp3[:3] == b"ID3" or (mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0), mp3[:8]
            # When the speaker app uses its four controls, each with {timestamp}
            for action, notice in (
                ("pauseBroadcast", "broadcastPaused"),
                ("resumeBroadcast", "broadcastResumed"),
                ("muteBroadcast", "broadcastMuted"),
                ("unmuteBroadcast", "broadcastUnmuted"),
            ):
                speaker_ws.send(json.dumps({"action": action, "timestamp": int(time.time() * 1000)}))
                # Then the listener app is told each
                assert listener.wait_for(notice)[0]["sessionId"] == session_id
            # When the speaker app ends the session
            speaker_ws.send(json.dumps({"action": "endSession", "sessionId": session_id, "reason": "user_ended"}))
            # Then the listener app is told, and its row is gone; the session reads as ended
            assert listener.wait_for("sessionEnded")[0]["sessionId"] == session_id
    assert eventually(lambda: service.listener_rows(session_id) == 0)
    status, _headers, body = call_api(service, "GET", f"/sessions/{session_id}", token=token)
    assert status in (200, 404, 410), body
    if status == 200:
        assert json.loads(body)["status"] == "ended"


def test_delete_ends_a_live_session_and_disconnects_its_listeners(
    service: RunningService, apps_session: tuple[str, str, dict[str, Any]]
) -> None:
    token, session_id, _metadata = apps_session
    with connect(f"{service.url}?token={token}&sessionId={session_id}", open_timeout=10) as speaker_ws:
        speaker = Frames(speaker_ws)
        speaker.wait_for("sessionResumed")
        listener_url = f"{service.url}?action=joinSession&sessionId={session_id}&targetLanguage=fr"
        with connect(listener_url, open_timeout=10) as listener_ws:
            listener = Frames(listener_ws)
            listener.wait_for("sessionJoined")
            # When another speaker tries, then the owner deletes it over the HTTP API
            other = service.token(user_id="another-speaker")
            assert call_api(service, "DELETE", f"/sessions/{session_id}", token=other)[0] == 403
            assert call_api(service, "DELETE", f"/sessions/{session_id}")[0] == 401
            assert attribute(service, session_id, "isActive") is True
            status, _headers, body = call_api(service, "DELETE", f"/sessions/{session_id}", token=token)
            # Then it answers 204, the listener and the speaker are told, and the listener is disconnected
            assert (status, body) == (204, b"")
            assert listener.wait_for("sessionEnded")[0]["sessionId"] == session_id
            assert eventually(lambda: listener_ws.close_code is not None, timeout=15)
    assert attribute(service, session_id, "isActive") is False
    assert eventually(lambda: service.listener_rows(session_id) == 0)


def test_a_page_of_another_local_origin_reads_a_transcripts_file_name(
    service: RunningService, apps_session: tuple[str, str, dict[str, Any]]
) -> None:
    # Given the owner's session, and a page of another loopback origin (the apps', the console's) fetching its
    # transcript with the Bearer token, as a link cannot
    token, session_id, _metadata = apps_session
    query = f"{wire.TRANSCRIPT_LANGUAGE}=en&{wire.TRANSCRIPT_FORMAT}={wire.TRANSCRIPT_WEBVTT}"
    status, headers, body = call_api(service, "GET", f"/sessions/{session_id}/transcript?{query}", token=token)

    # Then the answer is the document, and the page may read the name to save it under (CORS exposes it)
    assert (status, body.decode().split("\n", 1)[0]) == (200, "WEBVTT"), body
    assert headers["content-disposition"] == f'attachment; filename="{session_id}.en.vtt"'
    assert headers["access-control-allow-origin"] == APP_ORIGIN
    assert "content-disposition" in headers["access-control-expose-headers"].lower().split(",")
