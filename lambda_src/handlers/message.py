"""Message routes and ``$default``.

Replies are route responses: API Gateway sends the returned body to the client. A route with more than
one message to send (a heartbeat near the 2-hour limit) posts the others first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambda_src.app import audio, connections, fanout, speaker
from lambda_src.contract import function_settings
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.contract.routes import (
    ACTION,
    AUDIO_CHUNK,
    CHANGE_LANGUAGE,
    CREATE_SESSION,
    DEFAULT,
    END_SESSION,
    GET_SESSION_STATUS,
    HEARTBEAT,
    JOIN_SESSION,
    LEAVE_SESSION,
    MUTE_BROADCAST,
    PAUSE_BROADCAST,
    PAUSE_PLAYBACK,
    RESUME_BROADCAST,
    RESUME_PLAYBACK,
    SEND_AUDIO,
    SET_OUTPUT,
    SET_VOLUME,
    SPEAKER_STATE_CHANGE,
    SWITCH_LANGUAGE,
    UNMUTE_BROADCAST,
    UPDATE_SESSION_CONFIG,
)
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import (
    Event,
    Response,
    caller,
    message_body,
    reply,
    request_context,
    websocket_handler,
)
from lambda_src.model.broadcast import BroadcastChange
from lambda_src.model.caller import Action, Caller, Reply, speaker_for
from lambda_src.protocol import messages, validation
from lambda_src.protocol.validation import CreateSessionRequest, JoinSessionRequest


def _parse_create(body: Mapping[str, Any], _caller: Caller) -> CreateSessionRequest:
    return validation.parse_create_session(body, function_settings.load().languages)


def _parse_join(body: Mapping[str, Any], _caller: Caller) -> JoinSessionRequest:
    return validation.parse_join_session(body, function_settings.load().languages)


def _parse_language(body: Mapping[str, Any], _caller: Caller) -> str:
    return validation.parse_change_language(body, function_settings.load().languages)


def _parse_output(body: Mapping[str, Any], _caller: Caller) -> str:
    return validation.parse_set_output(body)


def _no_fields(body: Mapping[str, Any], _caller: Caller) -> None:
    validation.parse_no_fields(body)


def _nothing(_body: Mapping[str, Any], _caller: Caller) -> None:
    return None


def _heartbeat(_request: None, caller: Caller) -> Reply:
    return connections.heartbeat(caller, lambda notice: fanout.post_quietly(caller.connection_id, notice))


# Speaker actions on an existing session (``speaker.of_the_speaker``) name their session or act on
# the connection's own, and are refused unless this connection is that session's speaker.
def _broadcast_switch(change: BroadcastChange, notice: str) -> Action:
    """A broadcast action that sets ``change`` and, when it changed something, tells listeners ``notice``."""
    return Action(
        speaker.broadcast_action(speaker.setting(change), speaker.event_notice(notice)),
        speaker.change_broadcast,
    )


ACTIONS: dict[str, Action[Any]] = {
    CREATE_SESSION: Action(
        _parse_create,
        lambda request, caller: connections.create_session(request, caller, on_connect=False),
        speaker=speaker_for("creating a session"),
    ),
    JOIN_SESSION: Action(
        _parse_join, lambda request, caller: connections.join_session(request, caller, on_connect=False)
    ),
    HEARTBEAT: Action(_nothing, _heartbeat),
    LEAVE_SESSION: Action(_nothing, lambda _request, caller: connections.leave_session(caller)),
    UPDATE_SESSION_CONFIG: Action(speaker.of_the_speaker(validation.parse_config_update), speaker.update_config),
    GET_SESSION_STATUS: Action(speaker.of_the_speaker(validation.check_field_sizes), speaker.session_status),
    END_SESSION: Action(speaker.of_the_speaker(validation.check_field_sizes), speaker.end_session),
    # The broadcast state: the speaker's, like the actions above; listeners are told only of a change.
    PAUSE_BROADCAST: _broadcast_switch(BroadcastChange(is_paused=True), "broadcastPaused"),
    RESUME_BROADCAST: _broadcast_switch(BroadcastChange(is_paused=False), "broadcastResumed"),
    MUTE_BROADCAST: _broadcast_switch(BroadcastChange(is_muted=True), "broadcastMuted"),
    UNMUTE_BROADCAST: _broadcast_switch(BroadcastChange(is_muted=False), "broadcastUnmuted"),
    SET_VOLUME: Action(
        speaker.broadcast_action(validation.parse_set_volume, messages.volume_changed),
        speaker.change_broadcast,
    ),
    SPEAKER_STATE_CHANGE: Action(
        speaker.broadcast_action(validation.parse_speaker_state_change, messages.speaker_state_changed),
        speaker.change_broadcast,
    ),
    # The speaker's audio into the session's buffer (refused unless this connection is the session's speaker;
    # dropped while the broadcast is paused, muted or at volume 0).
    SEND_AUDIO: Action(audio.parse, audio.send_audio),
    # The original speaker app's chunk (unnumbered, its format spelt out): the same request, the same reply.
    AUDIO_CHUNK: Action(audio.parse, audio.send_audio),
    # A listener's own controls, on its row: its target language, its playback and what it receives.
    CHANGE_LANGUAGE: Action(_parse_language, connections.change_language),
    SWITCH_LANGUAGE: Action(_parse_language, connections.change_language),
    PAUSE_PLAYBACK: Action(_no_fields, connections.playback("playbackPaused", paused=True)),
    RESUME_PLAYBACK: Action(_no_fields, connections.playback("playbackResumed", paused=False)),
    SET_OUTPUT: Action(_parse_output, connections.set_output),
}


@websocket_handler
def handler(event: Event) -> Response:
    body = message_body(event)
    action = body.get(ACTION)
    route_key = request_context(event).get("routeKey")
    if route_key != DEFAULT and route_key in ACTIONS:
        action = route_key
    if not isinstance(action, str) or action not in ACTIONS:
        raise ServiceError(
            ErrorCode.UNKNOWN_ACTION,
            f"action must be one of {', '.join(ACTIONS)}, got {validation.shown(action)}",
            field=ACTION,
        )
    return reply(ACTIONS[action](body, caller(event, messages.now_ms())))


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
