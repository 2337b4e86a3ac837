"""The per-session partial-result settings (their fields: ``lambda_src.contract.partial_result_fields``): the
configuration they make up, a mid-session update of some of them, and their storage and message forms.

Validation reads a request through the fields' table; the Sessions repository stores :meth:`PartialResultConfig.to_item`
and reads :func:`from_item`; server messages carry :meth:`PartialResultConfig.to_message`; downstream
processors (transcription, translation) get a :class:`PartialResultConfig` from ``downstream.py``. Items
written before these fields existed, or with a field of the wrong type, read back with the defaults.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from lambda_src.contract.partial_result_fields import ENABLED, FIELDS, STABILITY, TIMEOUT, Field

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartialResultConfig:
    """What downstream transcription reads to decide when a partial result is stable enough to emit."""

    partial_results_enabled: bool = ENABLED.default
    min_stability_threshold: Decimal = STABILITY.default
    max_buffer_timeout: Decimal = TIMEOUT.default

    def to_item(self) -> dict[str, Any]:
        """DynamoDB attributes (numbers as ``Decimal``, so they are stored without float noise)."""
        return {field.stored: getattr(self, field.attribute) for field in FIELDS}

    def to_message(self) -> dict[str, Any]:
        """The fields as they appear in server messages (JSON numbers: ``0.85``, ``5.0``)."""
        return {field.stored: _message_value(getattr(self, field.attribute)) for field in FIELDS}

    def updated(self, update: PartialResultUpdate) -> PartialResultConfig:
        """This configuration with the settings ``update`` asks for."""
        return dataclasses.replace(self, **{field.attribute: value for field, value in update.changes().items()})


@dataclass(frozen=True)
class PartialResultUpdate:
    """Some of the settings, as a request asks for them (None: left as it is)."""

    partial_results_enabled: bool | None = None
    min_stability_threshold: Decimal | None = None
    max_buffer_timeout: Decimal | None = None

    def changes(self) -> dict[Field[Any], Any]:
        """The settings asked for, by field."""
        values = {field: getattr(self, field.attribute) for field in FIELDS}
        return {field: value for field, value in values.items() if value is not None}

    def to_item(self) -> dict[str, Any]:
        """The settings asked for, as Sessions item attributes."""
        return {field.stored: value for field, value in self.changes().items()}


def _message_value(value: bool | Decimal) -> bool | float:
    return float(value) if isinstance(value, Decimal) else value


def from_item(item: Mapping[str, Any]) -> PartialResultConfig:
    """Read the configuration of a (deserialized) Sessions item, defaulting what is absent or corrupt."""
    return PartialResultConfig(**{field.attribute: _stored(item, field) for field in FIELDS})


def _stored(item: Mapping[str, Any], field: Field[Any]) -> Any:
    if field.stored not in item:
        return field.default
    raw = item[field.stored]
    if field.kind is bool:
        if isinstance(raw, bool):
            return raw
        _log.warning("session item has a non-boolean %s; using the default", field.stored)
        return field.default
    try:
        # Only a DynamoDB number is a number: a string attribute holding digits is a corrupt item.
        value = Decimal(raw) if isinstance(raw, (Decimal, int)) and not isinstance(raw, bool) else None
    except InvalidOperation:
        value = None
    lower, upper = field.bounds
    if value is None or not value.is_finite() or not lower <= value <= upper:
        _log.warning("session item has an invalid %s; using the default", field.stored)
        return field.default
    return value
