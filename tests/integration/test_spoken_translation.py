"""Listeners hear the translation (decision record 0039), end to end through the local run with the client library:
one speaker streams espeak-ng speech in real time to a session with Spanish, French and German listeners, and what
each listener received, what the audio bucket (the run's S3-API server) holds and what each URL serves is checked.

- Each Spanish and French listener that wants audio receives ``translatedAudio`` for each final segment of its
  language: numbered 1, 2, 3... without a gap, its ``transcript`` the caption that listener got for the same
  ``segmentId``, its URL fetched as the web console's page fetches it (with its ``Origin``) answering 200 with
  ``Access-Control-Allow-Origin`` and an MP3 that LAME decodes to ``duration`` seconds.
- A listener with ``output=captions`` gets captions and no audio; one that paused its playback gets captions and no
  audio while paused; a language whose only listener wants captions is never synthesized.
- Synthesis happens once per final segment and language, however many listeners: three Spanish listeners and one
  French cost exactly one stored object per (segment, language). The bucket's versioning is turned on for the
  session, so each ``PutObject`` is a version of its own: a second synthesis of a segment (which would overwrite the
  same key) is counted, not hidden.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local_run.speech import CHUNK_BYTES, chunks, speak_pcm
from session_client import ListenerClient, SpeakerClient, messages
from tests.integration.conftest import RunningService

pytestmark = pytest.mark.integration

# Three sentences with a second of silence between them: three utterances, so three final segments to number.
SENTENCES = ("Good morning everyone.", "Welcome to the service.", "Today we talk about the weather and the river.")
PAUSE_CHUNKS = 10
SILENCE_CHUNKS = 20  # 2 s after the speech: the last utterance ends
CHUNK_SECONDS = 0.1
QUIET_SECONDS = 3.0  # nothing new for this long, every final spoken: the session has said all it will
SETTLE_TIMEOUT_SECONDS = 40.0
DURATION_TOLERANCE_SECONDS = 0.1
AUDIO_LANGUAGES = ("es", "fr")


@dataclass
class Listener:
    """One listener's choices and every message it was sent (its client's ``on_message``)."""

    name: str
    language: str
    output: str | None = None
    paused: bool = False
    received: list[messages.ServerMessage] = field(default_factory=list)
    client: ListenerClient | None = None

    def of(self, kind: type[Any]) -> list[Any]:
        return [message for message in list(self.received) if isinstance(message, kind)]

    def final_captions(self) -> dict[str, str]:
        """The text of each final caption it got, by segment id (the ones a synthesis speaks: not empty)."""
        return {c.segment_id: c.text for c in self.of(messages.Caption) if not c.is_partial and c.text.strip()}

    def audio(self) -> list[messages.TranslatedAudio]:
        return self.of(messages.TranslatedAudio)


@dataclass
class Fetched:
    """What a ``translatedAudio`` URL served a page of the console's origin, and how long LAME says it plays."""

    status: int
    allow_origin: str | None
    content_type: str | None
    decoded_seconds: float


@dataclass
class Observed:
    session_id: str
    console_origin: str
    listeners: dict[str, Listener]
    versions: list[dict[str, Any]]  # every object version under the session's prefix in the audio bucket
    fetched: dict[str, Fetched]  # by URL


def _listeners() -> dict[str, Listener]:
    cast = [
        Listener("spanish-1", "es"),
        Listener("spanish-2", "es"),
        Listener("spanish-3", "es"),
        Listener("french", "fr"),
        Listener("spanish-captions-only", "es", output="captions"),
        Listener("french-paused", "fr", paused=True),
        Listener("german-captions-only", "de", output="captions"),
    ]
    return {listener.name: listener for listener in cast}


def _audio_bucket(service: RunningService) -> str:
    assert service.run.assembly is not None
    (bucket,) = service.run.assembly.buckets.values()
    return bucket.name


def _spoken_everything(listeners: dict[str, Listener]) -> bool:
    """Every final caption of an audio listener has its ``translatedAudio`` (and at least one final came)."""
    wanting = [listener for listener in listeners.values() if listener.output is None and not listener.paused]
    finals = [listener.final_captions() for listener in wanting]
    return all(finals) and all(
        set(captions) <= {audio.segment_id for audio in listener.audio()}
        for listener, captions in zip(wanting, finals, strict=True)
    )


async def _settle(listeners: dict[str, Listener], done: Callable[[], bool]) -> None:
    """Wait until ``done`` holds and no listener has been sent anything for ``QUIET_SECONDS``."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    count, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_count = sum(len(listener.received) for listener in listeners.values())
        if now_count != count:
            count, since = now_count, time.monotonic()
        elif done() and time.monotonic() - since >= QUIET_SECONDS:
            return
        await asyncio.sleep(0.2)
    counts = {name: len(listener.received) for name, listener in listeners.items()}
    raise AssertionError(f"the session did not settle: messages received {counts}")


def _fetch(url: str, origin: str, directory: Path) -> Fetched:
    """GET ``url`` as a page on ``origin`` does, and decode the answer with LAME (not the service's own MP3 code)."""
    request = urllib.request.Request(url, headers={"Origin": origin})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local run, on loopback
        status, headers, body = response.status, response.headers, response.read()
    name = str(abs(hash(url)))
    mp3, wav = directory / f"{name}.mp3", directory / f"{name}.wav"
    mp3.write_bytes(body)
    subprocess.run(["lame", "--quiet", "--decode", str(mp3), str(wav)], check=True, timeout=30)
    with wave.open(str(wav), "rb") as decoded:
        seconds = decoded.getnframes() / decoded.getframerate()
    return Fetched(status, headers.get("Access-Control-Allow-Origin"), headers.get("Content-Type"), seconds)


async def _run(service: RunningService, directory: Path) -> Observed:
    audio: list[bytes] = []
    for index, sentence in enumerate(SENTENCES):
        pcm = await asyncio.to_thread(speak_pcm, sentence, directory)
        silence = SILENCE_CHUNKS if index == len(SENTENCES) - 1 else PAUSE_CHUNKS
        audio += [chunk.ljust(CHUNK_BYTES, b"\x00") for chunk in chunks(pcm)] + [b"\x00" * CHUNK_BYTES] * silence
    s3, bucket = service.run.storage.client(), _audio_bucket(service)
    # Every PutObject a version of its own, so that a repeated synthesis of a segment cannot hide behind its key.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    speaker = await SpeakerClient.create(service.url, token=service.token(user_id="spoken-translation-speaker"))
    session_id = speaker.session_id
    assert session_id is not None
    listeners = _listeners()
    try:
        for listener in listeners.values():
            listener.client = await ListenerClient.join(
                service.url,
                session_id=session_id,
                language=listener.language,
                output=listener.output,
                on_message=listener.received.append,
            )
            if listener.paused:
                assert (await listener.client.pause_playback()).type == "playbackPaused"
        assert (await speaker.status()).listener_count == len(listeners)
        # When the speaker streams its speech in real time, then silence
        started = time.monotonic()
        for index, chunk in enumerate(audio):
            await asyncio.sleep(max(0.0, started + index * CHUNK_SECONDS - time.monotonic()))
            await speaker.send_audio(chunk)
        await _settle(listeners, lambda: _spoken_everything(listeners))
        await speaker.end()
    finally:
        for client in (speaker, *(listener.client for listener in listeners.values())):
            if client is not None:
                await client.close()
    prefix = f"audio/{session_id}/"
    versions = s3.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions", [])
    console_origin = f"http://127.0.0.1:{service.run.http_port}"
    urls = {audio.url for listener in listeners.values() for audio in listener.audio()}
    fetched = {url: await asyncio.to_thread(_fetch, url, console_origin, directory) for url in urls}
    return Observed(session_id, console_origin, listeners, versions, fetched)


@pytest.fixture(scope="module")
def observed(roomy_service: RunningService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """One session, one stream, every listener (the roomy run: seven listeners, over the other run's cap)."""
    yield asyncio.run(_run(roomy_service, tmp_path_factory.mktemp("spoken")))


def test_each_listener_that_wants_audio_hears_each_final_segment_in_its_language(observed: Observed) -> None:
    for name in ("spanish-1", "spanish-2", "spanish-3", "french"):
        listener = observed.listeners[name]
        captions = listener.final_captions()
        heard = listener.audio()
        # Then every final caption it got was spoken to it, once, in its language, in this session
        assert captions, name
        assert [audio.segment_id for audio in heard] == list(captions), name
        assert {(audio.session_id, audio.target_language) for audio in heard} == {
            (observed.session_id, listener.language)
        }
        # Numbered 1, 2, 3... without a gap, in the order they arrived
        assert [audio.sequence_number for audio in heard] == list(range(1, len(heard) + 1)), name
        # Each saying what the caption of the same segment said to this listener
        for audio in heard:
            assert audio.transcript == captions[audio.segment_id], (name, audio.segment_id)
    # And the listeners of a language hear the same thing: the same segments, numbers and URLs
    spanish = [
        [(a.segment_id, a.sequence_number, a.url) for a in observed.listeners[f"spanish-{n}"].audio()]
        for n in (1, 2, 3)
    ]
    assert spanish[0] == spanish[1] == spanish[2]


def test_each_url_serves_the_console_an_mp3_as_long_as_its_duration(observed: Observed) -> None:
    heard = [audio for name in ("spanish-1", "french") for audio in observed.listeners[name].audio()]
    assert heard
    for audio in heard:
        fetched = observed.fetched[audio.url]
        # Then a page of the console's origin may read it
        assert fetched.status == 200, audio.url
        assert fetched.allow_origin == observed.console_origin, audio.url
        assert fetched.content_type == "audio/mpeg", audio.url
        # And LAME decodes it to the length the message announced
        assert audio.duration > 0.3, audio
        assert abs(fetched.decoded_seconds - audio.duration) <= DURATION_TOLERANCE_SECONDS, (
            audio.segment_id,
            fetched.decoded_seconds,
            audio.duration,
        )


def test_a_captions_only_listener_gets_captions_and_no_audio(observed: Observed) -> None:
    for name, language in (("spanish-captions-only", "es"), ("german-captions-only", "de")):
        listener = observed.listeners[name]
        assert listener.final_captions(), name
        assert {caption.target_language for caption in listener.of(messages.Caption)} == {language}
        assert listener.audio() == [], name
    # The Spanish one got the same final captions as the Spanish listeners who hear them
    assert (
        observed.listeners["spanish-captions-only"].final_captions() == observed.listeners["spanish-1"].final_captions()
    )


def test_a_listener_that_paused_its_playback_gets_captions_and_no_audio(observed: Observed) -> None:
    paused, french = observed.listeners["french-paused"], observed.listeners["french"]
    assert paused.final_captions() == french.final_captions() != {}
    assert paused.audio() == []
    assert french.audio()  # (the language was spoken, to the French listener who did not pause)


def test_each_final_segment_is_synthesized_once_per_language_whatever_the_number_of_listeners(
    observed: Observed,
) -> None:
    # Given the final segments spoken in Spanish (three listeners, a captions-only fourth) and in French (one
    # listener, a paused second), and the German captions-only listener's
    expected = sorted(
        f"audio/{observed.session_id}/{language}/{segment}.mp3"
        for language, name in (("es", "spanish-1"), ("fr", "french"))
        for segment in observed.listeners[name].final_captions()
    )
    # Then the bucket holds exactly one object version per (segment, language) with audio listeners: every one
    # stored once, none per listener, and none in German
    stored = sorted(version["Key"] for version in observed.versions)
    assert stored == expected
    assert not [key for key in stored if f"/{observed.session_id}/de/" in key]
    assert len(stored) == sum(len(observed.listeners[n].final_captions()) for n in ("spanish-1", "french"))
