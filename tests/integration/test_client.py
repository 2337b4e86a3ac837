"""The client library against the local run: a speaker creates a session, a listener joins, and the listener hears
the speaker's pause and the session's end through the typed message stream; and ``listen --save`` writes the
translation's speech as MP3 files that play as long as the service said."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lambda_src.adapters.speech.mp3 import duration_seconds
from local_run.speech import chunks, speak_pcm
from session_client import ApiRefused, AudioSegment, ListenerClient, SessionsApi, SpeakerClient, messages
from session_client.audio import CHUNK_MILLISECONDS
from tests.integration.conftest import RunningService

ROOT = Path(__file__).resolve().parents[2]
SPOKEN = "Good morning everyone. Welcome to the service."

pytestmark = pytest.mark.integration


def test_a_listener_hears_the_speakers_pause_and_the_end_through_the_clients(service: RunningService) -> None:
    async def scenario() -> None:
        # Given a session created by a SpeakerClient with its partial-result settings, and a ListenerClient in it
        speaker = await SpeakerClient.create(
            service.url,
            token=service.token(user_id="client-speaker"),
            source_language="en",
            partial_results_enabled=True,
            min_stability=0.8,
            max_buffer_timeout=4,
        )
        assert speaker.created is not None
        assert (speaker.created.min_stability_threshold, speaker.created.max_buffer_timeout) == (0.8, 4.0)
        assert speaker.session_id is not None
        listener = await ListenerClient.join(service.url, session_id=speaker.session_id, language="es")
        assert listener.joined is not None and listener.joined.listener_count == 1
        # When the speaker pauses the broadcast
        state = await speaker.pause_broadcast()
        assert (state.session_id, state.is_paused) == (speaker.session_id, True)
        # Then the listener is told
        paused = await listener.next_message(messages.BroadcastPaused.TYPE, timeout=10)
        assert paused.session_id == speaker.session_id  # type: ignore[attr-defined]
        # And when the speaker ends the session, the listener hears it and its stream ends with the connection
        ended = await speaker.end()
        assert ended.reason == "endedBySpeaker"
        async with asyncio.timeout(15):
            rest = [message async for message in listener]
        assert [(m.type, m.reason) for m in rest if isinstance(m, messages.SessionEnded)] == [
            ("sessionEnded", "endedBySpeaker")
        ]
        assert rest[-1].type == "sessionEnded"
        assert (listener.is_open, listener.failure) == (False, None)
        await listener.close()

    asyncio.run(scenario())


def test_a_session_created_with_the_sessions_api_is_spoken_in_read_changed_ended_and_its_transcript_read(
    service: RunningService,
) -> None:
    async def scenario() -> None:
        base = service.run.http_api_url
        assert base is not None
        token = service.token(user_id="api-client-speaker")
        api = SessionsApi(base, token=token)
        assert await api.health() is True
        # Given a session created over the HTTP API, with its partial-result settings
        created = await api.create_session(source_language="en", partial_results_enabled=True, min_stability=0.75)
        assert (created.speaker_id, created.status, created.min_stability_threshold) == (
            "api-client-speaker",
            "active",
            0.75,
        )
        # When its speaker connection is opened by session id, and a listener joins
        speaker = await SpeakerClient.resume(service.url, token=token, session_id=created.session_id)
        listener = await ListenerClient.join(service.url, session_id=created.session_id, language="es")
        # Then the API reads it with its listener, and the owner changes its settings
        assert (await api.get_session(created.session_id)).listener_count == 1
        changed = await api.update_session(created.session_id, max_buffer_timeout=3)
        assert changed.max_buffer_timeout == 3.0
        # And another speaker may neither end it nor read its transcript
        stranger = SessionsApi(base, token=service.token(user_id="another-api-speaker"))
        with pytest.raises(ApiRefused) as refused:
            await stranger.end_session(created.session_id)
        assert (refused.value.status, refused.value.code, refused.value.field) == (403, "FORBIDDEN", "sessionId")
        with pytest.raises(ApiRefused) as refused:
            await stranger.transcript(created.session_id, language="es")
        assert refused.value.status == 403
        # When the owner ends it over the API
        await api.end_session(created.session_id)
        # Then the listener hears the end, the session reads as ended, and its (empty) transcript is the owner's
        ended = await listener.next_message(messages.SessionEnded.TYPE, timeout=15)
        assert ended.session_id == created.session_id  # type: ignore[attr-defined]
        assert (await api.get_session(created.session_id)).status == "ended"
        assert await api.transcript(created.session_id, language="es", fmt="vtt") == "WEBVTT\n"
        await api.delete_transcript(created.session_id)
        await listener.close()
        await speaker.close()

    asyncio.run(scenario())


def test_listen_save_writes_the_spoken_translation_as_mp3_files(service: RunningService, tmp_path: Path) -> None:
    saved = tmp_path / "heard"
    pcm = speak_pcm(SPOKEN, tmp_path)

    async def scenario() -> tuple[list[messages.TranslatedAudio], int, str, str]:
        speaker = await SpeakerClient.create(service.url, token=service.token(user_id="cli-audio-speaker"))
        assert speaker.session_id is not None
        # Given a listener of the library that keeps each translatedAudio (what the service said of each file)
        heard: list[AudioSegment] = []
        witness = await ListenerClient.join(
            service.url, session_id=speaker.session_id, language="es", output="audio", on_audio=heard.append
        )
        # And the command line listening in Spanish, audio only, saving
        listen = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "session_client", "listen", speaker.session_id, "--language", "es",
            "--output", "audio", "--save", str(saved), "--url", service.url,
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert listen.stderr is not None
        joined = await asyncio.wait_for(listen.stderr.readline(), 30)
        assert joined.startswith(f"joined {speaker.session_id}".encode()), joined
        # When the speaker speaks (100 ms chunks in real time, then silence to close the utterance)
        started = time.monotonic()
        audio = chunks(pcm) + [b"\x00" * len(chunks(pcm)[0])] * 20
        for index, chunk in enumerate(audio):
            await asyncio.sleep(max(0.0, started + index * CHUNK_MILLISECONDS / 1000 - time.monotonic()))
            await speaker.send_audio(chunk)
        async with asyncio.timeout(60):
            while not heard:
                await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # the last segment's speech
        await speaker.end()
        # Then the command line ends with the session
        out, err = await asyncio.wait_for(listen.communicate(), 60)
        await witness.close()
        assert listen.returncode is not None
        return [segment.message for segment in heard], listen.returncode, out.decode(), err.decode()

    heard, status, out, err = asyncio.run(scenario())
    assert status == 0, err
    # And each segment the service spoke is a file named by its language and number, in the service's order
    assert [message.sequence_number for message in heard] == list(range(1, len(heard) + 1))
    assert sorted(path.name for path in saved.iterdir()) == [f"es-{m.sequence_number:05d}.mp3" for m in heard]
    # And its transcript is printed, in order
    assert out.splitlines() == [message.transcript for message in heard]
    for message in heard:
        path = saved / f"es-{message.sequence_number:05d}.mp3"
        mp3 = path.read_bytes()
        # And each is an MP3 that plays as long as the service said, and that LAME decodes
        assert mp3[:3] == b"ID3" or (mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0), mp3[:8]
        assert duration_seconds(mp3) == pytest.approx(message.duration, abs=0.1)
        wav = path.with_suffix(".wav")
        subprocess.run(["lame", "--quiet", "--decode", str(path), str(wav)], check=True, timeout=30)
        assert wav.read_bytes()[:4] == b"RIFF" and wav.stat().st_size > 44
