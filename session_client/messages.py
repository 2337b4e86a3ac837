"""The server's messages as typed values: one dataclass per message type, each type named once (its ``TYPE``).

A frame's JSON fields are camelCase; each dataclass field is the same name in snake_case (``minStabilityThreshold``
-> ``min_stability_threshold``). :func:`parse` turns a text frame into the dataclass of its ``type``; a type this
client does not know becomes :class:`UnknownMessage` (a newer service may send more), and fields it does not know are
kept in ``extra``. A frame that is not a JSON object with a ``type``, or lacks a field its type requires, is a
:class:`MessageFormatError`.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from lambda_src.contract.errors import ErrorCode

_Message = TypeVar("_Message", bound="ServerMessage")


class MessageFormatError(ValueError):
    """A frame that is not a server message: not JSON, not an object, no ``type``, or a required field missing."""


def wire_name(attribute: str) -> str:
    """The JSON name of a dataclass field (``min_stability_threshold`` -> ``minStabilityThreshold``)."""
    head, *rest = attribute.split("_")
    return head + "".join(part.capitalize() for part in rest)


def attribute_name(wire: str) -> str:
    """The dataclass field of a JSON name (``minStabilityThreshold`` -> ``min_stability_threshold``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", wire).lower()


MESSAGE_CLASSES: dict[str, type[ServerMessage]] = {}
"""Every message class by its ``type``; a class registers itself by defining ``TYPE``."""


@dataclass(frozen=True)
class ServerMessage:
    """A message from the service. ``extra``: fields this client does not know, as they came."""

    TYPE: ClassVar[str] = ""
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, compare=False, repr=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TYPE and cls.TYPE not in MESSAGE_CLASSES:
            MESSAGE_CLASSES[cls.TYPE] = cls

    @property
    def type(self) -> str:
        return self.TYPE

    @classmethod
    def from_fields(cls: builtins.type[_Message], fields: dict[str, Any]) -> _Message:
        """This message from a frame's fields (``type`` already read)."""
        known = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for wire, value in fields.items():
            name = attribute_name(wire)
            if name in known:
                values[name] = _nested(known[name], value)
            elif wire != "type":
                extra[wire] = value
        missing = [
            wire_name(f.name)
            for f in known.values()
            if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise MessageFormatError(f"{cls.TYPE or 'message'} without {', '.join(missing)}")
        return cls(**values, extra=extra)


def _nested(spec: dataclasses.Field[Any], value: Any) -> Any:
    """A nested object of a known shape (``sessionStatus.broadcastState``, the entries of
    ``sessionStatus.languageDistribution``) as its dataclass."""
    if spec.name == "broadcast_state" and isinstance(value, dict):
        return BroadcastSettings.from_fields(value)
    if spec.name == "language_distribution" and isinstance(value, list):
        return tuple(LanguageCount.from_fields(entry) for entry in value if isinstance(entry, dict))
    return value


# -- the session, as its speaker sees it ------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionCreated(ServerMessage):
    """A session was created (the first message of a ``createSession`` connection)."""

    TYPE: ClassVar[str] = "sessionCreated"
    session_id: str
    source_language: str
    quality_tier: str
    partial_results_enabled: bool
    min_stability_threshold: float
    max_buffer_timeout: float
    expires_at: int
    connection_id: str
    timestamp: int


@dataclass(frozen=True)
class SessionResumed(SessionCreated):
    """The owner's new connection is the session's speaker again (after ``resumeSession``)."""

    TYPE: ClassVar[str] = "sessionResumed"


@dataclass(frozen=True)
class SessionConfigUpdated(ServerMessage):
    TYPE: ClassVar[str] = "sessionConfigUpdated"
    session_id: str
    partial_results_enabled: bool
    min_stability_threshold: float
    max_buffer_timeout: float
    timestamp: int


@dataclass(frozen=True)
class LanguageCount(ServerMessage):
    """One entry of ``sessionStatus.languageDistribution`` (not a message of its own: no ``TYPE``)."""

    language_code: str
    count: int


@dataclass(frozen=True)
class BroadcastSettings(ServerMessage):
    """The broadcast state inside ``sessionStatus`` (not a message of its own: no ``TYPE``)."""

    is_paused: bool
    is_muted: bool
    volume: float


@dataclass(frozen=True)
class SessionStatus(ServerMessage):
    """The speaker's view of its session; ``update_reason`` says why it came (``requested``: its own ask)."""

    TYPE: ClassVar[str] = "sessionStatus"
    session_id: str
    is_active: bool
    speaker_connected: bool
    source_language: str
    quality_tier: str
    listener_count: int
    listeners_by_language: dict[str, int]
    language_distribution: tuple[LanguageCount, ...]
    partial_results_enabled: bool
    min_stability_threshold: float
    max_buffer_timeout: float
    broadcast_state: BroadcastSettings
    created_at: int
    age_seconds: int
    expires_at: int
    update_reason: str
    timestamp: int


@dataclass(frozen=True)
class BroadcastState(ServerMessage):
    """The speaker's reply to each broadcast action: the state after it."""

    TYPE: ClassVar[str] = "broadcastState"
    session_id: str
    is_paused: bool
    is_muted: bool
    volume: float
    timestamp: int


@dataclass(frozen=True)
class StateRestored(BroadcastState):
    """To a speaker's new connection after a refresh or resume, right after its first message."""

    TYPE: ClassVar[str] = "stateRestored"


@dataclass(frozen=True)
class AudioReceived(ServerMessage):
    """The reply to each ``sendAudio``: stored (``accepted``), or dropped and why (``reason``). ``sequence_number``
    is the chunk's, None for a chunk sent without one (the service numbers nothing; this client always numbers)."""

    TYPE: ClassVar[str] = "audioReceived"
    accepted: bool
    sequence_number: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Transcript(ServerMessage):
    """To the speaker: what the recognizer heard. A later transcript with the same ``segment_id`` replaces a
    partial one; a final one (``is_partial`` false) is kept."""

    TYPE: ClassVar[str] = "transcript"
    session_id: str
    segment_id: str
    text: str
    is_partial: bool
    timestamp: int
    stability: float | None = None


# -- a listener's session -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionJoined(ServerMessage):
    """A listener joined; ``listener_count`` is the count with it in."""

    TYPE: ClassVar[str] = "sessionJoined"
    session_id: str
    source_language: str
    target_language: str
    quality_tier: str
    connection_id: str
    timestamp: int
    listener_count: int | None = None


@dataclass(frozen=True)
class Caption(ServerMessage):
    """To a listener: the text in its language. A later caption with the same ``segment_id`` replaces a partial
    one; a final one (``is_partial`` false) is kept."""

    TYPE: ClassVar[str] = "caption"
    session_id: str
    segment_id: str
    source_language: str
    target_language: str
    text: str
    is_partial: bool
    timestamp: int


@dataclass(frozen=True)
class TranslatedAudio(ServerMessage):
    """To a listener that wants audio: a final segment spoken in its language. Fetch ``url`` (a short-lived GET
    URL of the MP3) and play the chunks in ``sequence_number`` order (consecutive from 1 per session and language);
    ``transcript`` is the text spoken, ``duration`` how long it plays (seconds)."""

    TYPE: ClassVar[str] = "translatedAudio"
    session_id: str
    target_language: str
    url: str
    timestamp: int
    duration: float
    sequence_number: int
    transcript: str
    segment_id: str


@dataclass(frozen=True)
class OutputSet(ServerMessage):
    """The reply to ``setOutput``: what the listener receives from the next segment (``audio``, ``captions`` or
    ``both``)."""

    TYPE: ClassVar[str] = "outputSet"
    session_id: str
    output: str
    timestamp: int


@dataclass(frozen=True)
class AudioUnavailable(ServerMessage):
    """Told once: no voice speaks ``target_language``; the listener gets captions only in it."""

    TYPE: ClassVar[str] = "audioUnavailable"
    session_id: str
    target_language: str
    timestamp: int


@dataclass(frozen=True)
class LanguageChanged(ServerMessage):
    TYPE: ClassVar[str] = "languageChanged"
    session_id: str
    target_language: str
    timestamp: int


@dataclass(frozen=True)
class SessionEvent(ServerMessage):
    """A notice about a session that carries nothing but its id and time."""

    session_id: str
    timestamp: int


@dataclass(frozen=True)
class SessionLeft(SessionEvent):
    TYPE: ClassVar[str] = "sessionLeft"


@dataclass(frozen=True)
class PlaybackPaused(SessionEvent):
    TYPE: ClassVar[str] = "playbackPaused"


@dataclass(frozen=True)
class PlaybackResumed(SessionEvent):
    TYPE: ClassVar[str] = "playbackResumed"


@dataclass(frozen=True)
class SpeakerDisconnected(ServerMessage):
    """The speaker dropped; the session ends unless it resumes within ``grace_seconds``."""

    TYPE: ClassVar[str] = "speakerDisconnected"
    session_id: str
    grace_seconds: int
    timestamp: int


@dataclass(frozen=True)
class SpeakerReconnected(SessionEvent):
    TYPE: ClassVar[str] = "speakerReconnected"


@dataclass(frozen=True)
class SessionEnded(ServerMessage):
    """The session ended (``endedBySpeaker``, ``speakerTimeout`` or ``expired``); listeners are disconnected."""

    TYPE: ClassVar[str] = "sessionEnded"
    session_id: str
    reason: str
    timestamp: int


@dataclass(frozen=True)
class BroadcastPaused(SessionEvent):
    TYPE: ClassVar[str] = "broadcastPaused"


@dataclass(frozen=True)
class BroadcastResumed(SessionEvent):
    TYPE: ClassVar[str] = "broadcastResumed"


@dataclass(frozen=True)
class BroadcastMuted(SessionEvent):
    TYPE: ClassVar[str] = "broadcastMuted"


@dataclass(frozen=True)
class BroadcastUnmuted(SessionEvent):
    TYPE: ClassVar[str] = "broadcastUnmuted"


@dataclass(frozen=True)
class VolumeChanged(ServerMessage):
    TYPE: ClassVar[str] = "volumeChanged"
    session_id: str
    volume_level: float
    timestamp: int


@dataclass(frozen=True)
class SpeakerStateChanged(BroadcastState):
    """To listeners: a ``speakerStateChange`` changed the state (the whole state)."""

    TYPE: ClassVar[str] = "speakerStateChanged"


# -- the connection ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConnectionRefreshComplete(ServerMessage):
    """The new connection took over (the first message of a ``refreshConnection`` connection)."""

    TYPE: ClassVar[str] = "connectionRefreshComplete"
    session_id: str
    role: str
    source_language: str
    connection_id: str
    timestamp: int
    target_language: str | None = None


@dataclass(frozen=True)
class HeartbeatAck(ServerMessage):
    TYPE: ClassVar[str] = "heartbeatAck"
    timestamp: int


@dataclass(frozen=True)
class ConnectionRefreshRequired(ServerMessage):
    """Open a new connection with ``refreshConnection`` before API Gateway closes this one (the clients do)."""

    TYPE: ClassVar[str] = "connectionRefreshRequired"
    minutes_left: int
    timestamp: int


@dataclass(frozen=True)
class ConnectionWarning(ConnectionRefreshRequired):
    TYPE: ClassVar[str] = "connectionWarning"


@dataclass(frozen=True)
class ErrorMessage(ServerMessage):
    """A refusal. ``code`` is a name of the catalogue (:attr:`error_code`, when this client knows it);
    ``action`` the action of the message refused (None for a handshake's refusal, or a frame naming no action)."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    timestamp: int
    action: str | None = None
    field: str | None = None
    retry_after: int | None = None
    active_sessions: list[str] | None = None

    @property
    def error_code(self) -> ErrorCode | None:
        """The catalogue's entry for ``code`` (None for a code this client does not know)."""
        return ErrorCode.__members__.get(self.code)


@dataclass(frozen=True)
class UnknownMessage(ServerMessage):
    """A message of a type this client does not know: its type and every field as it came."""

    message_type: str = ""

    @property
    def type(self) -> str:
        return self.message_type


def parse(frame: str | bytes) -> ServerMessage:
    """The typed message of one text frame."""
    try:
        fields = json.loads(frame)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MessageFormatError(f"not JSON: {error}") from error
    if not isinstance(fields, dict) or not isinstance(fields.get("type"), str):
        raise MessageFormatError("not a JSON object with a string type")
    message_class = MESSAGE_CLASSES.get(fields["type"])
    if message_class is None:
        return UnknownMessage(message_type=fields["type"], extra={k: v for k, v in fields.items() if k != "type"})
    return message_class.from_fields(fields)
