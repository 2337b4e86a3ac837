"""Delivers a connection's first message after its handshake (``lambda_src.app.welcome``).

Triggered by the Connections table's stream: a row inserted by ``$connect`` with a ``welcome`` attribute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lambda_src.adapters.repositories.connections import stream_changes
from lambda_src.app import welcome
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import entry_point

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, int]:
    return {"delivered": welcome.deliver(stream_changes(event))}


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
