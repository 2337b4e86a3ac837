"""Delivers a connection's first message (``sessionCreated`` / ``sessionJoined``) after its handshake, then the
messages that follow it in order (``welcomeThen``: a refreshed or resumed speaker's ``stateRestored``).

Triggered by the Connections table's stream: a row inserted by ``$connect`` with a ``welcome`` attribute.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lambda_src import connections_api
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import entry_point, logger
from lambda_src.repositories.connections import WELCOME_ATTRIBUTE, WELCOME_THEN_ATTRIBUTE
from lambda_src.schema import CONNECTIONS_PARTITION_KEY

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# A handshake completes within milliseconds of $connect returning; these cover a slow one (~3 s in all).
HANDSHAKE_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.5)
_PARALLEL_POSTS = 16


def pending_welcomes(event: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """(connection id, messages: the first, then those that follow it) for each newly inserted row that carries
    a first message."""
    pending = []
    for record in event.get("Records", []):
        image = record.get("dynamodb", {}).get("NewImage", {})
        if record.get("eventName") != "INSERT" or WELCOME_ATTRIBUTE not in image:
            continue
        then = tuple(value["S"] for value in image.get(WELCOME_THEN_ATTRIBUTE, {}).get("L", []))
        pending.append((image[CONNECTIONS_PARTITION_KEY]["S"], (image[WELCOME_ATTRIBUTE]["S"], *then)))
    return pending


def _deliver(connection_id: str, messages: tuple[str, ...]) -> None:
    """The first message once the handshake has completed, then the others in order (the connection is open)."""
    first, *then = messages
    try:
        if not connections_api.post_after_handshake(connection_id, first, HANDSHAKE_RETRY_DELAYS):
            logger.info("connection gone before its first message", extra={"connection_id": connection_id})
            return
        for message in then:
            if not connections_api.post(connection_id, message):
                logger.info("connection gone before its next message", extra={"connection_id": connection_id})
                return
    except Exception:
        logger.exception("first messages not delivered", extra={"connection_id": connection_id})


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, int]:
    pending = pending_welcomes(event)
    if len(pending) == 1:
        _deliver(*pending[0])
    elif pending:
        with ThreadPoolExecutor(max_workers=min(_PARALLEL_POSTS, len(pending))) as pool:
            list(pool.map(lambda item: _deliver(*item), pending))
    return {"delivered": len(pending)}


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
