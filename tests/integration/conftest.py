"""One local run (DynamoDB Local + gateway) per test session, driven over loopback by real clients."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambda_src.adapters.transcription import recognizers
from lambda_src.contract import schema
from local_run.run import LocalRun

LISTENER_CAP = 3
# A dropped speaker's window and the sweeper's pace, shortened so the tests can watch a session time out.
SPEAKER_GRACE_SECONDS = 3
SCHEDULE_INTERVAL_SECONDS = 0.5
# Active sessions per speaker: room for the suite's tests that share a speaker and leave their sessions to the
# sweeper (each ends a few seconds after its test), and still a limit a test can reach.
ACTIVE_SESSIONS_PER_SPEAKER = 10


class RunningService:
    """The local run on a background event loop, with helpers the tests share."""

    def __init__(self, run: LocalRun, loop: asyncio.AbstractEventLoop) -> None:
        self.run = run
        self.loop = loop  # the run's own event loop, on its own thread
        self.db = run.database.client()
        self.sessions_table = run.table_name("TablesSessions")
        self.connections_table = run.table_name("TablesConnections")

    @property
    def url(self) -> str:
        return self.run.url

    def token(self, **kwargs: Any) -> str:
        return self.run.mint_token(**kwargs)

    def sessions(self) -> list[dict[str, Any]]:
        return self.db.scan(TableName=self.sessions_table, ConsistentRead=True)["Items"]

    def listener_rows(self, session_id: str) -> int:
        """Listener rows of the session (the index the fan-out reads), counted page by page."""
        paginator = self.db.get_paginator("query")
        return sum(
            page["Count"]
            for page in paginator.paginate(
                TableName=self.connections_table,
                IndexName=schema.CONNECTIONS_BY_SESSION_INDEX,
                KeyConditionExpression="sessionId = :s",
                ExpressionAttributeValues={":s": {"S": session_id}},
            )
        )

    def session(self, session_id: str) -> dict[str, Any] | None:
        return self.db.get_item(
            TableName=self.sessions_table, Key={"sessionId": {"S": session_id}}, ConsistentRead=True
        ).get("Item")


def apertium_cli(text: str, mode: str) -> str:
    """``text`` translated by Apertium's own command line (``apertium -u``: unknown words unmarked, as the local
    translator asks its server), a fresh process apart from the local run's server: what a caption should say."""
    done = subprocess.run(["apertium", "-u", mode], input=text, capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.removesuffix("\n")


def _running(
    tmp_path_factory: pytest.TempPathFactory,
    context: dict[str, str],
    function_env: dict[str, str] | None = None,
    **options: Any,
) -> Iterator[RunningService]:
    """A local run with ``context``, ``function_env`` and the sweeper every SCHEDULE_INTERVAL_SECONDS, unless
    ``options`` (``LocalRun``'s) say otherwise."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    cdk_out: Path = tmp_path_factory.mktemp("cdk.out")
    run = LocalRun(
        context=context,
        cdk_out=cdk_out,
        function_env=function_env,
        **{"schedule_interval": SCHEDULE_INTERVAL_SECONDS, **options},
    )
    asyncio.run_coroutine_threadsafe(run.start(), loop).result(timeout=240)
    try:
        yield RunningService(run, loop)
    finally:
        asyncio.run_coroutine_threadsafe(run.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The local run with a listener cap of LISTENER_CAP, a short speaker window, a fast sweeper, and
    ACTIVE_SESSIONS_PER_SPEAKER."""
    yield from _running(
        tmp_path_factory,
        {
            "maxListenersPerSession": str(LISTENER_CAP),
            "speakerGraceSeconds": str(SPEAKER_GRACE_SECONDS),
            "maxActiveSessionsPerSpeaker": str(ACTIVE_SESSIONS_PER_SPEAKER),
        },
    )


@pytest.fixture(scope="session")
def roomy_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The local run with the environment's own listener cap (500), for audiences of hundreds."""
    yield from _running(tmp_path_factory, {"speakerGraceSeconds": str(SPEAKER_GRACE_SECONDS)})


@pytest.fixture(scope="session")
def scripted_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The local run with the scripted recognizer (``TRANSCRIPTION_RECOGNIZER=scripted``): each segment says the
    sentence its completing chunk carries, so what reaches the translator is known word for word."""
    yield from _running(
        tmp_path_factory,
        {"speakerGraceSeconds": str(SPEAKER_GRACE_SECONDS)},
        function_env={recognizers.ENV_RECOGNIZER: recognizers.SCRIPTED},
    )
