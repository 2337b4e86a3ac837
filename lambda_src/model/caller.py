"""Who sent a request (:class:`Caller`, read from the event once) and what an action needs of them
(:class:`Action`, one entry of a handler's action table).

The speaker rule lives here: an action whose entry names what it needs a speaker for is refused with
``UNAUTHORIZED`` before it runs when the request carries no speaker identity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lambda_src.contract.errors import ErrorCode, ServiceError

if TYPE_CHECKING:  # for annotations only
    from lambda_src.adapters.repositories.dynamodb import Guarded

_Request = TypeVar("_Request")
Reply = dict[str, Any]


@dataclass(frozen=True)
class Caller:
    """The connection a request arrived on, its speaker identity (the user id the authorizer returned on
    ``$connect``; None for a listener), the request's time, and what else its transaction must count
    (``guards``: on ``$connect``, the source address's connection limit). ``arrived_at_ms`` and ``request_id``
    are the gateway's own stamp of the request (``requestTimeEpoch``, ``requestId``): when it reached the API,
    whichever execution environment runs it and however late (``now_ms`` when the event has none)."""

    connection_id: str
    connected_at_ms: int
    user_id: str | None
    now_ms: int
    guards: tuple[Guarded, ...] = ()
    request_time_ms: int | None = None
    request_id: str = ""

    @property
    def arrived_at_ms(self) -> int:
        return self.now_ms if self.request_time_ms is None else self.request_time_ms

    @property
    def now_s(self) -> int:
        return self.now_ms // 1000

    @property
    def speaker_user_id(self) -> str:
        """The speaker's user id, for an action whose table entry requires a speaker (checked before it ran)."""
        if not self.user_id:
            raise RuntimeError("a speaker's action ran for a caller without a speaker identity")
        return self.user_id


def require_speaker(caller: Caller, needed_for: str) -> None:
    """Refuse a caller without a speaker identity (no valid token on ``$connect``)."""
    if not caller.user_id:
        raise ServiceError(ErrorCode.UNAUTHORIZED, f"{needed_for} needs a valid speaker token (token parameter)")


def anyone(_request: object) -> str | None:
    """An action any connection may take."""
    return None


def speaker_for(needed_for: str) -> Callable[[object], str | None]:
    """An action only a speaker may take; ``needed_for`` says what for, in the refusal ("creating a session")."""
    return lambda _request: needed_for


@dataclass(frozen=True)
class Action(Generic[_Request]):
    """One entry of an action table: how its request is read (and validated), whether it needs a speaker
    (``speaker``: what for, or None; it may depend on the request), and what it does."""

    parse: Callable[[Mapping[str, Any], Caller], _Request]
    run: Callable[[_Request, Caller], Reply]
    speaker: Callable[[_Request], str | None] = anyone

    def __call__(self, fields: Mapping[str, Any], caller: Caller) -> Reply:
        """Validate the request, then check the caller may make it, then make it."""
        request = self.parse(fields, caller)
        needed_for = self.speaker(request)
        if needed_for is not None:
            require_speaker(caller, needed_for)
        return self.run(request, caller)
