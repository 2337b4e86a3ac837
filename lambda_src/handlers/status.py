"""Pushes ``sessionStatus`` to a session's speaker when its audience changes notably.

Triggered by the Connections table's stream (new and old images), filtered to listener rows, with a batching
window: each batch carries a window's listener arrivals, departures and language changes, and each session
gets at most one push per batch (``lambda_src.app.speaker_status``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lambda_src.adapters.repositories.connections import stream_changes
from lambda_src.app import speaker_status
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import entry_point
from lambda_src.protocol import messages

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, int]:
    pushed = speaker_status.push_changes(stream_changes(event), messages.now_ms())
    return {"pushed": len(pushed)}


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
