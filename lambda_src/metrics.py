"""The service's business metrics: one namespace, their names and dimensions, in one place.

The functions emit them through Powertools' EMF (a structured log line, no synchronous PutMetricData); the
stack's alarms are built from these same constants, so an alarm can only watch a metric the code emits.
Every metric carries the default dimensions ``service`` and ``environment``; those with an extra dimension
name it here. Values of the extra dimensions are few (error codes, end reasons), never ids.
"""

from __future__ import annotations

from typing import Final

NAMESPACE: Final = "SessionService"
# Default dimensions on every metric: Powertools' service name, and the deployed environment.
SERVICE_DIMENSION: Final = "service"
ENVIRONMENT_DIMENSION: Final = "environment"

SESSIONS_CREATED: Final = "SessionsCreated"
LISTENERS_JOINED: Final = "ListenersJoined"
LISTENERS_LEFT: Final = "ListenersLeft"
SESSIONS_ENDED: Final = "SessionsEnded"  # extra dimension: REASON_DIMENSION
REJECTIONS: Final = "Rejections"  # extra dimension: ERROR_CODE_DIMENSION

REASON_DIMENSION: Final = "reason"
ERROR_CODE_DIMENSION: Final = "errorCode"

# metric name -> its extra dimension (None: only the default dimensions)
EXTRA_DIMENSION: Final = {
    SESSIONS_CREATED: None,
    LISTENERS_JOINED: None,
    LISTENERS_LEFT: None,
    SESSIONS_ENDED: REASON_DIMENSION,
    REJECTIONS: ERROR_CODE_DIMENSION,
}
