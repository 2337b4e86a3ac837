"""Scheduled: ends sessions whose dropped speaker did not resume in time (``speakerTimeout``) or whose
lifetime is over (``expired``), telling their listeners, without any client acting; finishes dismissing
ended sessions' listeners; and counts out listeners whose ``$disconnect`` was lost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lambda_src.app import sweeper
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import entry_point
from lambda_src.platform.log import logger
from lambda_src.protocol import messages

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, int]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    time_left = (lambda: remaining() / 1000) if callable(remaining) else None
    ended = sweeper.sweep(messages.now_ms(), time_left)
    if ended:
        logger.info("sessions swept", extra={"ended": len(ended)})
    return {"ended": len(ended)}


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
