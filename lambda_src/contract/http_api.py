"""The HTTP session API (decision record 0037): its routes, and the names of the ``SessionMetadata`` body it answers
with. The stack declares one route per entry of ``ROUTES``; the handler dispatches on their keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lambda_src.contract import partial_result_fields, wire


@dataclass(frozen=True)
class HttpRoute:
    """One route: its method and path (``{name}`` a path parameter), and whether API Gateway's JWT authorizer
    guards it (a request without a valid speaker token is answered 401 before any function runs)."""

    method: str
    path: str
    authorized: bool = True

    @property
    def key(self) -> str:
        """API Gateway's route key (``routeKey`` of the event), e.g. ``POST /sessions``."""
        return f"{self.method} {self.path}"


# The path parameter naming the session.
SESSION_ID_PARAMETER: Final = "sessionId"

CREATE_SESSION: Final = HttpRoute("POST", "/sessions")
GET_SESSION: Final = HttpRoute("GET", f"/sessions/{{{SESSION_ID_PARAMETER}}}")
UPDATE_SESSION: Final = HttpRoute("PATCH", f"/sessions/{{{SESSION_ID_PARAMETER}}}")
DELETE_SESSION: Final = HttpRoute("DELETE", f"/sessions/{{{SESSION_ID_PARAMETER}}}")
# The session's transcript (decision record 0036), the owner's: ``?language=es&format=vtt`` (``wire.TRANSCRIPT_*``).
GET_TRANSCRIPT: Final = HttpRoute("GET", f"/sessions/{{{SESSION_ID_PARAMETER}}}/transcript")
DELETE_TRANSCRIPT: Final = HttpRoute("DELETE", f"/sessions/{{{SESSION_ID_PARAMETER}}}/transcript")
HEALTH: Final = HttpRoute("GET", "/health", authorized=False)

ROUTES: Final = (
    CREATE_SESSION,
    GET_SESSION,
    UPDATE_SESSION,
    DELETE_SESSION,
    GET_TRANSCRIPT,
    DELETE_TRANSCRIPT,
    HEALTH,
)
ROUTE_KEYS: Final = tuple(route.key for route in ROUTES)
# What a browser may ask for cross-origin (the CORS preflight's allowed methods and headers).
METHODS: Final = tuple(sorted({route.method for route in ROUTES}))
REQUEST_HEADERS: Final = ("authorization", "content-type")
# What a page of an admitted origin may read of an answer beyond the CORS-safelisted headers: a transcript's file
# name (``Content-Disposition``), so a page saves it under the name the API gives it.
EXPOSED_HEADERS: Final = ("content-disposition",)

# What the bodies may hold (anything else is refused, naming the field): ``POST /sessions`` as ``createSession``
# takes it, ``PATCH /sessions/{sessionId}`` the partial-result settings as ``updateSessionConfig`` takes them.
CREATE_FIELDS: Final = (wire.SOURCE_LANGUAGE, wire.QUALITY_TIER, *partial_result_fields.REQUEST_NAMES)
UPDATE_FIELDS: Final = partial_result_fields.REQUEST_NAMES

# ``SessionMetadata``: the session as the HTTP API shows it (with the partial-result settings, named as in
# ``lambda_src.contract.partial_result_fields``; ``sessionId``, ``sourceLanguage``, ``qualityTier`` and
# ``listenerCount`` as in ``lambda_src.contract.wire``).
SPEAKER_ID: Final = "speakerId"
STATUS: Final = "status"
CREATED_AT: Final = "createdAt"
UPDATED_AT: Final = "updatedAt"
# ``status``: derived, never stored (ended: no longer active; paused: the speaker paused its broadcast).
STATUS_ACTIVE: Final = "active"
STATUS_PAUSED: Final = "paused"
STATUS_ENDED: Final = "ended"
STATUSES: Final = (STATUS_ACTIVE, STATUS_PAUSED, STATUS_ENDED)
# The answer of ``GET /health``.
HEALTH_BODY: Final = {"status": "ok"}
