"""The speaker's and the listener's clients.

A :class:`SpeakerClient` creates a session (``createSession`` on the WebSocket URL, with the partial-result
settings), streams audio chunks and controls the broadcast; after a drop it resumes its session
(``resumeSession``) within the speaker's grace window. A :class:`ListenerClient` joins a session in a language,
changes it, pauses its own playback, chooses its output and leaves, and hands each ``translatedAudio`` to its
``on_audio`` callback as an :class:`~session_client.audio_segments.AudioSegment`; after a drop it joins again.
Both keep their connection alive and refresh it before API Gateway's 2-hour limit
(:class:`~session_client.connection.Connection`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from lambda_src.contract import limits, partial_result_fields, routes, wire
from lambda_src.contract.schema import ROLE_LISTENER, ROLE_SPEAKER
from lambda_src.contract.wire import STATUS_REQUESTED
from session_client import messages
from session_client.audio_segments import AudioSegment
from session_client.connection import ACTION, DEFAULT_URL, Connection, Expectation, call_back, of_type
from session_client.messages import ServerMessage

_Reply = TypeVar("_Reply", bound=ServerMessage)


def _typed(reply: ServerMessage, kind: type[_Reply]) -> _Reply:
    if not isinstance(reply, kind):
        raise messages.MessageFormatError(f"expected {kind.TYPE}, got {reply.type}")
    return reply


def _setting(value: bool | float | Decimal) -> str:
    """A partial-result setting as the query string spells it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class SpeakerClient(Connection):
    """A session's speaker. Create one with :meth:`create` (a new session) or :meth:`resume` (an existing one)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str,
        resume_window: float = limits.DEFAULT_SPEAKER_GRACE_SECONDS,
        **options: Any,
    ) -> None:
        """``resume_window``: how long after a drop to keep trying ``resumeSession`` (the environment's speaker
        grace window, ``speakerGraceSeconds``)."""
        super().__init__(url, **options)
        self.token = token
        self.resume_window = resume_window
        self.created: messages.SessionCreated | None = None
        self._next_sequence_number = 0

    @classmethod
    async def create(
        cls,
        url: str = DEFAULT_URL,
        *,
        token: str,
        source_language: str = "en",
        quality_tier: str | None = None,
        partial_results_enabled: bool | None = None,
        min_stability: float | Decimal | None = None,
        max_buffer_timeout: float | Decimal | None = None,
        **options: Any,
    ) -> SpeakerClient:
        """Create a session (settings left None take the service's defaults); ``created`` is its ``sessionCreated``."""
        client = cls(url, token=token, **options)
        query = {ACTION: routes.CREATE_SESSION}
        query[wire.SOURCE_LANGUAGE] = source_language
        if quality_tier is not None:
            query[wire.QUALITY_TIER] = quality_tier
        for field, value in _settings(partial_results_enabled, min_stability, max_buffer_timeout).items():
            if value is not None:
                query[field.request] = _setting(value)
        query[limits.TOKEN_FIELD] = token
        client.created = _typed(await client._open(query, messages.SessionCreated.TYPE), messages.SessionCreated)
        return client

    @classmethod
    async def resume(cls, url: str = DEFAULT_URL, *, token: str, session_id: str, **options: Any) -> SpeakerClient:
        """Take an existing session of this token's speaker back on a new connection (``resumeSession``)."""
        client = cls(url, token=token, **options)
        client.session_id = session_id
        client.created = _typed(
            await client._open(client._resume_query(), messages.SessionResumed.TYPE), messages.SessionCreated
        )
        return client

    def _welcomed(self, first: ServerMessage) -> None:
        super()._welcomed(first)
        self.session_id = getattr(first, "session_id", self.session_id)

    def _query(self, action: str, **fields: str) -> dict[str, str]:
        return {ACTION: action, wire.SESSION_ID: self.session_id or "", **fields}

    def _resume_query(self) -> dict[str, str]:
        return self._query(routes.RESUME_SESSION, **{limits.TOKEN_FIELD: self.token})

    def _refresh_query(self) -> dict[str, str]:
        return self._query(routes.REFRESH_CONNECTION, **{wire.ROLE: ROLE_SPEAKER, limits.TOKEN_FIELD: self.token})

    async def _reopen(self) -> None:
        await self._open_again(
            self._resume_query,
            messages.SessionResumed.TYPE,
            deadline=self._clock() + self.resume_window,
            attempts=None,
        )

    def _named(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A speaker action's fields with the session's id (which spares the service looking it up)."""
        return {wire.SESSION_ID: self.session_id, **fields}

    async def _ask(self, action: str, expects: Expectation, **fields: Any) -> ServerMessage:
        return await self.request(action, expects, **self._named(fields))

    # -- audio --------------------------------------------------------------------------------------------------
    async def send_audio(self, pcm: bytes, *, sequence_number: int | None = None, timestamp: int | None = None) -> int:
        """Send one chunk of 16-bit little-endian mono PCM at 16 kHz (``sendAudio``) without waiting for its
        ``audioReceived`` (which arrives in the message stream); returns its sequence number (counted from 0 on
        this client unless given)."""
        number = self._next_sequence_number if sequence_number is None else sequence_number
        self._next_sequence_number = number + 1
        fields: dict[str, Any] = {
            wire.AUDIO_DATA: base64.b64encode(pcm).decode("ascii"),
            wire.SEQUENCE_NUMBER: number,
        }
        if timestamp is not None:
            fields[wire.TIMESTAMP] = timestamp
        await self.send(routes.SEND_AUDIO, **self._named(fields))
        return number

    # -- the broadcast ------------------------------------------------------------------------------------------
    async def _broadcast(self, action: str, **fields: Any) -> messages.BroadcastState:
        reply = await self._ask(action, of_type(messages.BroadcastState.TYPE), **fields)
        return _typed(reply, messages.BroadcastState)

    async def pause_broadcast(self) -> messages.BroadcastState:
        return await self._broadcast(routes.PAUSE_BROADCAST)

    async def resume_broadcast(self) -> messages.BroadcastState:
        return await self._broadcast(routes.RESUME_BROADCAST)

    async def mute(self) -> messages.BroadcastState:
        return await self._broadcast(routes.MUTE_BROADCAST)

    async def unmute(self) -> messages.BroadcastState:
        return await self._broadcast(routes.UNMUTE_BROADCAST)

    async def set_volume(self, level: float) -> messages.BroadcastState:
        return await self._broadcast(routes.SET_VOLUME, **{wire.VOLUME_LEVEL: level})

    async def set_state(
        self, *, is_paused: bool | None = None, is_muted: bool | None = None, volume: float | None = None
    ) -> messages.BroadcastState:
        """Set several parts of the broadcast state at once (``speakerStateChange``; None: left as it is)."""
        state = {
            messages.wire_name(name): value
            for name, value in (("is_paused", is_paused), ("is_muted", is_muted), ("volume", volume))
            if value is not None
        }
        return await self._broadcast(routes.SPEAKER_STATE_CHANGE, **{wire.STATE: state})

    # -- the session --------------------------------------------------------------------------------------------
    async def update_config(
        self,
        *,
        partial_results_enabled: bool | None = None,
        min_stability: float | Decimal | None = None,
        max_buffer_timeout: float | Decimal | None = None,
    ) -> messages.SessionConfigUpdated:
        """Change some partial-result settings (None: left as it is); the reply has the whole configuration."""
        fields: dict[str, Any] = {
            field.request: float(value) if isinstance(value, Decimal) else value
            for field, value in _settings(partial_results_enabled, min_stability, max_buffer_timeout).items()
            if value is not None
        }
        reply = await self._ask(routes.UPDATE_SESSION_CONFIG, of_type(messages.SessionConfigUpdated.TYPE), **fields)
        return _typed(reply, messages.SessionConfigUpdated)

    async def status(self) -> messages.SessionStatus:
        """The session's status (``getSessionStatus``); pushed statuses meanwhile go to the stream."""
        reply = await self._ask(
            routes.GET_SESSION_STATUS,
            lambda m: isinstance(m, messages.SessionStatus) and m.update_reason == STATUS_REQUESTED,
        )
        return _typed(reply, messages.SessionStatus)

    async def end(self) -> messages.SessionEnded:
        """End the session (every listener is told and disconnected), then close this client."""
        reply = await self._ask(routes.END_SESSION, of_type(messages.SessionEnded.TYPE))
        await self.close()
        return _typed(reply, messages.SessionEnded)


class ListenerClient(Connection):
    """A listener of one session, in one language. Create one with :meth:`join`."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        session_id: str,
        language: str,
        output: str | None = None,
        reconnect_attempts: int | None = 10,
        on_audio: Callable[[AudioSegment], None] | None = None,
        **options: Any,
    ) -> None:
        """``output``: what to receive (``wire.OUTPUTS``: ``audio``, ``captions`` or ``both``; None says nothing,
        which is both); ``reconnect_attempts``: how many times to try joining again after a drop (None: until
        closed); ``on_audio``: called with each ``translatedAudio`` as an :class:`AudioSegment` (the message and its
        ``fetch()``), on the reader, in the order they arrive (it must not block: hand the segment to a task, e.g.
        :class:`~session_client.playback.SegmentQueue`; an exception it raises is logged); when given,
        ``translatedAudio`` goes to it only, not to ``on_message`` or the stream."""
        super().__init__(url, **options)
        self.session_id = session_id
        self.language = language
        self.output = output
        self.reconnect_attempts = reconnect_attempts
        self.joined: messages.SessionJoined | None = None
        self._on_audio = on_audio

    @classmethod
    async def join(
        cls, url: str = DEFAULT_URL, *, session_id: str, language: str, output: str | None = None, **options: Any
    ) -> ListenerClient:
        """Join ``session_id`` in ``language`` (``joinSession``), receiving ``output`` (None: both);
        ``joined`` is its ``sessionJoined``. ``options``: the constructor's and the connection's (``on_audio``,
        ``on_message``, ...)."""
        client = cls(url, session_id=session_id, language=language, output=output, **options)
        await client._join()
        return client

    async def _join(self) -> None:
        self.joined = _typed(await self._open(self._join_query(), messages.SessionJoined.TYPE), messages.SessionJoined)

    def _join_query(self) -> dict[str, str]:
        return {
            ACTION: routes.JOIN_SESSION,
            wire.SESSION_ID: self.session_id or "",
            wire.TARGET_LANGUAGE: self.language,
            **self._output_field(),
        }

    def _refresh_query(self) -> dict[str, str]:
        # Naming the old connection swaps the rows: the listener count does not move. The output is said again (the
        # service does not carry the old connection's over).
        return {
            ACTION: routes.REFRESH_CONNECTION,
            wire.SESSION_ID: self.session_id or "",
            wire.ROLE: ROLE_LISTENER,
            wire.TARGET_LANGUAGE: self.language,
            wire.PREVIOUS_CONNECTION_ID: self.connection_id or "",
            **self._output_field(),
        }

    def _deliver(self, message: ServerMessage) -> None:
        if self._on_audio is not None and isinstance(message, messages.TranslatedAudio):
            call_back(self._on_audio, AudioSegment(message))
        else:
            super()._deliver(message)

    def _output_field(self) -> dict[str, str]:
        return {} if self.output is None else {wire.OUTPUT: self.output}

    async def _reopen(self) -> None:
        joined = await self._open_again(
            self._join_query, messages.SessionJoined.TYPE, deadline=None, attempts=self.reconnect_attempts
        )
        self.joined = _typed(joined, messages.SessionJoined)

    async def change_language(self, language: str) -> messages.LanguageChanged:
        reply = await self.request(
            routes.CHANGE_LANGUAGE, of_type(messages.LanguageChanged.TYPE), **{wire.TARGET_LANGUAGE: language}
        )
        self.language = language
        return _typed(reply, messages.LanguageChanged)

    async def pause_playback(self) -> messages.PlaybackPaused:
        return _typed(
            await self.request(routes.PAUSE_PLAYBACK, of_type(messages.PlaybackPaused.TYPE)), messages.PlaybackPaused
        )

    async def resume_playback(self) -> messages.PlaybackResumed:
        reply = await self.request(routes.RESUME_PLAYBACK, of_type(messages.PlaybackResumed.TYPE))
        return _typed(reply, messages.PlaybackResumed)

    async def set_output(self, output: str) -> messages.OutputSet:
        """Receive ``output`` from the next segment on (``audio``: ``translatedAudio`` only, ``captions``: ``caption``
        only, or ``both``); kept for a reconnection."""
        reply = await self.request(routes.SET_OUTPUT, of_type(messages.OutputSet.TYPE), **{wire.OUTPUT: output})
        self.output = output
        return _typed(reply, messages.OutputSet)

    async def leave(self) -> messages.SessionLeft:
        """Leave the session (counted out at once), then close this client."""
        reply = await self.request(routes.LEAVE_SESSION, of_type(messages.SessionLeft.TYPE))
        await self.close()
        return _typed(reply, messages.SessionLeft)


def _settings(
    enabled: bool | None, min_stability: float | Decimal | None, max_buffer_timeout: float | Decimal | None
) -> dict[partial_result_fields.Field[Any], bool | float | Decimal | None]:
    """The partial-result settings a call names, by their field (by name: the fields' order says nothing)."""
    return {
        partial_result_fields.ENABLED: enabled,
        partial_result_fields.STABILITY: min_stability,
        partial_result_fields.TIMEOUT: max_buffer_timeout,
    }
