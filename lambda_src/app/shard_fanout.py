"""The fan-out per shard (decision record 0040): a big session's segment posted to its listeners by parallel
invocations of the fan-out function, each posting the listeners of a group of the session's seat shards.

The consumer's side (:func:`plan`, :func:`hand_off`): from the one read of the session's seats the audience read
makes anyway (``seats.occupied``, kept ``CAPTION_AUDIENCE_CACHE_SECONDS``), an audience larger than
``local_listeners()`` (500: what a session of one shard holds, which the consumer has always posted itself) is
split into groups of occupied shards of at most ``group_listeners()`` listeners (~1,000) each; for each segment, the
consumer translates (or synthesizes and numbers) once per language as before and invokes the fan-out function
asynchronously once per group with the segment's messages by language (only the languages the group's seats count),
never the audience, each event under ``FANOUT_EVENT_MAX_BYTES`` (split by language when it would not fit).

The worker's side (:func:`deliver`, the fan-out function's use case): each shard's listeners and their delivery
choices are read (one index query per page of the shard's key, one BatchGetItem per 100 rows) and kept
``CAPTION_AUDIENCE_CACHE_SECONDS`` in the warm instance, so a segment costs one audience read per window per shard
whatever the number of segments; a caption goes to the listeners who want captions (all of them in a language this
deployment does not speak), a ``translatedAudio`` to those who want audio, anything else to all; posts go out
``FANOUT_WORKER_PARALLELISM`` at a time through ``downstream.start_broadcast``, so a listener that answers 410 past
its handshake is counted out once through the one path (and dropped from the kept audience), and a 429 is retried
within the fan-out's deadline and never taken for a departure. The sequence numbers of ``translatedAudio`` are in
the messages: drawn once per segment by the consumer; a worker only posts.

A failed invocation is not retried by Lambda (``MaximumRetryAttempts`` 0: a retry would post again to the listeners
the first attempt reached); it goes to the function's failure queue, which is alarmed, and its listeners miss that
one segment (the next partial or final replaces a caption). An event older than ``FANOUT_EVENT_MAX_AGE_SECONDS`` is
dropped unposted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from lambda_src import runtime
from lambda_src.adapters import fanout_function
from lambda_src.adapters.repositories.connections import DeliveryChoice
from lambda_src.app import downstream
from lambda_src.contract import function_settings, limits
from lambda_src.model.session import Seat, shard_key
from lambda_src.platform.log import logger
from lambda_src.protocol import messages

# The event the fan-out function takes.
SESSION_ID: Final = "sessionId"
SHARDS: Final = "shards"
MESSAGES: Final = "messages"  # language -> the message to post to that language's listeners
UNSPOKEN: Final = "unspokenLanguages"  # languages nothing speaks here: their audio-only listeners get captions
SENT_AT: Final = "sentAtMs"

CAPTION: Final = "caption"
TRANSLATED_AUDIO: Final = "translatedAudio"

_DEFAULT_CHOICE = DeliveryChoice()


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


# -- the consumer's side ---------------------------------------------------------------------------------------------
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
    is at most :func:`local_listeners` (the consumer posts it itself, as always)."""
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
    plan: Plan, by_language: Mapping[str, Mapping[str, Any]], unspoken: Iterable[str], now_ms: int
) -> list[tuple[Group, bytes]]:
    """The encoded events of one segment's messages: one per group (with only the languages its seats count), split
    by language into several when one would exceed ``FANOUT_EVENT_MAX_BYTES``."""
    unspoken_languages = sorted(set(unspoken))
    out: list[tuple[Group, bytes]] = []
    for group in plan.groups:
        languages = [language for language in by_language if language in group.languages]
        batch: list[str] = []
        for language in languages:
            if batch and len(_event(plan, group, by_language, batch + [language], unspoken_languages, now_ms)) > (
                limits.FANOUT_EVENT_MAX_BYTES
            ):
                out.append((group, _event(plan, group, by_language, batch, unspoken_languages, now_ms)))
                batch = []
            batch.append(language)
        if batch:
            out.append((group, _event(plan, group, by_language, batch, unspoken_languages, now_ms)))
    return out


def _event(
    plan: Plan,
    group: Group,
    by_language: Mapping[str, Mapping[str, Any]],
    languages: list[str],
    unspoken: list[str],
    now_ms: int,
) -> bytes:
    return fanout_function.encode(
        {
            SESSION_ID: plan.session_id,
            SHARDS: list(group.shards),
            MESSAGES: {language: dict(by_language[language]) for language in languages},
            UNSPOKEN: [language for language in unspoken if language in languages],
            SENT_AT: now_ms,
        }
    )


@dataclass
class HandOff:
    """What one segment's hand-off did: ``invocations`` queued, of which ``failed`` were refused (their
    ``lost_listeners`` get nothing of this segment)."""

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
    plan: Plan, by_language: Mapping[str, Mapping[str, Any]], now_ms: int, unspoken: Iterable[str] = ()
) -> HandOff:
    """Invoke the fan-out function asynchronously once per group (and event) with the segment's messages by language,
    in parallel; returns once Lambda took (or refused) each. Never raises: a refusal is logged."""
    report = HandOff()
    pending: list[tuple[Group, Future[None]]] = [
        (group, _invoker().submit(fanout_function.invoke, payload))
        for group, payload in events(plan, by_language, unspoken, now_ms)
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


# -- the worker's side -----------------------------------------------------------------------------------------------
@dataclass
class _ShardAudience:
    """One shard's listeners by language and their delivery choices, as read at ``read_at_ms``."""

    read_at_ms: int
    by_language: dict[str, list[str]]
    choices: dict[str, DeliveryChoice]


# (session id, shard) -> its audience as last read by this instance; bounded (an instance serves few sessions).
_kept: dict[tuple[str, int], _ShardAudience] = {}
_KEPT_SIZE: Final = 4096
_posts: ThreadPoolExecutor | None = None
_reads: ThreadPoolExecutor | None = None


def forget() -> None:
    """Forget every kept audience (tests)."""
    _kept.clear()


def _executors() -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
    global _posts, _reads
    if _posts is None or _reads is None:
        _posts = ThreadPoolExecutor(limits.FANOUT_WORKER_PARALLELISM, thread_name_prefix="fanout-post")
        _reads = ThreadPoolExecutor(limits.SHARDS_PER_FANOUT, thread_name_prefix="fanout-read")
    return _posts, _reads


def _read_shard(session_id: str, shard: int, now_ms: int) -> _ShardAudience:
    """The shard's audience: kept, or read again once ``CAPTION_AUDIENCE_CACHE_SECONDS`` old. A failed read keeps
    the last one (an empty one when there is none), as captions do."""
    key = (session_id, shard)
    kept = _kept.get(key)
    if kept is not None and 0 <= now_ms - kept.read_at_ms < limits.CAPTION_AUDIENCE_CACHE_SECONDS * 1000:
        return kept
    try:
        by_language: dict[str, list[str]] = {}
        for page in runtime.connections().listener_pages(shard_key(session_id, shard)):
            for connection_id, language in page:
                by_language.setdefault(language, []).append(connection_id)
        ids = [connection_id for listeners in by_language.values() for connection_id in listeners]
        choices = runtime.connections().delivery_choices(ids) if ids else {}
    except Exception:
        logger.exception("shard audience not read; the last one is kept", extra={"session_id": session_id})
        return kept if kept is not None else _ShardAudience(now_ms, {}, {})
    audience = _ShardAudience(now_ms, by_language, choices)
    _kept.pop(key, None)
    if len(_kept) >= _KEPT_SIZE:
        _kept.pop(next(iter(_kept)))
    _kept[key] = audience
    return audience


def recipients(
    message_type: str, listeners: Sequence[str], choice_of: Mapping[str, DeliveryChoice], spoken: bool
) -> list[str]:
    """Who of ``listeners`` (one language's) gets a message of ``message_type``: a caption those who want captions
    (everyone where nothing speaks the language: audio-only listeners get captions rather than nothing), a
    ``translatedAudio`` those who want audio now, anything else everyone."""
    if message_type == CAPTION:
        if not spoken:
            return list(listeners)
        return [c for c in listeners if choice_of.get(c, _DEFAULT_CHOICE).wants_captions]
    if message_type == TRANSLATED_AUDIO:
        return [c for c in listeners if choice_of.get(c, _DEFAULT_CHOICE).wants_audio]
    return list(listeners)


@dataclass
class WorkerReport:
    """What one fan-out invocation did: listeners ``posted`` to (arrived), ``gone`` (counted out), ``handshaking``,
    ``failed``; ``stale`` when the event was too old to post."""

    shards: int = 0
    languages: int = 0
    posted: int = 0
    gone: int = 0
    handshaking: int = 0
    failed: int = 0
    stale: bool = False
    gone_listeners: list[str] = field(default_factory=list)

    def as_result(self) -> dict[str, int | bool]:
        return {
            "shards": self.shards,
            "languages": self.languages,
            "posted": self.posted,
            "gone": self.gone,
            "handshaking": self.handshaking,
            "failed": self.failed,
            "stale": self.stale,
        }


class InvalidEvent(ValueError):
    """An event that is not a fan-out's."""


def deliver(event: Mapping[str, Any]) -> WorkerReport:
    """Post one segment's messages to the listeners of the event's shards (the fan-out function's invocation)."""
    session_id, shards, by_language, unspoken, sent_at_ms = _parsed(event)
    now_ms = messages.now_ms()
    report = WorkerReport(shards=len(shards), languages=len(by_language))
    if now_ms - sent_at_ms > limits.FANOUT_EVENT_MAX_AGE_SECONDS * 1000:
        logger.warning(
            "fan-out event too old to post; dropped",
            extra={"session_id": session_id, "age_ms": now_ms - sent_at_ms, "shards": shards},
        )
        report.stale = True
        return report
    posts, reads = _executors()
    audiences = dict(zip(shards, reads.map(lambda shard: _read_shard(session_id, shard, now_ms), shards), strict=True))
    shard_of = {c: shard for shard, audience in audiences.items() for ids in audience.by_language.values() for c in ids}
    pending = []
    for language, message in by_language.items():
        listeners = [
            connection_id
            for audience in audiences.values()
            for connection_id in recipients(
                str(message.get("type", "")),
                audience.by_language.get(language, []),
                audience.choices,
                language not in unspoken,
            )
        ]
        if not listeners:
            continue
        try:
            pending.append(
                downstream.start_broadcast(session_id, language, message, executor=posts, listeners=listeners)
            )
        except Exception:
            logger.exception(
                "fan-out message not posted", extra={"session_id": session_id, "target_language": language}
            )
            report.failed += len(listeners)
    for broadcast in pending:
        result = broadcast.finish()
        report.posted += result.delivered
        report.gone += result.gone
        report.handshaking += result.handshaking
        report.failed += result.failed
        report.gone_listeners.extend(result.gone_listeners)
        for connection_id in result.gone_listeners:
            shard = shard_of.get(connection_id)
            if shard is not None:
                _forget_listener(audiences[shard], connection_id)
    return report


def _forget_listener(audience: _ShardAudience, connection_id: str) -> None:
    """Drop a listener proved gone from its shard's kept audience (the next segments do not post to it again)."""
    for language, ids in list(audience.by_language.items()):
        if connection_id in ids:
            remaining = [c for c in ids if c != connection_id]
            if remaining:
                audience.by_language[language] = remaining
            else:
                del audience.by_language[language]


def _parsed(event: Mapping[str, Any]) -> tuple[str, list[int], dict[str, dict[str, Any]], set[str], int]:
    try:
        session_id = event[SESSION_ID]
        shards = [int(shard) for shard in event[SHARDS]]
        by_language = {str(language): dict(message) for language, message in event[MESSAGES].items()}
        unspoken = {str(language) for language in event.get(UNSPOKEN, [])}
        sent_at_ms = int(event[SENT_AT])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidEvent(f"not a fan-out event: {error!r}") from error
    if not isinstance(session_id, str) or not session_id:
        raise InvalidEvent("not a fan-out event: no session id")
    return session_id, shards, by_language, unspoken, sent_at_ms
