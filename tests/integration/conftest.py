"""One local run (DynamoDB Local + gateway) per test session, driven over loopback by real clients."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from local_run.run import LocalRun

LISTENER_CAP = 3


class RunningService:
    """The local run on a background event loop, with helpers the tests share."""

    def __init__(self, run: LocalRun) -> None:
        self.run = run
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

    def session(self, session_id: str) -> dict[str, Any] | None:
        return self.db.get_item(TableName=self.sessions_table, Key={"sessionId": {"S": session_id}},
                                ConsistentRead=True).get("Item")


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    cdk_out: Path = tmp_path_factory.mktemp("cdk.out")
    run = LocalRun(context={"maxListenersPerSession": str(LISTENER_CAP)}, cdk_out=cdk_out)
    asyncio.run_coroutine_threadsafe(run.start(), loop).result(timeout=240)
    try:
        yield RunningService(run)
    finally:
        asyncio.run_coroutine_threadsafe(run.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
