"""The fan-out per shard through the local run (decision record 0040): a session with seat shards whose audience is
over the fan-out's threshold has its captions and spoken translations posted by the Fanout function's invocations,
one per group of occupied shards and segment, not by the transcription consumer.

The run is started with the thresholds the settings let a test lower (``LOCAL_FANOUT_LISTENERS`` 4: the consumer
posts an audience of at most 4 itself; ``FANOUT_GROUP_LISTENERS`` 2: an invocation posts at most 2 listeners, or one
shard holding more) and a listener cap of 600, so that its sessions have 6 seat shards. The speaker's segments are
scripted (``TRANSCRIPTION_RECOGNIZER=scripted``); everything after the recognizer is the local run's: the consumer,
Apertium (English to Spanish; French is the stand-in's), espeak-ng's speech, the gateway's Invoke API starting the
Fanout function, its reads of its shards and its posts through ``@connections``.

What is observed: every listener receives every final caption (those who want captions) and every
``translatedAudio`` (those who want audio) exactly once; the gateway counted the Fanout function's invocations,
exactly one per group and segment and kind (captions; spoken translations), the groups being what the seats the
joins took make them (had the consumer also posted, each listener would have had every message twice); and the
speaker's ``getSessionStatus`` counts the listeners exactly, as the listener rows do, before and after.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from lambda_src.adapters.transcription import recognizers
from lambda_src.app import shard_fanout
from lambda_src.contract import function_settings, schema, wire
from lambda_src.model.session import Seat
from local_run.gateway import FunctionRuntime
from tests.integration.conftest import SPEAKER_GRACE_SECONDS, RunningService, _running
from tests.integration.test_local_translation import say
from tests.integration.test_transcription import drain, speaker

pytestmark = pytest.mark.integration

CAP = 600  # over 500: 6 seat shards of 100
FANOUT_ABOVE = 4  # LOCAL_FANOUT_LISTENERS: the consumer posts at most 4 listeners itself
GROUP = 2  # FANOUT_GROUP_LISTENERS: the listeners one invocation posts (a shard holding more is a group alone)
SENTENCES = ["Welcome to the service.", "Good morning everyone.", "The river is high today."]
# (language, output) of each listener: two languages, each with listeners of both outputs, captions only, audio only
CAST = [(language, output) for language in ("es", "fr") for output in ("both", "both", "captions", "audio")]
SETTLE_TIMEOUT_SECONDS = 60.0


@pytest.fixture(scope="module")
def fanout_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The local run with sessions of 6 seat shards and the fan-out's thresholds lowered to a handful of listeners."""
    yield from _running(
        tmp_path_factory,
        {"speakerGraceSeconds": str(SPEAKER_GRACE_SECONDS), "maxListenersPerSession": str(CAP)},
        function_env={
            recognizers.ENV_RECOGNIZER: recognizers.SCRIPTED,
            function_settings.ENV_LOCAL_FANOUT_LISTENERS: str(FANOUT_ABOVE),
            function_settings.ENV_FANOUT_GROUP_LISTENERS: str(GROUP),
        },
    )


def _function(service: RunningService, handler: str) -> FunctionRuntime:
    assert service.run.gateway is not None
    (runtime,) = [r for r in service.run.gateway.runtimes.values() if r.definition.handler == handler]
    return runtime


def _join(service: RunningService, session_id: str, language: str, output: str) -> ClientConnection:
    ws = connect(
        f"{service.url}?action=joinSession&sessionId={session_id}&targetLanguage={language}&{wire.OUTPUT}={output}",
        open_timeout=10,
        legacy=True,
    )
    joined = json.loads(ws.recv(timeout=10))
    assert joined["type"] == "sessionJoined", joined
    return ws


def _status(ws: ClientConnection) -> dict[str, Any]:
    ws.send(json.dumps({"action": "getSessionStatus"}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for message in drain(ws, until=min(deadline, time.monotonic() + 0.5)):
            if message["type"] == "sessionStatus" and message.get("updateReason") == "requested":
                return message
    raise AssertionError("no reply to getSessionStatus")


def _seats(service: RunningService, session_id: str) -> list[Seat]:
    """The session's seat items as the consumer reads them (their counts by language), in shard order."""
    items = service.db.scan(
        TableName=service.sessions_table,
        ConsistentRead=True,
        FilterExpression="begins_with(sessionId, :prefix)",
        ExpressionAttributeValues={":prefix": {"S": f"{session_id}#"}},
    )["Items"]
    seats = [
        Seat(
            int(item["sessionId"]["S"].rsplit("#", 1)[1]),
            count=int(item["listenerCount"]["N"]),
            by_language={
                name.removeprefix("listeners:"): int(value["N"])
                for name, value in item.items()
                if name.startswith("listeners:") and int(value["N"]) > 0
            },
        )
        for item in items
    ]
    return sorted((seat for seat in seats if seat.count > 0), key=lambda seat: seat.shard)


def _rows(service: RunningService, session_id: str) -> int:
    """Listener rows of the session, over all its shards' keys."""
    items = service.db.scan(TableName=service.connections_table, ConsistentRead=True)["Items"]
    return sum(
        1
        for item in items
        if item.get("sessionId", {}).get("S", "").split("#")[0] == session_id
        and item.get("role", {}).get("S") == schema.ROLE_LISTENER
    )


def _finals(messages: list[dict[str, Any]], kind: str) -> Counter[str]:
    """How many times each segment's final message of ``kind`` was received."""
    return Counter(m["segmentId"] for m in messages if m["type"] == kind and not (kind == "caption" and m["isPartial"]))


def _expected_kinds(output: str) -> tuple[str, ...]:
    return {"captions": ("caption",), "audio": ("translatedAudio",)}.get(output, ("caption", "translatedAudio"))


def test_a_big_sessions_captions_and_speech_reach_every_listener_once_through_the_fanout_functions_invocations(
    fanout_service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = fanout_service
    fanout = _function(service, "lambda_src.handlers.fanout.handler")
    invocations_before = fanout.invocations
    # Given a session with seat shards and 8 listeners in Spanish and French: two of each language want both
    # outputs, one captions only, one audio only
    ws, session_id = speaker(service, "fanout-speaker", partialResults="false")
    listeners = [(language, output, _join(service, session_id, language, output)) for language, output in CAST]
    heard: list[list[dict[str, Any]]] = [[] for _ in listeners]
    spoken: list[dict[str, Any]] = []
    try:
        # And the count is exact: the speaker's status counts them all, as the rows do
        status = _status(ws)
        assert status["listenerCount"] == len(CAST) == _rows(service, session_id)
        assert status["listenersByLanguage"] == {"es": 4, "fr": 4}
        seats = _seats(service, session_id)
        assert sum(seat.count for seat in seats) == len(CAST) and all(seat.shard >= 1 for seat in seats)
        # When the speaker says three sentences (one final segment each)
        say(ws, SENTENCES)
        # Then, once every final has reached every listener that wants it (or the time is up)
        deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            spoken += drain(ws, until=time.monotonic() + 0.2)
            for index, (_language, _output, socket) in enumerate(listeners):
                heard[index] += drain(socket, until=time.monotonic() + 0.1)
            segments = set(_finals(spoken, "transcript"))
            if len(segments) == len(SENTENCES) and all(
                set(_finals(messages, kind)) >= segments
                for (_language, output, _socket), messages in zip(listeners, heard, strict=True)
                for kind in _expected_kinds(output)
            ):
                break
        time.sleep(2.0)  # anything posted twice would arrive meanwhile
        for index, (_language, _output, socket) in enumerate(listeners):
            heard[index] += drain(socket, until=time.monotonic() + 0.2)
        status_after = _status(ws)
    finally:
        for _language, _output, socket in listeners:
            socket.close()
        ws.close()
    segments = set(_finals(spoken, "transcript"))
    assert len(segments) == len(SENTENCES), spoken
    # Each listener received each final segment exactly once in each output it wants, and none of the other
    for (language, output, _socket), messages in zip(listeners, heard, strict=True):
        for kind in ("caption", "translatedAudio"):
            received = _finals(messages, kind)
            wanted = {segment: 1 for segment in segments} if kind in _expected_kinds(output) else {}
            assert dict(received) == wanted, (language, output, kind, messages)
        assert {m["targetLanguage"] for m in messages if m["type"] in ("caption", "translatedAudio")} == {language}
    # And every caption came from the Fanout function's invocations: one per group of occupied shards, per segment
    # and kind (captions; spoken translations), the groups being the ones the consumer makes of these seats
    monkeypatch.setenv(function_settings.ENV_LOCAL_FANOUT_LISTENERS, str(FANOUT_ABOVE))
    monkeypatch.setenv(function_settings.ENV_FANOUT_GROUP_LISTENERS, str(GROUP))
    plan = shard_fanout.plan(session_id, seats)
    assert plan is not None
    assert fanout.invocations - invocations_before == 2 * len(SENTENCES) * len(plan.groups)
    # And the count stayed exact throughout
    assert status_after["listenerCount"] == len(CAST) == _rows(service, session_id)
