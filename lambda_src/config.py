"""The per-session partial-result configuration: its type, its storage form and its wire form.

Downstream processors (transcription, translation) call :func:`from_item` on a Sessions item; items
written before these fields existed, or with a field of the wrong type, read back with the defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from lambda_src import limits

ENABLED_ATTRIBUTE = "partialResultsEnabled"
STABILITY_ATTRIBUTE = "minStabilityThreshold"
TIMEOUT_ATTRIBUTE = "maxBufferTimeout"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartialResultConfig:
    """What downstream transcription reads to decide when a partial result is stable enough to emit."""

    partial_results_enabled: bool = limits.DEFAULT_PARTIAL_RESULTS_ENABLED
    min_stability_threshold: Decimal = limits.DEFAULT_MIN_STABILITY
    max_buffer_timeout: Decimal = limits.DEFAULT_MAX_BUFFER_TIMEOUT

    def to_item(self) -> dict[str, Any]:
        """DynamoDB attributes (numbers as ``Decimal``, so they are stored without float noise)."""
        return {
            ENABLED_ATTRIBUTE: self.partial_results_enabled,
            STABILITY_ATTRIBUTE: self.min_stability_threshold,
            TIMEOUT_ATTRIBUTE: self.max_buffer_timeout,
        }

    def to_message(self) -> dict[str, Any]:
        """The fields as they appear in server messages (JSON numbers: ``0.85``, ``5.0``)."""
        return {
            ENABLED_ATTRIBUTE: self.partial_results_enabled,
            STABILITY_ATTRIBUTE: float(self.min_stability_threshold),
            TIMEOUT_ATTRIBUTE: float(self.max_buffer_timeout),
        }


def from_item(item: Mapping[str, Any]) -> PartialResultConfig:
    """Read the configuration of a (deserialized) Sessions item, defaulting what is absent or corrupt."""
    defaults = PartialResultConfig()
    enabled = item.get(ENABLED_ATTRIBUTE, defaults.partial_results_enabled)
    if not isinstance(enabled, bool):
        _log.warning("session item has a non-boolean %s; using the default", ENABLED_ATTRIBUTE)
        enabled = defaults.partial_results_enabled
    return PartialResultConfig(
        partial_results_enabled=enabled,
        min_stability_threshold=_stored_number(
            item,
            STABILITY_ATTRIBUTE,
            defaults.min_stability_threshold,
            limits.MIN_STABILITY_LOWER,
            limits.MIN_STABILITY_UPPER,
        ),
        max_buffer_timeout=_stored_number(
            item,
            TIMEOUT_ATTRIBUTE,
            defaults.max_buffer_timeout,
            limits.MAX_BUFFER_TIMEOUT_LOWER,
            limits.MAX_BUFFER_TIMEOUT_UPPER,
        ),
    )


def _stored_number(item: Mapping[str, Any], name: str, default: Decimal, lower: Decimal, upper: Decimal) -> Decimal:
    if name not in item:
        return default
    raw = item[name]
    try:
        # Only a DynamoDB number is a number: a string attribute holding digits is a corrupt item.
        value = Decimal(raw) if isinstance(raw, (Decimal, int)) and not isinstance(raw, bool) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or not lower <= value <= upper:
        _log.warning("session item has an invalid %s; using the default", name)
        return default
    return value
