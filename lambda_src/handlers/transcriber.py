"""The transcription consumer of one session (``lambda_src.app.transcription.consumer``), invoked asynchronously
with ``{"sessionId": ...}`` by the message function when audio arrives and no consumer holds the session's
lease, or with ``handedOverBy`` by a predecessor handing over before its timeout."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from lambda_src.adapters.transcription import recognizers, starter
from lambda_src.app.transcription import consumer, delivery
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import entry_point
from lambda_src.platform.log import SESSION_ID_KEY, logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

_NO_DEADLINE_SECONDS = 15 * 60.0  # no context (a direct call): Lambda's longest invocation


@entry_point(route="transcriber")
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, str]:
    session_id = event.get(starter.SESSION_ID) if isinstance(event, dict) else None
    if not isinstance(session_id, str) or not session_id:
        logger.error("transcriber invoked without a session id", extra={"event_keys": sorted(event or {})})
        return {"stopped": "invalidEvent"}
    handed_over_by = event.get(starter.HANDED_OVER_BY)

    own_name = context.function_name if context is not None else os.environ.get("AWS_LAMBDA_FUNCTION_NAME")

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 if context is not None else _NO_DEADLINE_SECONDS

    with logger.append_context_keys(**{SESSION_ID_KEY: session_id}), delivery.SegmentDelivery() as deliver:
        stopped = consumer.Consumer(
            session_id,
            open_recognizer=recognizers.open_for,
            deliver=deliver,
            start_successor=lambda sid, by: starter.start(sid, by, function=own_name),
            time_left=time_left,
            settle=deliver.settle,
        ).run(handed_over_by if isinstance(handed_over_by, str) else None)
    return {"stopped": stopped}


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
