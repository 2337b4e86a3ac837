"""Route keys of the WebSocket API. The stack creates one route per key; handlers dispatch on them."""

from __future__ import annotations

from typing import Final

ROUTE_SELECTION_EXPRESSION: Final = "$request.body.action"
# The frame's field the expression selects on; an ``error`` answering a message names its route in it too.
ACTION: Final = ROUTE_SELECTION_EXPRESSION.rsplit(".", 1)[-1]
CONNECT: Final = "$connect"
DISCONNECT: Final = "$disconnect"
DEFAULT: Final = "$default"

CREATE_SESSION: Final = "createSession"
JOIN_SESSION: Final = "joinSession"
HEARTBEAT: Final = "heartbeat"
LEAVE_SESSION: Final = "leaveSession"
UPDATE_SESSION_CONFIG: Final = "updateSessionConfig"
GET_SESSION_STATUS: Final = "getSessionStatus"
END_SESSION: Final = "endSession"
# The speaker's broadcast state, and each listener's own controls (``switchLanguage``: the listener app's name
# for ``changeLanguage``).
PAUSE_BROADCAST: Final = "pauseBroadcast"
RESUME_BROADCAST: Final = "resumeBroadcast"
MUTE_BROADCAST: Final = "muteBroadcast"
UNMUTE_BROADCAST: Final = "unmuteBroadcast"
SET_VOLUME: Final = "setVolume"
SPEAKER_STATE_CHANGE: Final = "speakerStateChange"
# The speaker's audio, chunk by chunk, into the session's audio buffer.
SEND_AUDIO: Final = "sendAudio"
# The original speaker app's name for it: the same chunk, unnumbered, with its audio format spelt out.
AUDIO_CHUNK: Final = "audioChunk"
CHANGE_LANGUAGE: Final = "changeLanguage"
SWITCH_LANGUAGE: Final = "switchLanguage"
PAUSE_PLAYBACK: Final = "pausePlayback"
RESUME_PLAYBACK: Final = "resumePlayback"
# A listener's choice of what it receives: captions, the translation spoken, or both.
SET_OUTPUT: Final = "setOutput"
# Actions only a new connection can take (query string on $connect).
REFRESH_CONNECTION: Final = "refreshConnection"
RESUME_SESSION: Final = "resumeSession"

# Message routes served by the message function; each gets its own route and integration.
MESSAGE_ROUTES: Final = (
    CREATE_SESSION,
    JOIN_SESSION,
    HEARTBEAT,
    LEAVE_SESSION,
    UPDATE_SESSION_CONFIG,
    GET_SESSION_STATUS,
    END_SESSION,
    PAUSE_BROADCAST,
    RESUME_BROADCAST,
    MUTE_BROADCAST,
    UNMUTE_BROADCAST,
    SET_VOLUME,
    SPEAKER_STATE_CHANGE,
    SEND_AUDIO,
    AUDIO_CHUNK,
    CHANGE_LANGUAGE,
    SWITCH_LANGUAGE,
    PAUSE_PLAYBACK,
    RESUME_PLAYBACK,
    SET_OUTPUT,
)
CONNECT_ACTIONS: Final = (CREATE_SESSION, JOIN_SESSION, REFRESH_CONNECTION, RESUME_SESSION)
