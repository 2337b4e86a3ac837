"""Scheduled: ends sessions whose dropped speaker did not resume in time (``speakerTimeout``) or whose
lifetime is over (``expired``), telling their listeners, without any client acting; finishes dismissing
ended sessions' listeners; and counts out listeners whose ``$disconnect`` was lost."""

from __future__ import annotations

from typing import Any

from lambda_src import messages, metrics, session_control
from lambda_src.handlers import finish_loading
from lambda_src.repositories import dynamodb
from lambda_src.log import REQUEST_ID_KEY, clear_correlation_keys, logger


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    logger.append_keys(**{REQUEST_ID_KEY: getattr(context, "aws_request_id", None)})
    dynamodb.start_invocation(context)
    try:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        time_left = (lambda: remaining() / 1000) if callable(remaining) else None
        ended = session_control.sweep(messages.now_ms(), time_left)
        if ended:
            logger.info("sessions swept", extra={"ended": len(ended)})
        return {"ended": len(ended)}
    finally:
        metrics.flush()
        clear_correlation_keys()


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
