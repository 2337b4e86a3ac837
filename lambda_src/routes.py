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

# Message routes served by the message function; each gets its own route and integration.
MESSAGE_ROUTES: Final = (CREATE_SESSION, JOIN_SESSION, HEARTBEAT)
