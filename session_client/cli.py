"""The command line: ``listen`` prints a session's captions in a language; ``speak`` creates a session, prints its id
and streams a WAV file to it in real time, printing the transcripts.

    python -m session_client listen golden-eagle-427 --language es [--url ws://127.0.0.1:8080/dev]
    python -m session_client speak talk.wav --token "$(make -s token | tail -1)" [--language en] [--url ...]

On a terminal a partial caption or transcript is rewritten in place until its final arrives, which keeps its own
line; elsewhere (a pipe, a file) only finals are printed. Notices (pauses, drops, the end) go to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from session_client import messages
from session_client.audio import CHUNK_MILLISECONDS, UnsupportedAudio, wav_chunks
from session_client.clients import ListenerClient, SpeakerClient
from session_client.connection import DEFAULT_URL, ConnectionLost, HandshakeRefused, ServiceRefused

TOKEN_VARIABLE = "SESSION_TOKEN"
# After the last chunk, how long the speaker waits for the last transcripts before ending the session.
DEFAULT_TAIL_SECONDS = 3.0


class LinePrinter:
    """Prints segments of text: a partial replaces the line in place (terminals only), a final ends the line."""

    def __init__(self, out: TextIO, in_place: bool) -> None:
        self.out = out
        self.in_place = in_place
        self._open_line = False

    def show(self, text: str, is_partial: bool) -> None:
        if is_partial and not self.in_place:
            return
        if self.in_place:
            self.out.write("\r\x1b[K")
        self.out.write(text)
        if is_partial:
            self._open_line = True
        else:
            self.out.write("\n")
            self._open_line = False
        self.out.flush()

    def notice(self, text: str, err: TextIO) -> None:
        """A line on ``err`` that does not break a partial line on the same terminal."""
        if self._open_line and self.in_place:
            self.out.write("\n")
            self._open_line = False
        print(text, file=err, flush=True)


def describe(message: messages.ServerMessage) -> str | None:
    """A notice worth a line on standard error (None: nothing to say)."""
    if isinstance(message, messages.SessionEnded):
        return f"session {message.session_id} ended ({message.reason})"
    if isinstance(message, messages.SpeakerDisconnected):
        return f"the speaker dropped; the session ends unless it is back within {message.grace_seconds} s"
    if isinstance(message, messages.SpeakerStateChanged):
        return f"broadcast: paused {message.is_paused}, muted {message.is_muted}, volume {message.volume}"
    if isinstance(message, messages.VolumeChanged):
        return f"volume {message.volume_level}"
    if isinstance(message, messages.SessionEvent) and message.type.startswith(("broadcast", "speaker")):
        return message.type
    if isinstance(message, messages.ErrorMessage):
        return f"error {message.code}: {message.message}"
    return None


async def listen(url: str, session_id: str, language: str, out: TextIO, err: TextIO) -> int:
    printer = LinePrinter(out, out.isatty())
    client = await ListenerClient.join(url, session_id=session_id, language=language)
    joined = client.joined
    assert joined is not None
    printer.notice(
        f"joined {session_id} ({joined.source_language} -> {language}), {joined.listener_count} listening", err
    )
    try:
        async for message in client:
            if isinstance(message, messages.Caption):
                printer.show(message.text, message.is_partial)
            elif (notice := describe(message)) is not None:
                printer.notice(notice, err)
    finally:
        await client.close()
    if client.failure is not None:
        printer.notice(f"connection lost: {client.failure}", err)
        return 1
    return 0


async def speak(url: str, wav: Path, token: str, language: str, tail: float, out: TextIO, err: TextIO) -> int:
    chunks = list(wav_chunks(wav))  # refuses another format before a session is created
    printer = LinePrinter(out, out.isatty())
    dropped: dict[str, int] = {}

    def on_message(message: messages.ServerMessage) -> None:
        if isinstance(message, messages.Transcript):
            printer.show(message.text, message.is_partial)
        elif isinstance(message, messages.AudioReceived):
            if not message.accepted:
                dropped[message.reason or "?"] = dropped.get(message.reason or "?", 0) + 1
        elif (notice := describe(message)) is not None:
            printer.notice(notice, err)

    client = await SpeakerClient.create(url, token=token, source_language=language, on_message=on_message)
    print(client.session_id, file=out, flush=True)
    try:
        started = time.monotonic()
        for index, chunk in enumerate(chunks):
            # Real time: chunk i leaves at i chunk-durations after the first.
            await asyncio.sleep(max(0.0, started + index * CHUNK_MILLISECONDS / 1000 - time.monotonic()))
            await client.send_audio(chunk)
        await asyncio.sleep(tail)
        await client.end()
    finally:
        await client.close()
    if dropped:
        printer.notice(f"chunks not stored: {dropped}", err)
    return 0


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="python -m session_client", description=__doc__.split("\n\n")[0])
    parse.add_argument("--url", default=DEFAULT_URL, help=f"the service's WebSocket URL (default {DEFAULT_URL})")
    commands = parse.add_subparsers(dest="command", required=True)
    listen_command = commands.add_parser("listen", help="print a session's captions in a language")
    listen_command.add_argument("session_id")
    listen_command.add_argument("--language", required=True, help="the captions' language (ISO 639-1, e.g. es)")
    speak_command = commands.add_parser("speak", help="create a session and stream a WAV file to it")
    speak_command.add_argument("wav", type=Path, help="16 kHz mono 16-bit PCM WAV")
    speak_command.add_argument(
        "--token", default=os.environ.get(TOKEN_VARIABLE), help=f"speaker token (${TOKEN_VARIABLE})"
    )
    speak_command.add_argument("--language", default="en", help="the speech's language (default en)")
    speak_command.add_argument(
        "--tail", type=float, default=DEFAULT_TAIL_SECONDS, help="seconds to wait for the last transcripts"
    )
    for command in (listen_command, speak_command):
        command.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parse


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "listen":
            return asyncio.run(listen(args.url, args.session_id, args.language, out, err))
        if not args.token:
            print(
                f"a speaker token is needed: --token or ${TOKEN_VARIABLE} (locally: make -s token | tail -1)", file=err
            )
            return 2
        return asyncio.run(speak(args.url, args.wav, args.token, args.language, args.tail, out, err))
    except UnsupportedAudio as refused:
        print(refused, file=err)
        return 2
    except (HandshakeRefused, ServiceRefused, ConnectionLost, OSError) as failure:
        print(f"{args.url}: {failure}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130
