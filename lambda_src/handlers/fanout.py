"""The fan-out per shard (``lambda_src.app.shard_fanout``, decision record 0040): invoked asynchronously by the
transcription consumer of a big session, once per group of its seat shards and segment, with the segment's messages
by language; posts them to the group's listeners."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lambda_src.app import shard_fanout
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import entry_point
from lambda_src.platform.log import SESSION_ID_KEY, logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@entry_point(route="fanout")
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    session_id = event.get(shard_fanout.SESSION_ID) if isinstance(event, dict) else None
    with logger.append_context_keys(**({SESSION_ID_KEY: session_id} if isinstance(session_id, str) else {})):
        try:
            report = shard_fanout.deliver(event)
        except shard_fanout.InvalidEvent as invalid:
            # Not retried either way (no retries are configured); an event no invocation can use is logged, once.
            logger.error(str(invalid), extra={"event_keys": sorted(event) if isinstance(event, dict) else []})
            return {"stopped": "invalidEvent"}
    return report.as_result()


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
