"""The consumer's side of the fan-out per shard (decision record 0040): a big session's audience split into groups of
its occupied seat shards (:func:`plan`), and a message handed to the fan-out function, one asynchronous invocation per
group (:func:`hand_off`); the worker's side is :mod:`lambda_src.app.shard_fanout`.

From the one read of the session's seats (``seats.occupied``), an audience larger than ``local_listeners()`` (500:
what a session of one shard holds, which its poster has always posted itself) is split into groups of occupied
shards of at most ``group_listeners()`` listeners (~1,000) each. Two kinds of poster hand off: the transcription
consumer, each segment's messages by language (only the languages a group's seats count), and whoever tells a
session's listeners what happened to it (``fanout.notify_listeners``: a notice such as ``broadcastPaused``, the same
message for every language, or a dismissal, ``sessionEnded`` with :data:`CLOSE`). Each event stays under
``FANOUT_EVENT_MAX_BYTES`` (split by language when it would not fit) and never names the audience.

Importing nothing of the app's, this sits below ``fanout`` (which hands notices off through it) as well as below
``shard_fanout`` (whose worker reads the events)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from lambda_src.adapters import fanout_function
from lambda_src.contract import function_settings, limits
from lambda_src.model.session import Seat
from lambda_src.platform.log import logger

# The event the fan-out function takes.
SESSION_ID: Final = "sessionId"
SHARDS: Final = "shards"
MESSAGES: Final = "messages"  # language -> the message to post to that language's listeners
UNSPOKEN: Final = "unspokenLanguages"  # languages nothing speaks here: their audio-only listeners get captions
SENT_AT: Final = "sentAtMs"
# A dismissal's: the worker closes each connection once it posted to it (a notice or a segment: absent).
CLOSE: Final = "close"


def _setting(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def local_listeners() -> int:
    """The largest audience the consumer posts itself (``LOCAL_FANOUT_LISTENERS``, the tests' and local run's;
    otherwise ``LOCAL_FANOUT_SHARDS`` shards of ``SEATS_PER_SHARD``)."""
    return _setting(function_settings.ENV_LOCAL_FANOUT_LISTENERS, limits.LOCAL_FANOUT_SHARDS * limits.SEATS_PER_SHARD)


def group_listeners() -> int:
    """The most listeners one invocation posts (``FANOUT_GROUP_LISTENERS``; otherwise ``SHARDS_PER_FANOUT`` shards
    of ``SEATS_PER_SHARD``); a single shard holding more is a group of its own."""
    return _setting(function_settings.ENV_FANOUT_GROUP_LISTENERS, limits.SHARDS_PER_FANOUT * limits.SEATS_PER_SHARD)


@dataclass(frozen=True)
class Group:
    """Occupied shards one invocation posts, the languages their seats count, and how many listeners."""

    shards: tuple[int, ...]
    languages: frozenset[str]
    listeners: int


@dataclass(frozen=True)
class Plan:
    """A big session's audience as the fan-out splits it: its groups, and every language with listeners."""

    session_id: str
    groups: tuple[Group, ...]
    languages: tuple[str, ...]
    listeners: int


def plan(session_id: str, occupied: Sequence[Seat]) -> Plan | None:
    """How the audience on ``occupied`` (the seats counting listeners, in shard order) is fanned out; None when it
    is at most :func:`local_listeners` (its poster posts it itself, as always)."""
    total = sum(seat.count for seat in occupied)
    if total <= local_listeners():
        return None
    size = group_listeners()
    groups: list[Group] = []
    shards: list[int] = []
    languages: set[str] = set()
    count = 0
    for seat in occupied:
        if shards and count + seat.count > size:
            groups.append(Group(tuple(shards), frozenset(languages), count))
            shards, languages, count = [], set(), 0
        shards.append(seat.shard)
        languages.update(language for language, n in seat.by_language.items() if n > 0)
        count += seat.count
    if shards:
        groups.append(Group(tuple(shards), frozenset(languages), count))
    every = sorted({language for group in groups for language in group.languages})
    return Plan(session_id, tuple(groups), tuple(every), total)


def events(
    plan: Plan,
    by_language: Mapping[str, Mapping[str, Any]],
    unspoken: Iterable[str],
    now_ms: int,
    *,
    close: bool = False,
) -> list[tuple[Group, bytes]]:
    """The encoded events of one segment's messages (or a notice's, or with ``close`` a dismissal's): one per group
    (with only the languages its seats count), split by language into several when one would exceed
    ``FANOUT_EVENT_MAX_BYTES``."""
    unspoken_languages = sorted(set(unspoken))
    out: list[tuple[Group, bytes]] = []
    for group in plan.groups:
        languages = [language for language in by_language if language in group.languages]
        batch: list[str] = []
        for language in languages:
            wider = _event(plan, group, by_language, batch + [language], unspoken_languages, now_ms, close)
            if batch and len(wider) > limits.FANOUT_EVENT_MAX_BYTES:
                out.append((group, _event(plan, group, by_language, batch, unspoken_languages, now_ms, close)))
                batch = []
            batch.append(language)
        if batch:
            out.append((group, _event(plan, group, by_language, batch, unspoken_languages, now_ms, close)))
    return out


def _event(
    plan: Plan,
    group: Group,
    by_language: Mapping[str, Mapping[str, Any]],
    languages: list[str],
    unspoken: list[str],
    now_ms: int,
    close: bool,
) -> bytes:
    event: dict[str, Any] = {
        SESSION_ID: plan.session_id,
        SHARDS: list(group.shards),
        MESSAGES: {language: dict(by_language[language]) for language in languages},
        UNSPOKEN: [language for language in unspoken if language in languages],
        SENT_AT: now_ms,
    }
    if close:
        event[CLOSE] = True
    return fanout_function.encode(event)


@dataclass
class HandOff:
    """What one hand-off did: ``invocations`` queued, of which ``failed`` were refused (their ``lost_listeners``
    get nothing of this segment, or notice)."""

    invocations: int = 0
    failed: int = 0
    lost_listeners: int = 0


_invokes: ThreadPoolExecutor | None = None


def _invoker() -> ThreadPoolExecutor:
    global _invokes
    if _invokes is None:
        _invokes = ThreadPoolExecutor(limits.FANOUT_INVOKE_PARALLELISM, thread_name_prefix="fanout-invoke")
    return _invokes


def hand_off(
    plan: Plan,
    by_language: Mapping[str, Mapping[str, Any]],
    now_ms: int,
    unspoken: Iterable[str] = (),
    *,
    close: bool = False,
) -> HandOff:
    """Invoke the fan-out function asynchronously once per group (and event) with the segment's messages by language
    (with ``close``: a dismissal's, each connection closed once posted to), in parallel; returns once Lambda took (or
    refused) each. Never raises: a refusal is logged."""
    report = HandOff()
    pending: list[tuple[Group, Future[None]]] = [
        (group, _invoker().submit(fanout_function.invoke, payload))
        for group, payload in events(plan, by_language, unspoken, now_ms, close=close)
    ]
    for group, future in pending:
        report.invocations += 1
        try:
            future.result()
        except Exception:
            report.failed += 1
            report.lost_listeners += group.listeners
            logger.exception(
                "fan-out not started for a group of shards",
                extra={"session_id": plan.session_id, "shards": list(group.shards)},
            )
    return report


def hand_off_notice(plan: Plan, message: Mapping[str, Any], now_ms: int, *, close: bool = False) -> HandOff:
    """:func:`hand_off` of a message for every listener whatever its language (a notice; with ``close`` a
    dismissal): the same message under each language the groups' seats count."""
    return hand_off(plan, dict.fromkeys(plan.languages, message), now_ms, close=close)
