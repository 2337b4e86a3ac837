"""``$disconnect``: forget the connection; a listener leaving is counted exactly once."""

from __future__ import annotations

from lambda_src import service
from lambda_src.handlers.common import Event, Response, connection_id, websocket_handler


@websocket_handler
def handler(event: Event) -> Response:
    service.disconnect(connection_id(event))
    return {"statusCode": 200}
