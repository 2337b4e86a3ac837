"""``python -m session_client listen`` with the speech: ``--output`` on the join, ``--save`` writing each segment's
MP3 in order, ``--play`` piping each to one player at a time in sequence-number order, and what is refused before
joining (no player, speech asked with captions only)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from lambda_src.contract import wire
from lambda_src.protocol import messages
from session_client import cli
from session_client.playback import find_player
from tests.unit.scripted_service import JOINED, URL, AudioServer, FakeService, eventually, options, translated_audio
from tests.unit.server_samples import NOW_MS, SESSION_ID

ENDED = messages.session_ended(SESSION_ID, wire.ENDED_BY_SPEAKER, NOW_MS)


async def _listen_to(
    service: FakeService, frames: list[dict[str, Any]], out: io.StringIO, err: io.StringIO, **listening: Any
) -> int:
    """``listen`` against the scripted service, which sends ``frames`` (then the session's end) once it joined."""
    listening.setdefault("output", wire.OUTPUT_BOTH)
    task = asyncio.ensure_future(cli.listen(URL, SESSION_ID, "es", out, err, **listening, **options(service)))
    await eventually(lambda: bool(service.sockets) or task.done())
    for frame in [*frames, ENDED]:
        service.sockets[0].push(frame)
        await asyncio.sleep(0.01)
    service.sockets[0].drop()
    async with asyncio.timeout(20):
        return await task


def test_save_writes_each_segment_in_order_and_prints_its_transcript(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    service = FakeService(JOINED)
    with AudioServer() as server:
        urls = {n: server.serve(f"/audio/es/{n}.mp3", f"ID3 segment {n}".encode()) for n in (1, 2, 3)}
        frames = [translated_audio(n, urls[n], transcript=f"frase {n}") for n in (2, 1, 3)]
        status = asyncio.run(_listen_to(service, frames, out, err, output=wire.OUTPUT_AUDIO, save=tmp_path))
    assert status == 0, err.getvalue()
    # Then the join asked for audio only, and each segment is a file named by its language and number
    assert service.queries[0]["output"] == "audio"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["es-00001.mp3", "es-00002.mp3", "es-00003.mp3"]
    assert [(tmp_path / f"es-0000{n}.mp3").read_bytes() for n in (1, 2, 3)] == [
        b"ID3 segment %d" % n for n in (1, 2, 3)
    ]
    # And, captions not wanted, the transcripts are printed in the segments' order
    assert out.getvalue() == "frase 1\nfrase 2\nfrase 3\n"
    assert "ended (endedBySpeaker)" in err.getvalue()


def test_with_both_the_captions_are_printed_and_the_speech_saved(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    service = FakeService(JOINED)
    caption = messages.caption(SESSION_ID, "segment-1", "en", "es", "hola a todos", False, NOW_MS)
    with AudioServer() as server:
        frames = [caption, translated_audio(1, server.serve("/1.mp3", b"ID3 one"), transcript="hola a todos")]
        assert asyncio.run(_listen_to(service, frames, out, err, save=tmp_path)) == 0
    assert out.getvalue() == "hola a todos\n"  # once: the caption's
    assert (tmp_path / "es-00001.mp3").read_bytes() == b"ID3 one"


@pytest.mark.parametrize(("output", "printed"), [(wire.OUTPUT_AUDIO, "buenos días\n"), (wire.OUTPUT_BOTH, "")])
def test_speech_neither_saved_nor_played_prints_its_transcript_when_captions_do_not(output: str, printed: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    service = FakeService(JOINED)
    frames = [translated_audio(1, "http://127.0.0.1:9/never-fetched.mp3", transcript="buenos días")]
    assert asyncio.run(_listen_to(service, frames, out, err, output=output)) == 0
    assert out.getvalue() == printed


def test_a_segment_whose_fetch_is_refused_is_skipped_with_a_notice(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    service = FakeService(JOINED)
    with AudioServer() as server:
        expired = server.serve("/1.mp3", b"<Code>AccessDenied</Code><Message>Request has expired</Message>", 403)
        frames = [translated_audio(1, expired), translated_audio(2, server.serve("/2.mp3", b"ID3 two"))]
        assert asyncio.run(_listen_to(service, frames, out, err, save=tmp_path)) == 0
    assert [path.name for path in tmp_path.iterdir()] == ["es-00002.mp3"]
    assert "es-00001.mp3 skipped: " in err.getvalue() and "403: AccessDenied: Request has expired" in err.getvalue()


FAKE_PLAYER = """#!{python}
import os, sys, time
record = os.environ["PLAYED"]
lock = record + ".lock"
overlapping = os.path.exists(lock)
open(lock, "w").close()
audio = sys.stdin.buffer.read()
time.sleep(0.05)
state = "overlapping" if overlapping else "alone"
with open(record, "a") as played:
    played.write(" ".join(sys.argv[1:]) + "|" + audio.decode() + "|" + state + "\\n")
os.remove(lock)
"""


def test_play_pipes_each_segment_to_one_player_at_a_time_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a player on the PATH that records what it was given, and whether another was playing
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    player = bin_dir / "mpg123"
    player.write_text(FAKE_PLAYER.format(python=sys.executable))
    player.chmod(0o755)
    record = tmp_path / "played.txt"
    monkeypatch.setenv("PLAYED", str(record))
    command = find_player(str(bin_dir))
    assert command == (str(player), "-q", "-")
    out, err = io.StringIO(), io.StringIO()
    service = FakeService(JOINED)
    with AudioServer() as server:
        # When segments arrive out of order, quicker than they play
        frames = [translated_audio(n, server.serve(f"/{n}.mp3", b"ID3 %d" % n)) for n in (1, 3, 2, 5, 4)]
        assert asyncio.run(_listen_to(service, frames, out, err, player=command)) == 0, err.getvalue()
    # Then each was played whole, in order, never two at once, and none is left out at the session's end
    assert record.read_text().splitlines() == [f"-q -|ID3 {n}|alone" for n in (1, 2, 3, 4, 5)]


def test_a_failing_player_is_a_notice_and_the_next_segment_plays(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    service = FakeService(JOINED)
    with AudioServer() as server:
        frames = [translated_audio(n, server.serve(f"/{n}.mp3", b"ID3")) for n in (1, 2)]
        status = asyncio.run(_listen_to(service, frames, out, err, player=["sh", "-c", "cat >/dev/null; exit 3"]))
    assert status == 0
    assert err.getvalue().count("not played: sh exited with 3") == 2


def test_audio_alone_in_a_language_no_voice_speaks_is_a_notice_and_asks_for_nothing() -> None:
    # The service sends such a listener its captions (docs/protocol.md, audioUnavailable): nothing to change
    out, err = io.StringIO(), io.StringIO()
    service = FakeService(JOINED)
    unavailable = messages.audio_unavailable(SESSION_ID, "es", NOW_MS)
    assert asyncio.run(_listen_to(service, [unavailable], out, err, output=wire.OUTPUT_AUDIO)) == 0
    assert service.sockets[0].sent == []
    assert "no voice speaks es: captions only" in err.getvalue()


# -- what main refuses before joining, and the output it asks for -------------------------------------------------
@pytest.fixture()
def no_join(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("listen joined")

    monkeypatch.setattr(cli.ListenerClient, "join", refuse)


def test_play_without_a_player_on_the_path_exits_2_before_joining(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_join: None
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    err = io.StringIO()
    assert cli.main(["listen", SESSION_ID, "--language", "es", "--play"], io.StringIO(), err) == 2
    assert "no MP3 player on PATH; install mpg123, ffmpeg (ffplay) or sox (play" in err.getvalue()


@pytest.mark.parametrize("hearing", [["--play"], ["--save", "out"]])
def test_speech_asked_with_captions_only_is_refused(hearing: list[str], no_join: None) -> None:
    err = io.StringIO()
    argv = ["listen", SESSION_ID, "--language", "es", "--output", "captions", *hearing]
    assert cli.main(argv, io.StringIO(), err) == 2
    assert "--output audio or both" in err.getvalue()


def test_save_into_a_directory_that_cannot_be_made_exits_2(tmp_path: Path, no_join: None) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    err = io.StringIO()
    assert cli.main(["listen", SESSION_ID, "--language", "es", "--save", str(blocked / "dir")], io.StringIO(), err) == 2
    assert err.getvalue().startswith("--save: ")


@pytest.mark.parametrize(
    ("flags", "output"),
    [([], "captions"), (["--output", "audio"], "audio"), (["--save", "{tmp}"], "both"), (["--play"], "both")],
)
def test_the_output_asked_for_is_captions_unless_the_speech_is_saved_or_played(
    flags: list[str], output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: dict[str, Any] = {}

    async def listen(*args: Any, **kwargs: Any) -> int:
        asked.update(kwargs)
        return 0

    monkeypatch.setattr(cli, "listen", listen)
    monkeypatch.setattr(cli, "find_player", lambda: ("/usr/bin/mpg123", "-q", "-"))
    argv = ["listen", SESSION_ID, "--language", "es", *(flag.format(tmp=tmp_path / "saved") for flag in flags)]
    assert cli.main(argv, io.StringIO(), io.StringIO()) == 0
    assert asked["output"] == output
    assert os.path.isdir(tmp_path / "saved") == ("--save" in flags)
