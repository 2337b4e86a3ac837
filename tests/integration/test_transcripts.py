"""Transcripts through the local run: a speaker's speech (espeak-ng) transcribed and captioned by the local run's
functions on DynamoDB Local, its final segments recorded by the transcriber, then read and deleted by its owner with
the use cases the HTTP API calls (``lambda_src.app.transcripts``), run here against the same DynamoDB Local."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
import webvtt

from lambda_src import runtime
from lambda_src.app.transcripts import delete_transcript, read_transcript
from lambda_src.contract import function_settings
from lambda_src.contract.errors import ServiceError
from local_run.dynamodb_local import endpoint_environment
from tests.integration.conftest import RunningService, apertium_cli
from tests.integration.test_lifecycle import eventually, listener
from tests.integration.test_transcription import drain, pcm, speaker, stream, transcripts, with_silence

pytestmark = pytest.mark.integration
__all__ = ["pcm"]  # the speech fixture, shared with the transcription tests

OWNER = "transcript-speaker"


@pytest.fixture
def use_cases(service: RunningService, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process as the function serving the transcript routes: its environment names the local run's tables on
    DynamoDB Local."""
    for name, value in endpoint_environment(service.run.database.endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(function_settings.ENV_SESSIONS_TABLE, service.sessions_table)
    monkeypatch.setenv(function_settings.ENV_CONNECTIONS_TABLE, service.connections_table)
    monkeypatch.setenv(function_settings.ENV_TRANSCRIPTS_TABLE, service.run.table_name("TablesTranscripts"))
    runtime.reset()
    yield
    runtime.reset()


def cues(session_id: str, language: str, fmt: str = "vtt") -> list[Any]:
    content_type, body = read_transcript(session_id, OWNER, language, fmt)
    assert content_type.startswith({"vtt": "text/vtt", "srt": "application/x-subrip"}[fmt])
    parsed = webvtt.from_buffer(io.StringIO(body), format=fmt, **({"strict": True} if fmt == "vtt" else {}))
    return list(parsed.captions)


def test_the_owner_downloads_each_languages_final_segments_in_order_then_deletes_them(
    service: RunningService, pcm: bytes, use_cases: None
) -> None:
    # Given a session with a Spanish listener
    ws, session_id = speaker(service, OWNER, partialResults="true", minStability="0.7")
    spanish, _ = listener(service, session_id, "es")
    with ws, spanish:
        # When the speaker speaks
        said = transcripts(stream(ws, with_silence(pcm)))
        drain(spanish, until=time.monotonic() + 1.0)
    finals = [m["text"] for m in said if not m["isPartial"] and m["text"].strip()]
    assert finals, said

    # Then, during the session, the owner's WebVTT per language holds exactly its final segments, in order
    def recorded() -> bool:
        return len(cues(session_id, "en")) == len(finals)

    assert eventually(recorded, timeout=15)
    english = cues(session_id, "en")
    assert [cue.text for cue in english] == [" ".join(text.split()) for text in finals]
    captioned_in_spanish = [" ".join(apertium_cli(text, "eng-spa").split()) for text in finals]
    assert [cue.text for cue in cues(session_id, "es")] == captioned_in_spanish
    assert [cue.text for cue in cues(session_id, "es", "srt")] == [cue.text for cue in cues(session_id, "es")]
    # And each cue lies within the session so far, in order
    item = service.session(session_id)
    assert item is not None
    so_far = time.time() - int(item["createdAt"]["N"]) / 1000
    starts = [cue.start_in_seconds for cue in english]
    assert starts == sorted(starts)
    assert all(0 <= cue.start_in_seconds <= cue.end_in_seconds <= so_far + 1 for cue in english)
    # And another speaker is refused
    with pytest.raises(ServiceError) as refused:
        read_transcript(session_id, "someone-else", "es", "vtt")
    assert refused.value.code.name == "FORBIDDEN"

    # When the owner deletes it
    delete_transcript(session_id, OWNER)
    # Then nothing of it is left
    assert cues(session_id, "es") == []
    assert cues(session_id, "en") == []
