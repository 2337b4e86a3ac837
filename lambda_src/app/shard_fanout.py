"""The fan-out per shard (decision record 0040): a big session's segment, notice or dismissal posted to its
listeners by parallel invocations of the fan-out function, each posting the listeners of a group of the session's
seat shards.

The consumer's side is :mod:`lambda_src.app.fanout_groups` (``plan``, ``hand_off``): from the one read of the
session's seats the audience read makes anyway (``seats.occupied``, kept ``CAPTION_AUDIENCE_CACHE_SECONDS``), an
audience larger than ``local_listeners()`` (500) is split into groups of occupied shards of at most
``group_listeners()`` listeners (~1,000) each; for each segment, the consumer translates (or synthesizes and numbers)
once per language as before and invokes the fan-out function asynchronously once per group with the segment's
messages by language (only the languages the group's seats count), never the audience. A notice or a dismissal to
such an audience is handed off the same way by ``fanout.notify_listeners``.

The worker's side (:func:`deliver`, the fan-out function's use case): each shard's listeners and their delivery
choices are read (one index query per page of the shard's key, one BatchGetItem per 100 rows) and kept
``CAPTION_AUDIENCE_CACHE_SECONDS`` in the warm instance, so a segment costs one audience read per window per shard
whatever the number of segments; a caption goes to the listeners who want captions (all of them in a language this
deployment does not speak), a ``translatedAudio`` to those who want audio, anything else to all; posts go out
``FANOUT_WORKER_PARALLELISM`` at a time through ``downstream.start_broadcast``, so a listener that answers 410 past
its handshake is counted out once through the one path (and dropped from the kept audience), and a 429 is retried
within the fan-out's deadline and never taken for a departure. A notice or a dismissal (any message but a caption
or ``translatedAudio``) reads its shards afresh rather than from the kept audience (it is rare, and a listener who
joined within the window must not miss it); a dismissal (``close``) closes each connection once posted to (closed
even when the post failed) and drops it from the kept audience, and is never too old to post. The sequence numbers of
``translatedAudio`` are in the messages: drawn once per segment by the consumer; a worker only posts.

A failed invocation is not retried by Lambda (``MaximumRetryAttempts`` 0: a retry would post again to the listeners
the first attempt reached); it goes to the function's failure queue, which is alarmed, and its listeners miss that
one segment (the next partial or final replaces a caption); a lost dismissal is made again by the sweeper's revisit
of the ended session (decision record 0017). An event older than ``FANOUT_EVENT_MAX_AGE_SECONDS`` is dropped unposted,
but for a dismissal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from lambda_src import runtime
from lambda_src.adapters.repositories.connections import DeliveryChoice
from lambda_src.app import downstream, fanout
from lambda_src.app.fanout_groups import CLOSE, MESSAGES, SENT_AT, SESSION_ID, SHARDS, UNSPOKEN
from lambda_src.app.fanout_groups import events as events  # (bench/fanout.py's, as before the consumer's side moved)
from lambda_src.app.fanout_groups import plan as plan
from lambda_src.contract import limits
from lambda_src.model.session import shard_key
from lambda_src.platform.log import logger
from lambda_src.protocol import messages

CAPTION: Final = "caption"
TRANSLATED_AUDIO: Final = "translatedAudio"

_DEFAULT_CHOICE = DeliveryChoice()


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


def _read_shard(session_id: str, shard: int, now_ms: int, fresh: bool = False) -> _ShardAudience:
    """The shard's audience: kept, or read again once ``CAPTION_AUDIENCE_CACHE_SECONDS`` old (or when ``fresh``). A
    failed read keeps the last one (an empty one when there is none), as captions do."""
    key = (session_id, shard)
    kept = _kept.get(key)
    if not fresh and kept is not None and 0 <= now_ms - kept.read_at_ms < limits.CAPTION_AUDIENCE_CACHE_SECONDS * 1000:
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
    """Post one segment's messages (or a notice, or a dismissal's ``sessionEnded`` and close) to the listeners of the
    event's shards (the fan-out function's invocation)."""
    session_id, shards, by_language, unspoken, sent_at_ms, close = _parsed(event)
    now_ms = messages.now_ms()
    report = WorkerReport(shards=len(shards), languages=len(by_language))
    if not close and now_ms - sent_at_ms > limits.FANOUT_EVENT_MAX_AGE_SECONDS * 1000:
        logger.warning(
            "fan-out event too old to post; dropped",
            extra={"session_id": session_id, "age_ms": now_ms - sent_at_ms, "shards": shards},
        )
        report.stale = True
        return report
    posts, reads = _executors()
    fresh = close or any(message.get("type") not in (CAPTION, TRANSLATED_AUDIO) for message in by_language.values())
    audiences = dict(
        zip(shards, reads.map(lambda shard: _read_shard(session_id, shard, now_ms, fresh), shards), strict=True)
    )
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
            if close:  # posted then closed, each listener counted out by its $disconnect (or here, when gone)
                posting = fanout.post_each(posts, listeners, message, close=True)
                pending.append(downstream.PendingBroadcast(session_id, language, str(message.get("type")), posting))
            else:
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
    if close:  # the session is over: nothing more is posted to these shards
        for shard in shards:
            _kept.pop((session_id, shard), None)
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


def _parsed(event: Mapping[str, Any]) -> tuple[str, list[int], dict[str, dict[str, Any]], set[str], int, bool]:
    try:
        session_id = event[SESSION_ID]
        shards = [int(shard) for shard in event[SHARDS]]
        by_language = {str(language): dict(message) for language, message in event[MESSAGES].items()}
        unspoken = {str(language) for language in event.get(UNSPOKEN, [])}
        sent_at_ms = int(event[SENT_AT])
        close = event.get(CLOSE, False)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidEvent(f"not a fan-out event: {error!r}") from error
    if not isinstance(session_id, str) or not session_id:
        raise InvalidEvent("not a fan-out event: no session id")
    if not isinstance(close, bool):
        raise InvalidEvent("not a fan-out event: close is not a boolean")
    return session_id, shards, by_language, unspoken, sent_at_ms, close
