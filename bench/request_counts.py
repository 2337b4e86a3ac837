"""DynamoDB requests per operation, on DynamoDB Local, counted with a botocore event hook.

Runs the unchanged handlers in this process against tables created from ``lambda_src.contract.schema`` (what the
stack deploys); ``@connections`` posts go to a recorder, since only DynamoDB requests are counted here.
Prints a table beside each operation's floor and writes JSON (``--output``).

    .venv/bin/python -m bench.request_counts
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Row, create_tables, patched_environ, row, stdout_to_devnull
from lambda_src import runtime
from lambda_src.adapters import connections_api
from lambda_src.adapters.repositories import dynamodb
from lambda_src.contract import function_settings, limits, schema
from lambda_src.handlers import connect, disconnect, message
from local_run.dynamodb_local import DynamoDBLocal, endpoint_environment
from tests.support.fakes import CALLBACK_URL, FakeConnectionsApi
from tests.support.helpers import (
    DynamoDBRequests,
    body_of,
    connect_event,
    disconnect_event,
    message_event,
    new_connection_id,
)

TABLE_PREFIX = "bench-requests"
SECTION = "1 requests"


def _prepare(database: DynamoDBLocal, prefix: str = TABLE_PREFIX) -> None:
    """Every table of ``lambda_src.contract.schema`` (Sessions, Connections, RateLimits) and the environment naming
    them."""
    os.environ.update(endpoint_environment(database.endpoint))
    os.environ.update(create_tables(database.client(), prefix))
    os.environ[function_settings.ENV_CALLBACK_URL] = CALLBACK_URL
    runtime.reset()
    fake = FakeConnectionsApi()
    connections_api.client = lambda: fake  # type: ignore[assignment]


def _count(operation: Callable[[], Any]) -> dict[str, int]:
    with DynamoDBRequests() as requests:
        operation()
    return requests.by_operation


def _create(connection_id: str, user_id: str = "u", status: int = 200) -> str:
    response = connect.handler(
        connect_event(
            {"action": "createSession", "sourceLanguage": "en"}, connection_id=connection_id, user_id=user_id
        ),
        None,
    )
    assert response["statusCode"] == status, response
    if status != 200:
        return ""
    return runtime.connections().session_of(connection_id) or ""  # (remembered by the creation: no read)


def _refresh_speaker(session_id: str, user_id: str = "u") -> None:
    query = {"action": "refreshConnection", "sessionId": session_id, "role": "speaker"}
    response = connect.handler(connect_event(query, connection_id=new_connection_id(), user_id=user_id), None)
    assert response["statusCode"] == 200, response


def _join(session_id: str) -> str:
    connection_id = new_connection_id()
    query = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
    assert connect.handler(connect_event(query, connection_id=connection_id), None)["statusCode"] == 200
    return connection_id


def _send(connection_id: str, expected: str, user_id: str | None = None, **body: Any) -> None:
    reply = body_of(message.handler(message_event(body, connection_id=connection_id, user_id=user_id), None))
    assert reply["type"] == expected, reply


def measure(audiences: tuple[int, ...]) -> list[dict[str, Any]]:
    """(operation, requests by API, total, floor) for every operation."""
    rows: list[dict[str, Any]] = []

    def record(operation: str, floor: int, counted: dict[str, int]) -> None:
        rows.append({"operation": operation, "requests": sum(counted.values()), "floor": floor, "by_api": counted})

    speaker = new_connection_id()
    record("createSession", 1, _count(lambda: _create(speaker)))
    session_id = runtime.connections().session_of(speaker) or ""
    runtime.reset()  # a fresh function instance: nothing cached
    record("joinSession (first in an instance)", 1, _count(lambda: _join(session_id)))
    listener = _join(session_id)
    record("joinSession", 1, _count(lambda: _join(session_id)))
    record("heartbeat", 1, _count(lambda: _send(listener, "heartbeatAck", action="heartbeat")))
    record("leaveSession", 2, _count(lambda: _send(listener, "sessionLeft", action="leaveSession")))
    dropping = _join(session_id)
    record("listener disconnect", 2, _count(lambda: disconnect.handler(disconnect_event(dropping), None)))
    record(
        "updateSessionConfig (sessionId given)",
        1,
        _count(
            lambda: _send(
                speaker, "sessionConfigUpdated", action="updateSessionConfig", sessionId=session_id, minStability=0.9
            )
        ),
    )
    runtime.reset()
    record(
        "updateSessionConfig (first in an instance)",
        1,
        _count(lambda: _send(speaker, "sessionConfigUpdated", action="updateSessionConfig", minStability=0.8)),
    )
    # The broadcast state: one write, plus the listener index's pages when it changed (here: 1 listener, 1 page);
    # a repeat that changes nothing is the write alone. Then a listener's own controls.
    listener = _join(session_id)
    record(
        "pauseBroadcast (listeners told)",
        2,
        _count(lambda: _send(speaker, "broadcastState", action="pauseBroadcast", sessionId=session_id)),
    )
    record(
        "pauseBroadcast (repeated: nobody told)",
        1,
        _count(lambda: _send(speaker, "broadcastState", action="pauseBroadcast", sessionId=session_id)),
    )
    record(
        "setVolume (listeners told)",
        2,
        _count(lambda: _send(speaker, "broadcastState", action="setVolume", sessionId=session_id, volumeLevel=0.5)),
    )
    record(
        "changeLanguage",
        1,
        _count(lambda: _send(listener, "languageChanged", action="changeLanguage", targetLanguage="de")),
    )
    record("pausePlayback", 1, _count(lambda: _send(listener, "playbackPaused", action="pausePlayback")))
    # The speaker's audio: one write per chunk, and the session read at most once a second per instance (here a
    # burst of 10 chunks, 1 s of audio, well inside that second).
    _send(speaker, "broadcastState", action="resumeBroadcast", sessionId=session_id)
    runtime.reset()
    chunk = base64.b64encode(bytes(limits.MIN_AUDIO_CHUNK_BYTES * 32)).decode()

    def burst() -> None:
        for n in range(10):
            _send(speaker, "audioReceived", action="sendAudio", sessionId=session_id, audioData=chunk, sequenceNumber=n)

    record("sendAudio, 10 chunks in a second", 10 + 1, _count(burst))
    for audience in audiences:
        owner = new_connection_id()
        ended_session = _create(owner)
        for _ in range(audience):
            _join(ended_session)
        pages = audience // limits.FANOUT_PAGE_SIZE + 1
        record(
            f"endSession, {audience} listeners",
            1 + pages,
            _count(functools.partial(_send, owner, "sessionEnded", "u", action="endSession", sessionId=ended_session)),
        )
    # A speaker refresh extends the session's life inside the takeover's transaction: a read and one write.
    record("refreshConnection (speaker)", 2, _count(lambda: _refresh_speaker(session_id)))
    # At the active-session limit: the refused transaction and one batch read of the listed sessions; with one
    # of them gone (deleted by TTL before the sweeper saw it), that one forgotten and the creation repeated.
    at_limit = [_create(new_connection_id(), "busy") for _ in range(limits.DEFAULT_MAX_ACTIVE_SESSIONS_PER_SPEAKER)]
    record(
        "createSession at the active-session limit (refused)",
        2,
        _count(lambda: _create(new_connection_id(), "busy", status=409)),
    )
    dynamodb.request(
        "delete_item",
        TableName=runtime.sessions().table_name,
        Key=dynamodb.serialize({schema.SESSIONS_PARTITION_KEY: at_limit[0]}),
    )
    record(
        "createSession at the limit, one listed session gone", 4, _count(lambda: _create(new_connection_id(), "busy"))
    )
    return rows


def table_rows(database: DynamoDBLocal, audiences: tuple[int, ...] = (0, 10, 100)) -> list[Row]:
    """``measure`` on ``database`` as rows of the combined table (``python -m bench``): requests beside the floor."""
    saved_client = connections_api.client
    try:
        with patched_environ({}), stdout_to_devnull():
            _prepare(database)
            rows = measure(audiences)
    finally:
        connections_api.client = saved_client
        runtime.reset()
    return [
        row(
            SECTION,
            r["operation"],
            r["requests"],
            "requests",
            floor=r["floor"],
            floor_is="the floor bench.request_counts states per operation (endSession: 1 + index pages)",
            target="<= floor",
            met=r["requests"] <= r["floor"],
            by_api=r["by_api"],
        )
        for r in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audiences", type=int, nargs="*", default=[0, 10, 100])
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("results-requests.json"))
    args = parser.parse_args()
    started = time.monotonic()
    with DynamoDBLocal() as database:
        _prepare(database)
        rows = measure(tuple(args.audiences))
    print(f"{'operation':52} {'requests':>8} {'floor':>6}  by API")
    for measured in rows:
        print(f"{measured['operation']:52} {measured['requests']:>8} {measured['floor']:>6}  {measured['by_api']}")
    args.output.write_text(json.dumps({"engine": "DynamoDB Local", "rows": rows}, indent=2) + "\n")
    print(f"written to {args.output} in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
