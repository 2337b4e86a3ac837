"""The listener's speech in the client library: ``on_audio`` hands each ``translatedAudio`` on as an
:class:`AudioSegment`, :func:`fetch_audio` reads its MP3 and refuses anything but a 200, and :class:`SegmentQueue`
hands segments on one at a time in sequence-number order; :func:`find_player` picks a player on a PATH."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from lambda_src.contract import wire
from lambda_src.protocol import messages
from session_client import AudioFetchFailed, AudioSegment, ListenerClient, fetch_audio
from session_client.messages import Caption, TranslatedAudio, parse
from session_client.playback import PLAYERS, SegmentQueue, find_player, play
from tests.unit.scripted_service import (
    JOINED,
    URL,
    AudioServer,
    FakeService,
    eventually,
    options,
    run,
    translated_audio,
)
from tests.unit.server_samples import NOW_MS, SESSION_ID


def _caption(text: str) -> dict[str, object]:
    return messages.caption(SESSION_ID, "segment-1", "en", "es", text, False, NOW_MS)


def _segment(number: int, url: str = "http://127.0.0.1:9/none.mp3") -> AudioSegment:
    message = parse(messages.encode(translated_audio(number, url)))
    assert isinstance(message, TranslatedAudio)
    return AudioSegment(message)


# -- on_audio ---------------------------------------------------------------------------------------------------
def test_on_audio_gets_each_translated_audio_as_a_segment_and_the_stream_the_rest() -> None:
    async def scenario() -> None:
        heard: list[AudioSegment] = []
        service = FakeService(JOINED)
        listener = await ListenerClient.join(
            URL, session_id=SESSION_ID, language="es", output=wire.OUTPUT_BOTH, on_audio=heard.append,
            **options(service),
        )  # fmt: skip
        socket = service.sockets[0]
        socket.push(translated_audio(1, "https://bucket.test/1.mp3", transcript="buenos días"))
        socket.push(_caption("hola"))
        socket.push(translated_audio(2, "https://bucket.test/2.mp3"))
        await eventually(lambda: len(heard) == 2)
        # Then the callback got both segments in order, each with its message whole
        assert [(s.sequence_number, s.language, s.message.url) for s in heard] == [
            (1, "es", "https://bucket.test/1.mp3"),
            (2, "es", "https://bucket.test/2.mp3"),
        ]
        assert (heard[0].transcript, heard[0].duration, heard[0].file_name) == ("buenos días", 1.5, "es-00001.mp3")
        # And the stream has the caption only
        assert [type(m) for m in listener.received()] == [Caption]
        # And the join asked for both
        assert service.queries[0]["output"] == "both"
        await listener.close()

    run(scenario)


def test_without_on_audio_translated_audio_is_in_the_stream() -> None:
    async def scenario() -> None:
        service = FakeService(JOINED)
        listener = await ListenerClient.join(URL, session_id=SESSION_ID, language="es", **options(service))
        service.sockets[0].push(translated_audio(1, "https://bucket.test/1.mp3"))
        message = await listener.next_message(timeout=1)
        assert isinstance(message, TranslatedAudio) and message.sequence_number == 1
        await listener.close()

    run(scenario)


def test_a_callback_that_raises_is_logged_and_the_connection_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        heard: list[int] = []

        def on_audio(segment: AudioSegment) -> None:
            heard.append(segment.sequence_number)
            if segment.sequence_number == 1:
                raise RuntimeError("the application's own bug")

        service = FakeService(JOINED)
        listener = await ListenerClient.join(
            URL, session_id=SESSION_ID, language="es", on_audio=on_audio, **options(service)
        )
        socket = service.sockets[0]
        socket.push(translated_audio(1, "https://bucket.test/1.mp3"))
        socket.push(translated_audio(2, "https://bucket.test/2.mp3"))
        await eventually(lambda: heard == [1, 2])
        # Then the connection was neither taken for broken nor replaced
        assert (listener.is_open, len(service.queries), socket.closed) == (True, 1, False)
        await listener.close()

    with caplog.at_level(logging.ERROR, logger="session_client.connection"):
        run(scenario)
    assert "a callback failed on a AudioSegment" in caplog.text
    assert "bucket.test" not in caplog.text  # the URL and its signature are not logged


# -- fetch_audio --------------------------------------------------------------------------------------------------
def test_fetch_audio_returns_the_body_of_a_200() -> None:
    with AudioServer() as server:
        url = server.serve("/audio/es/1.mp3", b"ID3 the mp3")
        assert asyncio.run(fetch_audio(_segment(1, url).message)) == b"ID3 the mp3"
        assert asyncio.run(_segment(1, url).fetch()) == b"ID3 the mp3"
        assert server.asked == ["/audio/es/1.mp3?X-Amz-Signature=secret"] * 2


def test_a_refused_fetch_raises_with_s3s_reason_and_without_the_signature() -> None:
    expired = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    with AudioServer() as server:
        url = server.serve("/audio/es/1.mp3", expired, status=403)
        with pytest.raises(AudioFetchFailed) as refused:
            asyncio.run(fetch_audio(_segment(1, url)))
    assert (refused.value.status, refused.value.reason) == (403, "AccessDenied: Request has expired")
    assert str(refused.value) == f"{server.base}/audio/es/1.mp3: 403: AccessDenied: Request has expired"
    assert "secret" not in str(refused.value)


def test_a_2xx_that_is_not_200_is_refused() -> None:
    with AudioServer() as server:
        url = server.serve("/partial.mp3", b"ID3", status=206)
        with pytest.raises(AudioFetchFailed) as refused:
            asyncio.run(fetch_audio(_segment(1, url)))
    assert refused.value.status == 206


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.test/a.mp3"])
def test_a_url_that_is_not_http_is_refused_before_any_request(url: str) -> None:
    with pytest.raises(AudioFetchFailed, match="not an HTTP"):
        asyncio.run(fetch_audio(_segment(1, url)))


def test_no_answer_is_a_fetch_failure_without_a_status() -> None:
    with AudioServer() as server:
        url = server.serve("/gone.mp3", b"")
    with pytest.raises(AudioFetchFailed) as failed:  # the server has stopped: the connection is refused
        asyncio.run(fetch_audio(_segment(1, url), timeout=2))
    assert failed.value.status is None


# -- SegmentQueue -----------------------------------------------------------------------------------------------
class Recorder:
    """A queue's handler that records what it is handed, and whether two were ever handled at once."""

    def __init__(self) -> None:
        self.handled: list[tuple[int, bytes]] = []
        self.skipped: list[tuple[int, str]] = []
        self.busy = 0
        self.overlapped = False

    async def handle(self, segment: AudioSegment, audio: bytes) -> None:
        self.busy += 1
        self.overlapped |= self.busy > 1
        await asyncio.sleep(0.01)
        self.handled.append((segment.sequence_number, audio))
        self.busy -= 1

    def skip(self, segment: AudioSegment, reason: str) -> None:
        self.skipped.append((segment.sequence_number, reason))


async def _fetched(segment: AudioSegment) -> bytes:
    if "fail" in segment.message.url:
        raise AudioFetchFailed(segment.message.url, 403, "AccessDenied")
    return f"mp3 {segment.sequence_number}".encode()


def test_the_queue_hands_segments_on_in_order_one_at_a_time() -> None:
    async def scenario() -> Recorder:
        recorder = Recorder()
        queue = SegmentQueue(recorder.handle, on_skipped=recorder.skip, fetch=_fetched, reorder_wait=5)
        # Given segment 1, then 3 and 4 before 2
        queue.put(_segment(1))
        await asyncio.sleep(0)
        for number in (3, 4):
            queue.put(_segment(number))
        await asyncio.sleep(0.05)
        # Then 3 waits for 2
        assert [number for number, _ in recorder.handled] == [1]
        queue.put(_segment(2))
        await queue.close()
        return recorder

    recorder = asyncio.run(scenario())
    assert recorder.handled == [(n, f"mp3 {n}".encode()) for n in (1, 2, 3, 4)]
    assert (recorder.overlapped, recorder.skipped) == (False, [])


def test_a_missing_number_is_waited_for_a_while_then_skipped_and_a_late_one_dropped() -> None:
    async def scenario() -> Recorder:
        recorder = Recorder()
        queue = SegmentQueue(recorder.handle, on_skipped=recorder.skip, fetch=_fetched, reorder_wait=0.1)
        queue.put(_segment(1))
        queue.put(_segment(3))
        await eventually(lambda: len(recorder.handled) == 2)
        queue.put(_segment(2))  # too late: 3 has been handed on
        queue.put(_segment(3))  # and a duplicate
        await queue.close()
        return recorder

    recorder = asyncio.run(scenario())
    assert [number for number, _ in recorder.handled] == [1, 3]
    assert recorder.skipped == [(2, "arrived after segment 3"), (3, "arrived after segment 3")]


def test_a_late_joiners_first_segment_waits_a_while_for_a_lower_one() -> None:
    async def scenario() -> Recorder:
        recorder = Recorder()
        queue = SegmentQueue(recorder.handle, on_skipped=recorder.skip, fetch=_fetched, reorder_wait=0.2)
        # Given a listener that joined at segment 6, whose 7 overtook its 6
        queue.put(_segment(7))
        await asyncio.sleep(0.05)
        queue.put(_segment(6))
        # And later a first segment of 9 with nothing before it
        await eventually(lambda: len(recorder.handled) == 2)
        queue.put(_segment(9))
        await eventually(lambda: len(recorder.handled) == 3)
        await queue.close()
        return recorder

    recorder = asyncio.run(scenario())
    assert [number for number, _ in recorder.handled] == [6, 7, 9]
    assert recorder.skipped == []


def test_a_failed_fetch_is_skipped_and_the_next_handed_on() -> None:
    async def scenario() -> Recorder:
        recorder = Recorder()
        queue = SegmentQueue(recorder.handle, on_skipped=recorder.skip, fetch=_fetched)
        queue.put(_segment(1, "https://bucket.test/fail.mp3"))
        queue.put(_segment(2))
        await queue.close()
        return recorder

    recorder = asyncio.run(scenario())
    assert [number for number, _ in recorder.handled] == [2]
    assert recorder.skipped == [(1, "https://bucket.test/fail.mp3: 403: AccessDenied")]


def test_closing_hands_on_what_is_held_without_waiting_for_a_gap() -> None:
    async def scenario() -> tuple[Recorder, float]:
        recorder = Recorder()
        queue = SegmentQueue(recorder.handle, fetch=_fetched, reorder_wait=60)
        queue.put(_segment(1))
        await eventually(lambda: len(recorder.handled) == 1)
        queue.put(_segment(5))
        started = asyncio.get_running_loop().time()
        await queue.close()
        return recorder, asyncio.get_running_loop().time() - started

    recorder, waited = asyncio.run(scenario())
    assert [number for number, _ in recorder.handled] == [1, 5]
    assert waited < 30  # not the 60 s reorder wait


def test_cancelling_the_queue_kills_the_player_it_was_waiting_for(tmp_path: Path) -> None:
    async def scenario() -> None:
        marker = tmp_path / "killed"

        async def handle(segment: AudioSegment, audio: bytes) -> None:
            await play(["sh", "-c", f"cat >/dev/null; sleep 30; touch {marker}"], audio)

        queue = SegmentQueue(handle, fetch=_fetched)
        queue.put(_segment(1))
        await asyncio.sleep(0.3)
        async with asyncio.timeout(10):
            await queue.cancel()
        await asyncio.sleep(0.1)
        assert not marker.exists()

    asyncio.run(scenario())


# -- players ----------------------------------------------------------------------------------------------------
def _program(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\ncat >/dev/null\n")
    path.chmod(0o755)
    return path


def test_find_player_takes_the_first_known_player_on_the_path(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    sox = _program(first, "play")
    mpg123 = _program(second, "mpg123")
    path = os.pathsep.join([str(first), str(second)])
    # mpg123 comes first in the players' order, wherever it is on the PATH
    assert [program for program, *_ in PLAYERS] == ["mpg123", "ffplay", "play"]
    assert find_player(path) == (str(mpg123), "-q", "-")
    mpg123.unlink()
    assert find_player(path) == (str(sox), "-q", "-t", "mp3", "-")
    sox.unlink()
    assert find_player(path) is None
