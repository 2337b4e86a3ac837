"""What downstream processors read of a session and post to its listeners (the public API:
``lambda_src.downstream``, whose docstring shows its use)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lambda_src import runtime
from lambda_src.app import connections, fanout, seats
from lambda_src.contract import function_settings, limits, wire
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.model.broadcast import BroadcastState
from lambda_src.model.partial_results import PartialResultConfig
from lambda_src.model.session import Session
from lambda_src.protocol import messages, validation

MESSAGE = "message"  # the field a refused message is reported under


@dataclass(frozen=True)
class SessionSettings:
    """What a downstream processor reads of a live session: the partial-result configuration and the broadcast
    state (the audio path stops forwarding while it is paused or muted)."""

    partial_results: PartialResultConfig
    broadcast: BroadcastState


def _live_session(session_id: str) -> Session | None:
    session = runtime.sessions().get(session_id, messages.now_ms() // 1000)
    return session if session is not None and session.is_active else None


def read_partial_result_config(session_id: str) -> PartialResultConfig | None:
    """The live session's partial-result configuration (defaults for fields it predates), or None when
    there is no such session, it expired, or it ended."""
    session = _live_session(session_id)
    return session.config if session is not None else None


def read_session_settings(session_id: str) -> SessionSettings | None:
    """The live session's partial-result configuration and broadcast state (one read; defaults for fields the
    item predates), or None when there is no such session, it expired, or it ended."""
    session = _live_session(session_id)
    return SessionSettings(session.config, session.broadcast) if session is not None else None


def listeners_by_language(session_id: str) -> dict[str, list[str]]:
    """The session's listeners' connection ids per target language (one listener index query per 500 listeners);
    languages in order, an empty dict when nobody listens (or there is no such session)."""
    session_id = validation.parse_session_id(session_id)
    by_language: dict[str, list[str]] = {}
    for page in seats.listener_pages(session_id):
        for connection_id, language in page:
            by_language.setdefault(language, []).append(connection_id)
    return dict(sorted(by_language.items()))


@dataclass(frozen=True)
class BroadcastReport:
    """What became of one message posted to the listeners of one language: ``listeners`` posted to, of which
    ``delivered``; ``gone`` answered 410 past their handshake and were counted out (or had been already);
    ``handshaking`` answered 410 while their handshake may still be completing (left alone); ``failed`` did not
    answer or refused (throttled, ...; logged)."""

    session_id: str
    target_language: str
    listeners: int
    delivered: int
    gone: int
    handshaking: int
    failed: int
    gone_listeners: tuple[str, ...] = ()  # the connection ids counted under ``gone``

    @classmethod
    def of(cls, session_id: str, target_language: str, result: fanout.FanoutResult) -> BroadcastReport:
        outcomes = result.outcomes
        return cls(
            session_id=session_id,
            target_language=target_language,
            listeners=len(result.listeners),
            delivered=outcomes[fanout.Outcome.DELIVERED],
            gone=outcomes[fanout.Outcome.GONE],
            handshaking=outcomes[fanout.Outcome.HANDSHAKING],
            failed=outcomes[fanout.Outcome.FAILED],
            gone_listeners=tuple(result.gone),
        )


class PendingBroadcast:
    """A broadcast whose posts are in flight (:func:`start_broadcast`); :meth:`finish` waits for them."""

    def __init__(self, session_id: str, target_language: str, message_type: str, posting: fanout.Posting) -> None:
        self._session_id = session_id
        self._target_language = target_language
        self._message_type = message_type
        self._posting = posting

    def finish(self) -> BroadcastReport:
        """Wait for every post; count out, in this thread, each listener a 410 proves gone. Never raises."""
        result = self._posting.settle(
            connections.count_out_if_vanished,
            "listeners of a language posted to",
            session_id=self._session_id,
            target_language=self._target_language,
            message_type=self._message_type,
        )
        return BroadcastReport.of(self._session_id, self._target_language, result)


def start_broadcast(
    session_id: str,
    target_language: str,
    message: Mapping[str, Any],
    *,
    executor: Executor,
    listeners: Sequence[str] | None = None,
) -> PendingBroadcast:
    """Start posting ``message`` to the session's listeners of ``target_language`` on ``executor`` and return at
    once (several languages' posts then overlap); ``listeners``: their connection ids when the caller already
    knows them (no index read), else they are read from the listener index. Refused (:class:`ServiceError`,
    ``INVALID_PARAMETERS``, nothing posted) for a malformed session id, an unsupported language, or a message
    that is not a JSON object with a string ``type`` within API Gateway's frame size."""
    session_id = validation.parse_session_id(session_id)
    target_language = validation.parse_language(
        wire.TARGET_LANGUAGE, target_language, function_settings.load().languages
    )
    checked = _checked_message(message)
    if listeners is None:
        listeners = [
            connection_id
            for page in seats.listener_pages(session_id, target_language)
            for connection_id, _language in page
        ]
    posting = fanout.post_each(executor, listeners, checked)
    return PendingBroadcast(session_id, target_language, str(checked["type"]), posting)


def broadcast(
    session_id: str, target_language: str, message: Mapping[str, Any], *, listeners: Sequence[str] | None = None
) -> BroadcastReport:
    """Post ``message`` to every listener of the session in ``target_language`` (in parallel) and say what became
    of each: :func:`start_broadcast`, then :meth:`PendingBroadcast.finish`. Costs one listener index query per
    500 listeners of that language (none when ``listeners`` is given), a post per listener, and for a listener
    proved gone a read of its row and the transaction that counts it out."""
    with ThreadPoolExecutor(max_workers=limits.FANOUT_PARALLELISM) as executor:
        return start_broadcast(session_id, target_language, message, executor=executor, listeners=listeners).finish()


def _checked_message(message: Any) -> dict[str, Any]:
    """``message`` as a dict when it is a JSON object with a non-empty string ``type`` that fits in one frame."""
    if not isinstance(message, Mapping) or not isinstance(message.get("type"), str) or not message["type"]:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{MESSAGE} must be a JSON object with a non-empty string type, got {validation.shown(message)}",
            field=MESSAGE,
        )
    checked = dict(message)
    try:
        size = len(messages.encode(checked).encode("utf-8"))
    except (TypeError, ValueError) as error:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS, f"{MESSAGE} must be JSON-serializable: {error}", field=MESSAGE
        ) from error
    if size > limits.MAX_FRAME_BYTES:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{MESSAGE} must encode to at most {limits.MAX_FRAME_BYTES} bytes, got {size}",
            field=MESSAGE,
        )
    return checked
