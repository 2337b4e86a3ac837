"""What a listener hears: each ``translatedAudio`` as an :class:`AudioSegment` (the message, and its MP3 to fetch).

The service posts a short-lived GET URL of each segment's MP3 (valid about 5 minutes): :func:`fetch_audio` reads it
with the standard library's ``urllib`` (the client library needs nothing beyond ``websockets``) in a thread, so an
asyncio program is not held up, and anything but a ``200`` with its body raises :class:`AudioFetchFailed`.

    listener = await ListenerClient.join(url, session_id=session_id, language="es", output="audio", on_audio=heard)
    ...
    mp3 = await segment.fetch()  # bytes of an MP3 that plays segment.duration seconds
"""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from session_client.messages import TranslatedAudio

FETCH_TIMEOUT_SECONDS = 10.0
# The schemes a segment's URL may have: anything else (file:, ftp:) is refused before a request is made.
_SCHEMES = frozenset({"http", "https"})
_S3_DETAIL = re.compile(rb"<(Code|Message)>([^<]{1,200})</\1>")


class AudioFetchFailed(Exception):
    """A segment's audio could not be fetched: its ``status`` (None: no HTTP answer) and why. The message names the
    URL without its query, which holds the signature."""

    def __init__(self, url: str, status: int | None, reason: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.status = status
        self.reason = reason
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
        super().__init__(f"{shown}: {status if status is not None else 'no answer'}: {reason}")


@dataclass(frozen=True)
class AudioSegment:
    """One ``translatedAudio``: the ``message`` as it came, and :meth:`fetch` for its MP3."""

    message: TranslatedAudio

    @property
    def sequence_number(self) -> int:
        """Its place in its language's order (consecutive from 1 per session and language)."""
        return self.message.sequence_number

    @property
    def language(self) -> str:
        return self.message.target_language

    @property
    def transcript(self) -> str:
        """The text spoken (its caption's)."""
        return self.message.transcript

    @property
    def duration(self) -> float:
        """How long it plays, in seconds."""
        return self.message.duration

    @property
    def file_name(self) -> str:
        """``<language>-<sequenceNumber>.mp3``, the number in five digits (``es-00007.mp3``): names that sort in
        playing order."""
        return f"{self.language}-{self.sequence_number:05d}.mp3"

    async def fetch(self, *, timeout: float = FETCH_TIMEOUT_SECONDS) -> bytes:
        """The MP3 (see :func:`fetch_audio`)."""
        return await fetch_audio(self.message, timeout=timeout)


async def fetch_audio(message: TranslatedAudio | AudioSegment, *, timeout: float = FETCH_TIMEOUT_SECONDS) -> bytes:
    """The MP3 of a ``translatedAudio``: a GET of its ``url`` in a thread. Anything but a ``200`` (an expired URL's
    ``403`` included), a URL that is not HTTP(S), or no answer within ``timeout`` seconds raises
    :class:`AudioFetchFailed`."""
    url = (message.message if isinstance(message, AudioSegment) else message).url
    if urlsplit(url).scheme.lower() not in _SCHEMES:
        raise AudioFetchFailed(url, None, "not an HTTP(S) URL")
    return await asyncio.to_thread(_get, url, timeout)


def _get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (an http(s) URL, checked)
            if response.status != 200:
                raise AudioFetchFailed(url, response.status, response.reason or "not 200")
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as refused:
        raise AudioFetchFailed(url, refused.code, _reason(refused)) from None
    except (urllib.error.URLError, OSError) as failed:  # refused, unreachable, timed out, cut short
        reason = failed.reason if isinstance(failed, urllib.error.URLError) else failed
        raise AudioFetchFailed(url, None, str(reason)) from failed


def _reason(refused: urllib.error.HTTPError) -> str:
    """An HTTP refusal in words: S3's error code and message when its body has them (``AccessDenied: Request has
    expired``), else the status's reason."""
    try:
        body = refused.read(4096)
    except OSError:
        body = b""
    found = dict(_S3_DETAIL.findall(body))
    detail = ": ".join(part.decode("utf-8", "replace") for part in (found.get(b"Code"), found.get(b"Message")) if part)
    return detail or str(refused.reason)
