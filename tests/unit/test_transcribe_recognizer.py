"""The deployed recognizer's protocol, against a real WebSocket peer on loopback that speaks Amazon Transcribe
streaming's WebSocket API (event-stream frames in and out). The peer is a test stand-in: no engine runs here."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import botocore.auth
import pytest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from hypothesis import given
from hypothesis import strategies as st
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import ServerConnection, serve

from lambda_src.adapters.transcription import transcribe_recognizer as transcribe
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.model.partial_result_processor import Item, RecognitionResult

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def transcript_event(*results: dict[str, Any]) -> bytes:
    headers = {":content-type": "application/json", ":event-type": "TranscriptEvent", ":message-type": "event"}
    return transcribe.encode_event(headers, json.dumps({"Transcript": {"Results": list(results)}}).encode())


def result(result_id: str, partial: bool, *words: tuple[str, bool | None]) -> dict[str, Any]:
    items = []
    for n, (word, stable) in enumerate(words):
        item: dict[str, Any] = {"Content": word, "StartTime": n * 0.5, "EndTime": n * 0.5 + 0.4}
        item["Type"] = "punctuation" if word in ".?!," else "pronunciation"
        if stable is not None:
            item["Stable"] = stable
        items.append(item)
    transcript = " ".join(word for word, _stable in words)
    return {
        "ResultId": result_id, "StartTime": 0.0, "EndTime": len(words) * 0.5, "IsPartial": partial,
        "Alternatives": [{"Transcript": transcript, "Items": items}],
    }  # fmt: skip


@dataclass
class Peer:
    """What the stand-in saw, and what it answers: ``replies[n]`` after the n-th audio event."""

    replies: dict[int, list[bytes]] = field(default_factory=dict)
    on_end: list[bytes] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        self.paths.append(connection.request.path)
        buffer = EventStreamBuffer()
        for frame in connection:
            buffer.add_data(frame if isinstance(frame, bytes) else frame.encode())
            for message in buffer:
                headers: dict[str, Any] = message.headers  # type: ignore[assignment]  # botocore-stubs say int; it is a dict
                assert headers[":event-type"] == "AudioEvent"
                if not message.payload:  # the end of the audio
                    for reply in self.on_end:
                        connection.send(reply)
                    self.ended.set()
                    connection.close()
                    return
                self.audio.append(message.payload)
                for reply in self.replies.get(len(self.audio), []):
                    connection.send(reply)


@pytest.fixture
def peer() -> Iterator[tuple[Peer, Any]]:
    peer = Peer()
    with serve(peer.handle, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]

        def connect(url: str) -> Any:  # the signed URL, sent to the stand-in instead of AWS
            parts = urlsplit(url)
            return ws_connect(f"ws://127.0.0.1:{port}{parts.path}?{parts.query}", legacy=True)

        yield peer, connect
        server.shutdown()


# A moment that is not the day the tests run: the URL's two dates must both come from it.
SIGNED_AT = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)


@pytest.fixture
def signing_moment(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """botocore's signing clock (the one it reads once per signature) stopped at SIGNED_AT."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: SIGNED_AT.replace(tzinfo=None))
    return SIGNED_AT


def sigv4_query_signature(url: str, secret_key: str, region: str, service: str) -> str:
    """The signature a SigV4 presigned GET URL must carry, computed by the documented algorithm (canonical request,
    string to sign, derived key) from the URL itself: its ``X-Amz-Date`` and its credential scope."""
    parts = urlsplit(url)
    query = [(k, v) for k, values in parse_qs(parts.query).items() for v in values if k != "X-Amz-Signature"]
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query))
    params = dict(query)
    canonical_request = "\n".join(
        ["GET", parts.path, canonical_query, f"host:{parts.netloc}", "", "host", hashlib.sha256(b"").hexdigest()]
    )
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in scope.split("/"):  # date, region, service, "aws4_request"
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert scope.split("/")[1:3] == [region, service]
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_the_stream_url_is_signed_for_transcribe_with_the_sessions_language_and_stability(
    signing_moment: datetime,
) -> None:
    url = transcribe.presigned_url("eu-west-1", CREDENTIALS, "es", 0.92)
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert (parts.scheme, parts.netloc, parts.path) == (
        "wss", "transcribestreaming.eu-west-1.amazonaws.com:8443", "/stream-transcription-websocket"
    )  # fmt: skip
    assert query["language-code"] == "es-US" and query["media-encoding"] == "pcm" and query["sample-rate"] == "16000"
    assert query["enable-partial-results-stabilization"] == "true" and query["partial-results-stability"] == "low"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "300" and len(query["X-Amz-Signature"]) == 64
    # The signature covers the request: another language signs differently.
    other = transcribe.presigned_url("eu-west-1", CREDENTIALS, "fr", 0.92)
    assert parse_qs(urlsplit(other).query)["X-Amz-Signature"] != [query["X-Amz-Signature"]]


def test_one_moment_dates_the_stream_urls_signature_and_its_credential_scope(signing_moment: datetime) -> None:
    # Given the signing clock at a moment that is not today (one second before midnight, UTC)
    url = transcribe.presigned_url("eu-west-1", CREDENTIALS, "es", 0.92)
    query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    # Then the signing time and the credential scope's date are both that moment's
    assert query["X-Amz-Date"] == signing_moment.strftime("%Y%m%dT%H%M%SZ")
    assert query["X-Amz-Credential"] == f"AKIDEXAMPLE/{signing_moment:%Y%m%d}/eu-west-1/transcribe/aws4_request"
    # And the signature is the one AWS computes from the URL's own date and scope (the URL would be accepted)
    assert query["X-Amz-Signature"] == sigv4_query_signature(url, CREDENTIALS.secret_key, "eu-west-1", "transcribe")


@pytest.mark.parametrize(("threshold", "level"), [(0.70, "high"), (0.79, "high"), (0.85, "medium"), (0.95, "low")])
def test_the_sessions_threshold_chooses_the_stabilization_level(threshold: float, level: str) -> None:
    assert transcribe.stabilization_level(threshold) == level


@given(
    st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=4),
    st.binary(max_size=2048),
)
def test_event_frames_read_back_with_botocores_reader(headers: dict[str, str], payload: bytes) -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(transcribe.encode_event(headers, payload))
    (message,) = list(buffer)
    assert message.headers == headers and message.payload == payload


def test_audio_goes_out_and_results_come_back_in_transcribes_shape(peer: tuple[Peer, Any]) -> None:
    stand_in, connect = peer
    stand_in.replies[2] = [transcript_event(result("r1", True, ("hello", True), ("word", False)))]
    stand_in.on_end = [transcript_event(result("r1", False, ("hello", None), ("world", None), (".", None)))]
    recognizer = transcribe.TranscribeRecognizer(
        "en", 0.85, region="us-east-1", credentials=CREDENTIALS, connect=connect
    )
    out: list[RecognitionResult] = []
    for chunk in (b"\x01\x00" * 1600, b"\x02\x00" * 1600, b"\x03\x00" * 1600):
        out += recognizer.feed(chunk)
    out += recognizer.close()
    assert stand_in.ended.wait(5)
    assert stand_in.audio == [b"\x01\x00" * 1600, b"\x02\x00" * 1600, b"\x03\x00" * 1600]
    assert "language-code=en-US" in stand_in.paths[0]
    partial, final = out[0], out[-1]
    assert partial == RecognitionResult(
        "r1", 0.0, 1.0, True, (Item("hello", 0.0, 0.4, stability=1.0), Item("word", 0.5, 0.9, stability=0.0))
    )
    assert final.is_partial is False and [i.content for i in final.items] == ["hello", "world", "."]
    assert all(i.stability is None for i in final.items) and final.items[-1].punctuation


def test_items_without_the_stable_flag_read_as_no_stability_known() -> None:
    (parsed,) = transcribe.results_of({"Transcript": {"Results": [result("r", True, ("hola", None))]}})
    assert parsed.items[0].stability is None


def test_a_refusal_from_transcribe_is_raised_with_its_type_and_message(peer: tuple[Peer, Any]) -> None:
    stand_in, connect = peer
    refusal = transcribe.encode_event(
        {":exception-type": "BadRequestException", ":message-type": "exception"}, b"Your request timed out"
    )
    stand_in.replies[1] = [refusal]
    recognizer = transcribe.TranscribeRecognizer(
        "en", 0.85, region="us-east-1", credentials=CREDENTIALS, connect=connect
    )
    with pytest.raises(transcribe.RecognizerError, match="BadRequestException: Your request timed out"):
        for _ in range(500):  # the refusal arrives a moment after the audio that caused it
            recognizer.feed(b"\x00\x00" * 1600)
            time.sleep(0.01)


def test_a_language_transcribe_cannot_stream_is_refused_before_connecting() -> None:
    def never(url: str) -> Any:
        raise AssertionError("connected")

    with pytest.raises(ServiceError) as refused:
        transcribe.TranscribeRecognizer("xx", 0.85, region="us-east-1", credentials=CREDENTIALS, connect=never)
    assert refused.value.code is ErrorCode.INVALID_PARAMETERS and refused.value.field == "sourceLanguage"
