"""The command line: ``listen`` prints a session's captions in a language, and saves or plays its speech; ``speak``
creates a session, prints its id and streams a WAV file to it in real time, printing the transcripts.

    python -m session_client listen golden-eagle-427 --language es [--url ws://127.0.0.1:8080/dev]
    python -m session_client listen golden-eagle-427 --language es --save heard/ --play [--output audio]
    python -m session_client speak talk.wav --token "$(make -s token | tail -1)" [--language en] [--url ...]

On a terminal a partial caption or transcript is rewritten in place until its final arrives, which keeps its own
line; elsewhere (a pipe, a file) only finals are printed. Notices (pauses, drops, the end) go to standard error.

``listen --output`` chooses what the service sends (``captions``, ``audio`` or ``both``): ``captions`` unless
``--save`` or ``--play`` asks for the speech, then ``both``; with ``audio`` alone, each segment's transcript is
printed instead of the captions. ``--save DIR`` writes each segment as ``DIR/<language>-<sequenceNumber>.mp3``
(five digits: ``es-00001.mp3``); ``--play`` pipes each to the first player on ``PATH`` (``mpg123``, ``ffplay`` or
sox's ``play``; none: exit status 2 before joining). Segments are fetched as they arrive and saved and played one at
a time in sequence-number order; at the session's end what has arrived is still saved and played.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from lambda_src.contract import wire
from session_client import messages
from session_client.audio import CHUNK_MILLISECONDS, UnsupportedAudio, wav_chunks
from session_client.audio_segments import AudioSegment
from session_client.clients import ListenerClient, SpeakerClient
from session_client.connection import DEFAULT_URL, ConnectionLost, HandshakeRefused, ServiceRefused
from session_client.playback import INSTALL_A_PLAYER, PlayerFailed, SegmentQueue, find_player, play

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
    if isinstance(message, messages.AudioUnavailable):
        return f"no voice speaks {message.target_language}: captions only"
    if isinstance(message, messages.ErrorMessage):
        return f"error {message.code}: {message.message}"
    return None


class Hearing:
    """What ``listen`` does with each message: captions and transcripts printed, speech saved to ``save`` and played
    by ``player`` (a command that reads an MP3 on standard input), notices on ``err``."""

    def __init__(
        self, out: TextIO, err: TextIO, *, output: str, save: Path | None, player: Sequence[str] | None
    ) -> None:
        self.printer = LinePrinter(out, out.isatty())
        self.err = err
        self.output = output
        self.save = save
        self.player = player

    async def hear(self, segment: AudioSegment, mp3: bytes) -> None:
        """One segment's speech, in its turn: saved, its transcript printed (when captions are not), played."""
        if self.save is not None:
            try:
                _write(self.save / segment.file_name, mp3)
            except OSError as failed:
                self.notice(f"{segment.file_name} not saved: {failed}")
        if self.output == wire.OUTPUT_AUDIO:
            self.printer.show(segment.transcript, is_partial=False)
        if self.player is not None:
            try:
                await play(self.player, mp3)
            except (PlayerFailed, OSError) as failed:
                self.notice(f"{segment.file_name} not played: {failed}")

    def skipped(self, segment: AudioSegment, reason: str) -> None:
        self.notice(f"{segment.file_name} skipped: {reason}")

    def notice(self, text: str) -> None:
        self.printer.notice(text, self.err)

    async def read(self, message: messages.ServerMessage, client: ListenerClient) -> None:
        if isinstance(message, messages.Caption):
            self.printer.show(message.text, message.is_partial)
        elif isinstance(message, messages.TranslatedAudio):  # audio wanted, neither saved nor played
            if self.output == wire.OUTPUT_AUDIO:  # with both, its caption has been printed
                self.printer.show(message.transcript, is_partial=False)
        elif (notice := describe(message)) is not None:
            self.notice(notice)


async def listen(
    url: str,
    session_id: str,
    language: str,
    out: TextIO,
    err: TextIO,
    *,
    output: str = wire.OUTPUT_CAPTIONS,
    save: Path | None = None,
    player: Sequence[str] | None = None,
    **client_options: Any,
) -> int:
    """Listen until the session ends (see :class:`Hearing`); ``client_options``: the listener client's (tests give a
    connector)."""
    hearing = Hearing(out, err, output=output, save=save, player=player)
    queue = SegmentQueue(hearing.hear, on_skipped=hearing.skipped) if save is not None or player is not None else None
    try:
        client = await ListenerClient.join(
            url,
            session_id=session_id,
            language=language,
            output=output,
            on_audio=queue.put if queue is not None else None,
            **client_options,
        )
        joined = client.joined
        assert joined is not None
        hearing.notice(
            f"joined {session_id} ({joined.source_language} -> {language}), {joined.listener_count} listening"
        )
        try:
            async for message in client:
                await hearing.read(message, client)
        finally:
            await client.close()
        if queue is not None:
            await queue.close()  # what arrived is still saved and played
    finally:
        if queue is not None:
            await queue.cancel()
    if client.failure is not None:
        hearing.notice(f"connection lost: {client.failure}")
        return 1
    return 0


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` whole or not at all: a player or a script watching the directory sees no half file."""
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)


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
    listen_command = commands.add_parser(
        "listen", help="print a session's captions in a language, and save or play its speech"
    )
    listen_command.add_argument("session_id")
    listen_command.add_argument("--language", required=True, help="the captions' language (ISO 639-1, e.g. es)")
    listen_command.add_argument(
        "--output",
        choices=wire.OUTPUTS,
        help="what the service sends (default: captions; both with --save or --play)",
    )
    listen_command.add_argument(
        "--save", type=Path, metavar="DIR", help="write each spoken segment as DIR/<language>-<number>.mp3"
    )
    listen_command.add_argument(
        "--play", action="store_true", help="play each spoken segment in order (mpg123, ffplay or sox's play)"
    )
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
            return _listen(args, out, err)
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


def _listen(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``listen``: its options checked (and a player found) before it joins."""
    hearing = args.save is not None or args.play
    output = args.output or (wire.OUTPUT_BOTH if hearing else wire.OUTPUT_CAPTIONS)
    if hearing and output == wire.OUTPUT_CAPTIONS:
        print("--save and --play need the speech: --output audio or both", file=err)
        return 2
    player = None
    if args.play and (player := find_player()) is None:
        print(f"--play: no MP3 player on PATH; install {INSTALL_A_PLAYER}", file=err)
        return 2
    if args.save is not None:
        try:
            args.save.mkdir(parents=True, exist_ok=True)
        except OSError as failed:
            print(f"--save: {failed}", file=err)
            return 2
    return asyncio.run(
        listen(args.url, args.session_id, args.language, out, err, output=output, save=args.save, player=player)
    )
