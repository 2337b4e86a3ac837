"""The deployed recognizer: Amazon Transcribe streaming, over its WebSocket API.

One stream per session's audio flow: a presigned ``wss://`` URL (SigV4 query signing by botocore, the functions'
one AWS SDK), audio sent as event-stream ``AudioEvent`` messages, ``TranscriptEvent`` messages read back and
turned into :class:`~lambda_src.model.partial_result_processor.RecognitionResult`. botocore reads event streams
(:class:`botocore.eventstream.EventStreamBuffer`) but has no writer for them, so :func:`encode_event` writes the
frame (prelude, headers, payload, two CRC32s) — held to botocore's reader by the tests.

Stability: with partial-results stabilization on, Transcribe marks each item of a partial ``Stable`` (true or
false), not with a score. A stable item reads as stability 1.0 and an unstable one as 0.0, so the session's
threshold decides through the stabilization level Transcribe is asked for (:func:`stabilization_level`): the
more stability the session asks for, the more accurate (and slower to stabilize) the level. A stream keeps the
level it was opened with, so a session whose threshold moves to another level gets a new stream at its next
segment boundary (:meth:`TranscribeRecognizer.fits`). Items without the flag read as "no stability known", and the
processor then goes by the partial flag alone.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from urllib.parse import urlencode

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.eventstream import EventStreamBuffer, EventStreamMessage
from websockets.exceptions import ConnectionClosed

from lambda_src.contract.languages import TRANSCRIBE_STREAMING_LOCALES
from lambda_src.contract.limits import SAMPLE_RATE_HZ
from lambda_src.model.partial_result_processor import Item, RecognitionResult
from lambda_src.model.partial_results import PartialResultConfig
from lambda_src.model.recognizer import unsupported_language

NAME = "Amazon Transcribe streaming"
SERVICE = "transcribe"
PATH = "/stream-transcription-websocket"
PORT = 8443
URL_LIFETIME_SECONDS = 300  # the URL only opens the stream; an open stream runs up to 4 hours
CLOSE_TIMEOUT_SECONDS = 10.0  # how long close() waits for the last results after the end of the audio


class RecognizerError(Exception):
    """Transcribe refused the stream or failed during it (its exception type and message)."""


class Socket(Protocol):
    """What the recognizer needs of a WebSocket client connection (``websockets.sync.client``)."""

    def send(self, message: bytes) -> None: ...

    def recv(self, timeout: float | None = None) -> str | bytes: ...

    def close(self) -> None: ...


Connect = Callable[[str], Socket]


def connect(url: str) -> Socket:
    """A WebSocket client connection to ``url`` (``websockets``' synchronous client)."""
    from websockets.sync.client import connect as open_connection

    # Held for the stream's life, so not as a context manager (websockets' legacy=True says so).
    return open_connection(url, open_timeout=5, max_size=None, compression=None, legacy=True)


def stabilization_level(threshold: float) -> str:
    """The partial-results stability level for the session's ``minStabilityThreshold`` (0.70–0.95)."""
    if threshold >= 0.90:
        return "low"  # most accurate: the words shown are the ones least likely to change
    if threshold >= 0.80:
        return "medium"
    return "high"  # fastest to stabilize


def presigned_url(region: str, credentials: Any, language: str, threshold: float) -> str:
    """The stream's URL, signed for URL_LIFETIME_SECONDS with ``credentials`` (botocore credentials). botocore
    reads the clock once for the signature: that one moment is both ``X-Amz-Date`` and the credential scope's
    date (AWS refuses a URL whose two dates differ)."""
    host = f"transcribestreaming.{region}.amazonaws.com:{PORT}"
    query = urlencode(
        {
            "language-code": TRANSCRIBE_STREAMING_LOCALES[language],
            "media-encoding": "pcm",
            "sample-rate": str(SAMPLE_RATE_HZ),
            "enable-partial-results-stabilization": "true",
            "partial-results-stability": stabilization_level(threshold),
        }
    )
    request = AWSRequest(method="GET", url=f"https://{host}{PATH}?{query}")
    SigV4QueryAuth(credentials.get_frozen_credentials(), SERVICE, region, expires=URL_LIFETIME_SECONDS).add_auth(
        request
    )
    assert request.url is not None
    return "wss://" + request.url.removeprefix("https://")


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string headers (type 7)."""
    encoded = b"".join(
        len(name.encode()).to_bytes(1, "big") + name.encode() + b"\x07" + len(value.encode()).to_bytes(2, "big")
        + value.encode()
        for name, value in headers.items()
    )  # fmt: skip
    total = 4 + 4 + 4 + len(encoded) + len(payload) + 4
    prelude = total.to_bytes(4, "big") + len(encoded).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + encoded + payload
    return message + zlib.crc32(message).to_bytes(4, "big")


def audio_event(pcm: bytes) -> bytes:
    """An ``AudioEvent`` carrying ``pcm``; an empty one tells Transcribe the audio ended."""
    headers = {":content-type": "application/octet-stream", ":event-type": "AudioEvent", ":message-type": "event"}
    return encode_event(headers, pcm)


def results_of(event: dict[str, Any]) -> list[RecognitionResult]:
    """The results of one ``TranscriptEvent`` (its best alternative's items)."""
    results = []
    for result in event.get("Transcript", {}).get("Results", []):
        alternatives = result.get("Alternatives") or [{}]
        items = tuple(
            Item(
                content=item["Content"],
                start_time=float(item["StartTime"]),
                end_time=float(item["EndTime"]),
                punctuation=item.get("Type") == "punctuation",
                stability=None if "Stable" not in item or not result["IsPartial"] else float(bool(item["Stable"])),
            )
            for item in alternatives[0].get("Items", [])
        )
        results.append(
            RecognitionResult(
                result["ResultId"], float(result["StartTime"]), float(result["EndTime"]), result["IsPartial"], items
            )
        )
    return results


class TranscribeRecognizer:
    """One Transcribe stream of one session's audio."""

    def __init__(
        self, language: str, threshold: float, *, region: str, credentials: Any, connect: Connect = connect
    ) -> None:
        if language not in TRANSCRIBE_STREAMING_LOCALES:
            raise unsupported_language(language, NAME, tuple(sorted(TRANSCRIBE_STREAMING_LOCALES)))
        self._socket = connect(presigned_url(region, credentials, language, threshold))
        self._buffer = EventStreamBuffer()
        self.stabilization = stabilization_level(threshold)

    def fits(self, config: PartialResultConfig) -> bool:
        """Whether the session's threshold still asks for the level this stream was opened with."""
        return stabilization_level(float(config.min_stability_threshold)) == self.stabilization

    def feed(self, pcm: bytes) -> list[RecognitionResult]:
        self._socket.send(audio_event(pcm))
        return list(self._received(timeout=0))

    def close(self) -> list[RecognitionResult]:
        """End the audio, then read the last results until Transcribe closes the stream."""
        self._socket.send(audio_event(b""))
        try:
            return list(self._received(timeout=CLOSE_TIMEOUT_SECONDS, until_closed=True))
        finally:
            self._socket.close()

    def _received(self, *, timeout: float, until_closed: bool = False) -> Iterator[RecognitionResult]:
        while True:
            try:
                frame = self._socket.recv(timeout=timeout)
            except TimeoutError:
                return
            except ConnectionClosed:
                if until_closed:
                    return
                raise
            self._buffer.add_data(frame if isinstance(frame, bytes) else frame.encode())
            for message in self._buffer:
                yield from _results_of_message(message)


def _results_of_message(message: EventStreamMessage) -> list[RecognitionResult]:
    headers: dict[str, Any] = message.headers  # type: ignore[assignment]  # botocore-stubs say int; it is a dict
    if headers.get(":message-type") == "exception":
        raise RecognizerError(f"{headers.get(':exception-type')}: {message.payload.decode(errors='replace')}")
    if headers.get(":event-type") != "TranscriptEvent":
        return []
    return results_of(json.loads(message.payload))
