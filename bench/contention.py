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

Then seat shards (decision record 0040): joins offered at a fixed rate (1,000 a second, as fast as this machine
allows when that is less: the rate achieved is reported) into one session of cap 10,000, which has 100 seat shards,
under the emulated rule; beside it, today's design (one shard: the session item) at the same offered load, the
control. Reported: joins offered and the rate achieved, admitted, refused for a conflict (SERVICE_UNAVAILABLE after
the retry policy's budget: must be none), refused for the cap, cancellations per join; checked: the count (the sum of
the seats) equals the listener rows. A session of cap 600 (six shards) offered 800 joins admits exactly 600. Last, a
simulation of the rule itself in this process (no DynamoDB): joins arriving as a Poisson process at 1,000 a second,
each transaction holding its items 15 ms, 100 shards, the retry policy's pauses and conflict budget: refusals for a
conflict per 10,000 joins, beside one shard.

    .venv/bin/python -m bench --only contention
"""

from __future__ import annotations

import heapq
import json
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import request_counts
from bench.common import Row, patched_environ, row, stdout_to_devnull
from lambda_src import runtime
from lambda_src.adapters import connections_api
from lambda_src.adapters.repositories import dynamodb
from lambda_src.contract import limits, schema
from lambda_src.handlers import connect
from tests.support.helpers import body_of, connect_event, new_connection_id

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
        # How long the admitted transactions held their items (DynamoDB Local's time to apply them, queueing
        # included: the emulation's h).
        self.held_seconds = 0.0
        self.held = 0

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
                context["conflict_held_at"] = time.monotonic()
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
            held = time.monotonic() - context.pop("conflict_held_at")
            with self._lock:
                self._held.difference_update(items)
                self.held_seconds += held
                self.held += 1

    @property
    def mean_hold_ms(self) -> float:
        return round(1000 * self.held_seconds / self.held, 1) if self.held else 0.0

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
        # Today's design: a cap of one shard (every join on the session's item); the sizes stay under it.
        cap = limits.ONE_SHARD_MAX_LISTENERS
        with patched_environ({"MAX_LISTENERS_PER_SESSION": str(cap)}), stdout_to_devnull():
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


# -- seat shards: joins offered at a fixed rate (decision record 0040) -------------------------------------------------
SHARDED_SECTION = "7 contention: seat shards"
OFFERED_RATE = 1_000  # joins a second
OFFERED_SECONDS = 2.0
BIG_CAP = 10_000
SMALL_CAP, SMALL_OFFERED = 600, 800
# Threads standing for function instances: as many as 1,000 joins a second keep busy in the cloud (a join's
# transaction ~30 ms); more would only queue in this machine's two cores, lengthening every transaction's hold
# (the emulation holds items for DynamoDB Local's whole answer time) and so the conflicts.
_WORKERS = 32


def _offered_joins(session_id: str, rate: float, joins: int) -> dict[str, Any]:
    """``joins`` joins of ``session_id`` started at ``rate`` a second (open loop: each on a worker of its own, none
    waiting for another's answer); the answers by code, and the rate the joins actually started at."""
    answers: Counter[str] = Counter()
    started: list[float] = []
    lock = threading.Lock()
    events = [
        connect_event(
            {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"},
            connection_id=new_connection_id(),
        )
        for _ in range(joins)
    ]

    def join(event: dict[str, Any]) -> None:
        at = time.monotonic()
        response = connect.handler(event, None)
        code = "admitted" if response["statusCode"] == 200 else str(body_of(response).get("code"))
        with lock:
            answers[code] += 1
            started.append(at)

    begun = time.monotonic()
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        for n, event in enumerate(events):
            pause = begun + n / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            pool.submit(join, event)
    finished = time.monotonic()
    span = max(started) - min(started) if len(started) > 1 else 0.0
    return {
        "answers": dict(answers),
        "achieved_rate": round((len(started) - 1) / span, 1) if span > 0 else None,
        "seconds": round(finished - begun, 2),
    }


def _count_and_rows(session_id: str) -> tuple[int, int]:
    """The session's listener count (its item's, or the sum of its seats') and its listener rows (a scan)."""
    session = runtime.sessions().get(session_id, None)
    assert session is not None
    if session.seating.sharded:
        counted = runtime.sessions().audiences({session_id: session.seating})[session_id].listener_count
    else:
        counted = session.listener_count
    rows = 0
    arguments: dict[str, Any] = {
        "TableName": os.environ["CONNECTIONS_TABLE"],
        "Select": "COUNT",
        "FilterExpression": "begins_with(sessionId, :session) AND #role = :listener",
        "ExpressionAttributeNames": {"#role": "role"},
        "ExpressionAttributeValues": {":session": {"S": session_id}, ":listener": {"S": schema.ROLE_LISTENER}},
    }
    while True:
        page = dynamodb.client().scan(**arguments)
        rows += page["Count"]
        if "LastEvaluatedKey" not in page:
            return counted, rows
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _sharded_session(cap: int, *, one_shard: bool, user_id: str) -> str:
    """A session created under the listener cap ``cap``: with its seat shards, or (``one_shard``) as today's design
    would create it, every listener counted on its item."""
    saved = limits.ONE_SHARD_MAX_LISTENERS
    with patched_environ({"MAX_LISTENERS_PER_SESSION": str(cap)}):
        runtime.reset()
        if one_shard:
            limits.ONE_SHARD_MAX_LISTENERS = cap  # type: ignore[misc]
        try:
            return request_counts._create(new_connection_id(), user_id=user_id)
        finally:
            limits.ONE_SHARD_MAX_LISTENERS = saved  # type: ignore[misc]


def _offered_row(label: str, cap: int, joins: int, one_shard: bool, failures: list[str]) -> Row:
    session_id = _sharded_session(cap, one_shard=one_shard, user_id=f"offered-{label}")
    conflicts = TransactionConflicts()
    # 1,000 joins a second is 60,000 a minute: the allowance is raised with the cap (decision record 0040).
    with patched_environ({"MAX_LISTENERS_PER_SESSION": str(cap), "JOINS_PER_SESSION_PER_MINUTE": "60000"}):
        runtime.reset()
        with conflicts:
            result = _offered_joins(session_id, OFFERED_RATE, joins)
        counted, rows = _count_and_rows(session_id)
    answers = result["answers"]
    admitted = answers.get("admitted", 0)
    refused_conflict = answers.get("SERVICE_UNAVAILABLE", 0)
    refused_cap = answers.get("SESSION_FULL", 0)
    if counted != rows:
        failures.append(f"contention ({label}): listener count {counted} but {rows} listener rows")
    if refused_cap and admitted != cap:
        failures.append(f"contention ({label}): {admitted} admitted under a cap of {cap}, refusals for the cap")
    shards = 1 if one_shard else min(limits.MAX_SEAT_SHARDS, -(-cap // limits.SEATS_PER_SHARD))
    expected_admitted = min(joins, cap)
    return row(
        SHARDED_SECTION,
        f"{joins} joins offered at {OFFERED_RATE}/s into one session of cap {cap}, {shards} shard"
        f"{'s' if shards > 1 else ''} ({label}), conflict rule emulated: refused for a conflict",
        refused_conflict,
        "joins",
        floor=0,
        floor_is="none refused for a conflict",
        target="= 0",
        met=refused_conflict == 0 and admitted == expected_admitted,
        ratio=None,
        expected_admitted=expected_admitted,
        mean_hold_ms=conflicts.mean_hold_ms,
        offered=joins,
        achieved_rate=result["achieved_rate"],
        admitted=admitted,
        refused_for_a_conflict=refused_conflict,
        refused_for_the_cap=refused_cap,
        answers=answers,
        cancellations_per_join=round(conflicts.cancelled / joins, 3),
        listener_count=counted,
        listener_rows=rows,
        seconds=result["seconds"],
        note=(
            f"started at {result['achieved_rate']} joins/s (offered {OFFERED_RATE}/s); {admitted} admitted, "
            f"{refused_conflict} refused for a conflict, {refused_cap} for the cap; "
            f"{conflicts.cancelled / joins:.2f} cancellations per join (each transaction held its items "
            f"{conflicts.mean_hold_ms} ms on average); count {counted} = rows {rows}; "
            f"last answer after {result['seconds']} s"
        ),
    )


def simulate_conflicts(rate: float, hold_s: float, shards: int, joins: int, seed: int = 40) -> dict[str, float | int]:
    """DynamoDB's conflict rule at ``rate`` joins a second (Poisson arrivals), each admitted transaction holding its
    shard (seat and join counter) for ``hold_s``: an attempt meeting a held shard is cancelled (answered after
    ``hold_s``), waits the retry policy's full-jitter pause and tries another shard (the same one when there is
    one), until the policy's conflict budget is spent: then it is refused for a conflict."""
    rng = random.Random(seed)
    held_until = [0.0] * shards
    queue: list[tuple[float, int, float, float, int]] = []  # (time, join, waited, pause, last shard)
    at = 0.0
    for join in range(joins):
        at += rng.expovariate(rate)
        queue.append((at, join, 0.0, dynamodb._FIRST_PAUSE_SECONDS, -1))
    heapq.heapify(queue)
    admitted = refused = cancelled = 0
    while queue:
        now, join, waited, pause, last = heapq.heappop(queue)
        shard = rng.randrange(shards)
        while shards > 1 and shard == last:
            shard = rng.randrange(shards)
        if now >= held_until[shard]:
            held_until[shard] = now + hold_s
            admitted += 1
            continue
        cancelled += 1
        sleep = rng.uniform(0, pause)
        if waited + sleep > dynamodb.CONFLICT_RETRY_BUDGET_SECONDS:
            refused += 1
            continue
        next_pause = min(pause * 2, dynamodb._MAX_PAUSE_SECONDS)
        heapq.heappush(queue, (now + hold_s + sleep, join, waited + sleep, next_pause, shard))
    return {"joins": joins, "admitted": admitted, "refused": refused, "cancelled": cancelled}


def _simulated_row(shards: int, joins: int) -> Row:
    hold_s = 0.015
    result = simulate_conflicts(OFFERED_RATE, hold_s, shards, joins)
    per_10k = result["refused"] * 10_000 / joins
    return row(
        SHARDED_SECTION,
        f"conflict rule simulated: λ = {OFFERED_RATE}/s, h = 15 ms, N = {shards}, the retry policy's budget: "
        "refused for a conflict per 10,000 joins",
        per_10k,
        "joins",
        floor=0,
        floor_is="none",
        target="= 0" if shards > 1 else "",
        met=(per_10k == 0) if shards > 1 else None,
        ratio=None,
        cancellations_per_join=round(result["cancelled"] / joins, 3),
        **result,
        note=f"{result['refused']} of {joins} refused; {result['cancelled'] / joins:.2f} cancellations per join",
    )


def measure_sharded(database: Any, failures: list[str]) -> list[Row]:
    """The seat shards' rows: the offered load beside today's design, the cap held under it, and the simulation."""
    saved_client, saved_budget = connections_api.client, dynamodb.INVOCATION_BUDGET_SECONDS
    joins = int(OFFERED_RATE * OFFERED_SECONDS)
    try:
        with stdout_to_devnull():
            request_counts._prepare(database, TABLE_PREFIX + "-seats")
            dynamodb.INVOCATION_BUDGET_SECONDS = 1e9  # each thread stands for its own invocation
            rows = [
                _offered_row("seat shards", BIG_CAP, joins, one_shard=False, failures=failures),
                _offered_row("today's design, the control", BIG_CAP, joins, one_shard=True, failures=failures),
                _offered_row("seat shards, cap held", SMALL_CAP, SMALL_OFFERED, one_shard=False, failures=failures),
            ]
    finally:
        connections_api.client = saved_client
        dynamodb.INVOCATION_BUDGET_SECONDS = saved_budget
        runtime.reset()
    rows.append(_simulated_row(100, 100_000))
    rows.append(_simulated_row(1, 10_000))
    return rows
