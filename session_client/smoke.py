"""``make smoke URL=… [TOKEN=…]``: one session through a deployment (or ``make local``), end to end, with the client
library: a speaker creates a session, a listener joins it in Spanish, the speaker streams espeak-ng speech (100 ms
chunks in real time, then 1.5 s of silence), a final ``transcript`` reaches the speaker and a final Spanish
``caption`` of the same segment reaches the listener; then the speaker ends the session and the listener hears
``sessionEnded``.

    python -m session_client.smoke wss://abc.execute-api.eu-west-1.amazonaws.com/prod --token "$TOKEN"
    python -m session_client.smoke ws://127.0.0.1:8080/dev     # the local run: a token from its dev issuer

Each step is printed with the time since the start; a step that fails (or waits longer than its timeout) ends the
smoke with the step's name and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar
from urllib.parse import urlparse

from websockets.exceptions import ConnectionClosed

from lambda_src.adapters.transcription import recognizers
from lambda_src.adapters.translation import stand_in
from local_run import speech
from session_client import messages
from session_client.audio import CHUNK_MILLISECONDS, chunk_bytes
from session_client.cli import TOKEN_VARIABLE
from session_client.clients import ListenerClient, SpeakerClient
from session_client.connection import ConnectionLost, HandshakeRefused, ServiceRefused

SOURCE_LANGUAGE = "en"
TARGET_LANGUAGE = "es"
SPOKEN = "Good morning everyone. Welcome to the service. Today we talk about the weather."
SILENCE_SECONDS = 1.5  # after the speech, so that the recognizer closes the last utterance
CHUNK_SECONDS = CHUNK_MILLISECONDS / 1000
STEP_TIMEOUT_SECONDS = 30.0
LOCAL_SPEAKER = "smoke-speaker"  # the user a token minted for a local run names
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# What may go wrong in a step: the service refuses, a connection drops for good, the network or a tool fails.
STEP_FAILURES = (
    HandshakeRefused,
    ServiceRefused,
    ConnectionLost,
    ConnectionClosed,
    messages.MessageFormatError,
    OSError,
    RuntimeError,
)

_Value = TypeVar("_Value")


class StepFailed(Exception):
    """A step of the smoke did not do what it should (``step`` names it)."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass
class Heard:
    """What the speaker and the listener received, as it arrives (their clients' ``on_message``)."""

    transcripts: list[messages.Transcript] = field(default_factory=list)
    captions: list[messages.Caption] = field(default_factory=list)
    ended: list[messages.SessionEnded] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused_chunks: int = 0
    answered_chunks: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def speaker_message(self, message: messages.ServerMessage) -> None:
        if isinstance(message, messages.Transcript):
            self.transcripts.append(message)
        elif isinstance(message, messages.AudioReceived):
            self.answered_chunks += 1
            self.refused_chunks += not message.accepted
        elif isinstance(message, messages.ErrorMessage):
            self.errors.append(f"the speaker got error {message.code}: {message.message}")
        self.changed.set()

    def listener_message(self, message: messages.ServerMessage) -> None:
        if isinstance(message, messages.Caption):
            self.captions.append(message)
        elif isinstance(message, messages.SessionEnded):
            self.ended.append(message)
        elif isinstance(message, messages.ErrorMessage):
            self.errors.append(f"the listener got error {message.code}: {message.message}")
        self.changed.set()

    def final_transcripts(self) -> dict[str, messages.Transcript]:
        return {t.segment_id: t for t in self.transcripts if not t.is_partial and t.text.strip()}

    def matching_caption(self) -> messages.Caption | None:
        """A final caption in the target language of a segment the speaker has a final transcript of."""
        finals = self.final_transcripts()
        for caption in self.captions:
            if (
                not caption.is_partial
                and caption.target_language == TARGET_LANGUAGE
                and caption.segment_id in finals
                and caption.text.strip()
            ):
                return caption
        return None

    async def until(self, found: Callable[[], _Value | None]) -> _Value:
        """Wait for ``found`` to return something; an error message from the service fails the wait."""
        while True:
            if self.errors:
                raise RuntimeError(self.errors[0])
            if (value := found()) is not None:
                return value
            self.changed.clear()
            await self.changed.wait()


@dataclass
class SmokeResult:
    """What a passed smoke saw: the session, the matched segment's transcript and caption, the end."""

    session_id: str
    transcript: messages.Transcript
    caption: messages.Caption
    ended: messages.SessionEnded
    stand_in: bool
    steps: list[str]


def is_local(url: str) -> bool:
    """Whether ``url`` is a local run's (a loopback address)."""
    return urlparse(url).hostname in LOOPBACK_HOSTS


def token_for(url: str, given: str | None) -> str:
    """The speaker token: ``given``, else ``$SESSION_TOKEN``, else (for a local run's URL) one minted by its dev
    issuer, as ``make token`` does."""
    token = given or os.environ.get(TOKEN_VARIABLE)
    if token:
        return token
    if is_local(url):
        from local_run.token import LocalRunNotStarted, mint_local_token  # only for a local run

        try:
            return mint_local_token(user_id=LOCAL_SPEAKER)
        except LocalRunNotStarted as not_started:
            raise StepFailed("token", f"no token given, and none can be minted: {not_started}") from not_started
    raise StepFailed(
        "token",
        f"a speaker token is needed for {url}: TOKEN=… (or ${TOKEN_VARIABLE}); "
        "docs/operations.md, Deploying, says how to get one",
    )


def local_run_note(url: str) -> str | None:
    """What to say of the engines behind a local run's captions (None for a deployment's URL)."""
    if not is_local(url):
        return None
    return (
        f"this is the local run: the recognizer is {recognizers.LOCAL} (US English, standing in for Amazon "
        "Transcribe) and captions are translated by Apertium for the language pairs it has (`make local` lists "
        "them), by the stand-in translator's mark for the others"
    )


def stand_in_note(caption: messages.Caption) -> str | None:
    """What to say when the caption carries the local stand-in translator's mark."""
    if not caption.text.startswith(stand_in.mark("", caption.target_language)):
        return None
    return (
        f"the caption carries the local stand-in translator's mark ({stand_in.mark('…', caption.target_language)}): "
        f"the local run has no Apertium pair {caption.source_language}→{caption.target_language}, so its "
        f"translator is the {stand_in.NAME}"
    )


class Smoke:
    """One run of the smoke against ``url``; ``out`` gets a line per step."""

    def __init__(
        self, url: str, token: str, *, out: TextIO, step_timeout: float = STEP_TIMEOUT_SECONDS, text: str = SPOKEN
    ) -> None:
        self.url = url
        self.token = token
        self.out = out
        self.step_timeout = step_timeout
        self.text = text
        self.heard = Heard()
        self.steps: list[str] = []
        self._started = time.monotonic()

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self._started:6.1f} s] {line}", file=self.out, flush=True)

    async def step(
        self,
        name: str,
        waiting_for: str,
        work: Awaitable[_Value],
        detail: Callable[[_Value], str],
        timeout: float | None = None,
    ) -> _Value:
        """Run one step within its timeout and print it; any failure becomes :class:`StepFailed` naming it."""
        limit = self.step_timeout if timeout is None else timeout
        began = time.monotonic()
        try:
            async with asyncio.timeout(limit):
                value = await work
        except TimeoutError as timed_out:
            raise StepFailed(name, f"no {waiting_for} within {limit:.0f} s") from timed_out
        except STEP_FAILURES as failure:
            raise StepFailed(name, f"{type(failure).__name__}: {failure}") from failure
        self.steps.append(name)
        self.say(f"{name:<12} ok ({time.monotonic() - began:.1f} s): {detail(value)}")
        return value

    async def run(self) -> SmokeResult:
        self.say(f"smoke against {self.url}")
        with tempfile.TemporaryDirectory() as directory:
            pcm = await self.step(
                "speech",
                "speech from espeak-ng",
                asyncio.to_thread(speech.speak_pcm, self.text, Path(directory)),
                lambda pcm: f"{len(pcm) / chunk_bytes() * CHUNK_SECONDS:.1f} s of espeak-ng speech: {self.text!r}",
            )
        size = chunk_bytes()
        # The last chunk padded with silence to a whole one (a short tail could be under the service's smallest).
        chunks = [chunk.ljust(size, b"\x00") for chunk in speech.chunks(pcm, size)]
        chunks += [b"\x00" * size] * round(SILENCE_SECONDS / CHUNK_SECONDS)
        speaker = await self.step(
            "create",
            "sessionCreated",
            SpeakerClient.create(
                self.url, token=self.token, source_language=SOURCE_LANGUAGE, on_message=self.heard.speaker_message
            ),
            lambda client: f"session {client.session_id}",
        )
        assert speaker.session_id is not None
        listener: ListenerClient | None = None
        try:
            listener = await self.step(
                "join",
                "sessionJoined",
                ListenerClient.join(
                    self.url,
                    session_id=speaker.session_id,
                    language=TARGET_LANGUAGE,
                    on_message=self.heard.listener_message,
                ),
                lambda client: f"a listener in {client.language}",
            )
            seconds = len(chunks) * CHUNK_SECONDS
            await self.step(
                "audio",
                "every chunk's audioReceived",
                self._stream(speaker, chunks),
                lambda sent: (
                    f"{sent} chunks of {CHUNK_MILLISECONDS} ms in real time ({SILENCE_SECONDS} s of silence last),"
                    " each answered"
                ),
                timeout=seconds + self.step_timeout,
            )
            await self.step(
                "transcript",
                "final transcript on the speaker",
                self.heard.until(lambda: next(iter(self.heard.final_transcripts().values()), None)),
                lambda found: f"segment {found.segment_id}: {found.text!r}",
            )
            caption = await self.step(
                "caption",
                f"final {TARGET_LANGUAGE} caption of a segment the speaker has a final transcript of",
                self.heard.until(self.heard.matching_caption),
                lambda found: f"segment {found.segment_id} in {found.target_language}: {found.text!r}",
            )
            note = stand_in_note(caption)
            for said in (local_run_note(self.url), note):
                if said:
                    self.say(f"note: {said}")
            await self.step("end", "sessionEnded reply", speaker.end(), lambda ended: f"reason {ended.reason}")
            ended = await self.step(
                "sessionEnded",
                "sessionEnded on the listener",
                self.heard.until(lambda: next(iter(self.heard.ended), None)),
                lambda message: f"the listener heard it ({message.reason})",
            )
        finally:
            if not self.heard.ended and "end" not in self.steps:
                await self._end_quietly(speaker)
            await speaker.close()
            if listener is not None:
                await listener.close()
        matched = self.heard.final_transcripts()[caption.segment_id]
        if self.heard.refused_chunks:
            self.say(f"note: {self.heard.refused_chunks} chunks were answered accepted: false")
        self.say(f"passed: {' -> '.join(self.steps)}")
        return SmokeResult(speaker.session_id, matched, caption, ended, note is not None, self.steps)

    async def _end_quietly(self, speaker: SpeakerClient) -> None:
        """After a failed step: end the session anyway (best effort), so that it does not stay active (it would count
        against the speaker's active sessions until the sweeper ends it)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.step_timeout):
                await speaker.end()

    async def _stream(self, speaker: SpeakerClient, chunks: list[bytes]) -> int:
        started = time.monotonic()
        for index, chunk in enumerate(chunks):
            # Real time: chunk i leaves i chunk-durations after the first.
            await asyncio.sleep(max(0.0, started + index * CHUNK_SECONDS - time.monotonic()))
            if self.heard.errors:
                raise RuntimeError(self.heard.errors[0])
            await speaker.send_audio(chunk)
        # Every chunk answered before the next step: the end must not overtake a chunk still in flight (the
        # service would refuse that chunk, the session having ended).
        await self.heard.until(lambda: True if self.heard.answered_chunks >= len(chunks) else None)
        return len(chunks)


async def smoke(
    url: str, token: str, *, out: TextIO = sys.stdout, step_timeout: float = STEP_TIMEOUT_SECONDS, text: str = SPOKEN
) -> SmokeResult:
    """Run the smoke (see the module's docstring); raises :class:`StepFailed` naming the step that failed."""
    return await Smoke(url, token, out=out, step_timeout=step_timeout, text=text).run()


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = argparse.ArgumentParser(prog="python -m session_client.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the service's WebSocket URL, stage included (the stack output WebSocketUrl)")
    parser.add_argument("--token", help=f"a speaker token (default ${TOKEN_VARIABLE}; locally, one is minted)")
    parser.add_argument("--timeout", type=float, default=STEP_TIMEOUT_SECONDS, help="seconds each step may take")
    parser.add_argument("--text", default=SPOKEN, help="what the speaker says (in English)")
    args = parser.parse_args(argv)
    try:
        token = token_for(args.url, args.token)
        asyncio.run(smoke(args.url, token, out=out, step_timeout=args.timeout, text=args.text))
    except StepFailed as failed:
        print(f"smoke FAILED at step {failed.step}: {failed.reason}", file=err, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
