"""The per-session partial-result settings, one table of their fields: request name (query string and messages),
stored and message name, type, bounds and default. Clients, the console, validation and the model read them here;
the configuration they make up is ``lambda_src.model.partial_results``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from lambda_src.contract import limits

_Value = TypeVar("_Value", bool, Decimal)


@dataclass(frozen=True)
class Field(Generic[_Value]):
    """One setting: its attribute on :class:`PartialResultConfig` (what the transcription processor reads),
    its request name (query string and messages), its name on the Sessions item and in server messages,
    its type, default and (numbers) inclusive bounds with their unit as an error message says it."""

    attribute: str
    request: str
    stored: str
    kind: type[_Value]
    default: _Value
    lower: Decimal | None = None
    upper: Decimal | None = None
    unit: str = ""

    @property
    def bounds(self) -> tuple[Decimal, Decimal]:
        """The inclusive bounds of a number setting."""
        if self.lower is None or self.upper is None:
            raise TypeError(f"{self.request} is not a bounded number")
        return self.lower, self.upper


ENABLED = Field(
    "partial_results_enabled", "partialResults", "partialResultsEnabled", bool, limits.DEFAULT_PARTIAL_RESULTS_ENABLED
)
STABILITY = Field(
    "min_stability_threshold",
    "minStability",
    "minStabilityThreshold",
    Decimal,
    limits.DEFAULT_MIN_STABILITY,
    limits.MIN_STABILITY_LOWER,
    limits.MIN_STABILITY_UPPER,
)
TIMEOUT = Field(
    "max_buffer_timeout",
    "maxBufferTimeout",
    "maxBufferTimeout",
    Decimal,
    limits.DEFAULT_MAX_BUFFER_TIMEOUT,
    limits.MAX_BUFFER_TIMEOUT_LOWER,
    limits.MAX_BUFFER_TIMEOUT_UPPER,
    " seconds",
)
FIELDS: tuple[Field[Any], ...] = (ENABLED, STABILITY, TIMEOUT)
REQUEST_NAMES = tuple(field.request for field in FIELDS)
