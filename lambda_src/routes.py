"""Route keys of the WebSocket API. The stack creates one route per key; handlers dispatch on them."""

from __future__ import annotations

from typing import Final

ROUTE_SELECTION_EXPRESSION: Final = "$request.body.action"
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
)
CONNECT_ACTIONS: Final = (CREATE_SESSION, JOIN_SESSION, REFRESH_CONNECTION, RESUME_SESSION)
