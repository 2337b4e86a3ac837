"""Simultaneous joins of one session under DynamoDB's transaction-conflict rule.

DynamoDB cancels a ``TransactWriteItems`` that touches an item another in-flight transaction holds (reason
``TransactionConflict``): it does not queue it. Every join is one transaction on its session's item (the
count under the cap) and the session's join-rate counter, so simultaneous joins of one session conflict.
DynamoDB Local does not reproduce that: it applies concurrent transactions one after the other (no conflict
among 64 simultaneous joins), so the load section cannot show it.

This section emulates the rule in front of DynamoDB Local with botocore event hooks: a transaction holds its
items for as long as DynamoDB Local takes to apply it, and one that meets a held item is answered with the
cancellation DynamoDB would send, without reaching DynamoDB Local. N threads, standing in for N function
instances each with its own invocation, then join one session at the same moment through the unchanged
connect handler and its one retry policy (N = 64, then 256: more threads than that measure this process and
DynamoDB Local's two cores rather than the rule). Reported: joins admitted within the policy's budget (the floor:
all N), joins answered SERVICE_UNAVAILABLE, cancellations per join, and the time until the last answer; the
same joins without the emulation are the control. Correctness check: the session's listenerCount equals the
joins admitted, conflicts or not.

    .venv/bin/python -m bench --only contention
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from bench import request_counts
from bench.common import Row, patched_environ, row, stdout_to_devnull
from lambda_src import runtime
from lambda_src.adapters import connections_api
from lambda_src.adapters.repositories import dynamodb
from lambda_src.contract import schema
from lambda_src.handlers import connect
from tests.support.helpers import connect_event, new_connection_id

SECTION = "7 contention"
TABLE_PREFIX = "bench-contention"
_KEY_ATTRIBUTES = {definition.partition_key.name for definition in schema.TABLES}


class _CancelledResponse:
    status_code = 400
    headers: dict[str, str] = {}
    content = b""


class TransactionConflicts:
    """DynamoDB's rule for concurrent transactions, in front of the process's client (botocore hooks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[tuple[str, str]] = set()
        self.transactions = 0
        self.cancelled = 0

    @staticmethod
    def _items(params: dict[str, Any]) -> list[tuple[str, str]]:
        items = []
        for action in params.get("TransactItems", []):
            ((_kind, body),) = action.items()
            key = body.get("Key") or {name: value for name, value in body["Item"].items() if name in _KEY_ATTRIBUTES}
            items.append((body["TableName"], json.dumps(key, sort_keys=True)))
        return items

    def _note_items(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["conflict_items"] = self._items(params)

    def _hold_or_cancel(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        items = context["conflict_items"]
        with self._lock:
            self.transactions += 1
            if self._held.isdisjoint(items):
                self._held.update(items)
                context["conflict_held"] = items
                return None
            self.cancelled += 1
            reasons = [{"Code": "TransactionConflict" if item in self._held else "None"} for item in items]
        return _CancelledResponse(), {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled (conflict)"},
            "CancellationReasons": reasons,
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    def _release(self, context: dict[str, Any], **_: Any) -> None:
        items = context.pop("conflict_held", None)
        if items:
            with self._lock:
                self._held.difference_update(items)

    def __enter__(self) -> TransactionConflicts:
        events = dynamodb.client().meta.events
        events.register(
            "before-parameter-build.dynamodb.TransactWriteItems", self._note_items, unique_id="conflicts-note"
        )
        events.register("before-call.dynamodb.TransactWriteItems", self._hold_or_cancel, unique_id="conflicts-hold")
        events.register("after-call.dynamodb.TransactWriteItems", self._release, unique_id="conflicts-release")
        return self

    def __exit__(self, *exc: object) -> None:
        events = dynamodb.client().meta.events
        events.unregister("before-parameter-build.dynamodb.TransactWriteItems", unique_id="conflicts-note")
        events.unregister("before-call.dynamodb.TransactWriteItems", unique_id="conflicts-hold")
        events.unregister("after-call.dynamodb.TransactWriteItems", unique_id="conflicts-release")


def _simultaneous_joins(session_id: str, joins: int) -> tuple[dict[int, int], float]:
    """``joins`` threads join ``session_id`` at one moment; answers by handshake status, and the seconds taken."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(joins + 1)

    def join() -> None:
        event = connect_event(
            {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"},
            connection_id=new_connection_id(),
        )
        start.wait()
        status = connect.handler(event, None)["statusCode"]
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=join) for _ in range(joins)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    return statuses, time.monotonic() - started


def _listener_count(session_id: str) -> int:
    item = dynamodb.client().get_item(
        TableName=os.environ["SESSIONS_TABLE"], Key={schema.SESSIONS_PARTITION_KEY: {"S": session_id}}
    )["Item"]
    return int(item["listenerCount"]["N"])


def measure(database: Any, failures: list[str], sizes: tuple[int, ...] = (64, 256)) -> list[Row]:
    saved_client, saved_budget = connections_api.client, dynamodb.INVOCATION_BUDGET_SECONDS
    rows: list[Row] = []
    try:
        with patched_environ({"MAX_LISTENERS_PER_SESSION": str(max(sizes) * 2)}), stdout_to_devnull():
            request_counts._prepare(database, TABLE_PREFIX)
            # Each thread stands for its own function instance: the per-request budget (1.5 s) binds, as it
            # does in a join's own invocation, rather than one invocation budget the threads would share.
            dynamodb.INVOCATION_BUDGET_SECONDS = 1e9
            for joins, emulated in ((joins, emulated) for joins in sizes for emulated in (False, True)):
                # A speaker of its own each time: one speaker may hold only a few active sessions.
                session_id = request_counts._create(new_connection_id(), user_id=f"contention-{joins}-{emulated}")
                conflicts = TransactionConflicts()
                if emulated:
                    with conflicts:
                        statuses, seconds = _simultaneous_joins(session_id, joins)
                else:
                    statuses, seconds = _simultaneous_joins(session_id, joins)
                admitted = statuses.get(200, 0)
                counted = _listener_count(session_id)
                if counted != admitted:
                    failures.append(f"contention: listenerCount {counted} after {admitted} admitted joins")
                label = "DynamoDB's conflict rule emulated" if emulated else "DynamoDB Local as it is (control)"
                rows.append(
                    row(
                        SECTION,
                        f"{joins} simultaneous joins, {label}: admitted",
                        admitted,
                        "joins",
                        floor=joins,
                        floor_is="every join admitted",
                        target="= floor",
                        met=admitted == joins,
                        statuses=statuses,
                        listener_count=counted,
                        seconds=round(seconds, 2),
                        note=(
                            f"{statuses.get(503, 0)} answered SERVICE_UNAVAILABLE; "
                            + (
                                f"{conflicts.cancelled} of {conflicts.transactions} transactions cancelled; "
                                if emulated
                                else "DynamoDB Local applied them one after the other; "
                            )
                            + f"last answer after {seconds:.2f} s; listenerCount {counted}"
                        ),
                    )
                )
    finally:
        connections_api.client = saved_client
        dynamodb.INVOCATION_BUDGET_SECONDS = saved_budget
        runtime.reset()
    return rows
