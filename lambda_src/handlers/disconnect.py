"""``$disconnect``: a listener's departure is counted exactly once; the session's speaker dropping opens
its resume window; nothing here ever resurrects a session."""

from __future__ import annotations

from lambda_src.app import connections
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import Event, Response, connection_id, websocket_handler
from lambda_src.protocol import messages


@websocket_handler
def handler(event: Event) -> Response:
    connections.disconnect(connection_id(event), messages.now_ms())
    return {"statusCode": 200}


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
