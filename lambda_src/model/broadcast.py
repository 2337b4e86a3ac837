"""The per-session broadcast state the speaker sets (paused, muted, volume): its fields (stored, message and
``speakerStateChange`` names are the same), the state, a change of some of it, and their storage and message forms.

The Sessions repository stores :meth:`BroadcastState.to_item` and reads :func:`from_item`; server messages carry
:meth:`BroadcastState.to_message`; the audio path reads a :class:`BroadcastState` from ``downstream.py`` and
forwards audio only while :attr:`BroadcastState.forwards_audio`. Items written before the state existed, or with
a field of the wrong type, read back as a new session's state (not paused, not muted, full volume).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from lambda_src.contract import limits

_log = logging.getLogger(__name__)

# The fields' names: on the Sessions item, in server messages and in ``speakerStateChange``'s ``state`` object.
IS_PAUSED: Final = "isPaused"
IS_MUTED: Final = "isMuted"
VOLUME: Final = "volume"
NAMES: Final = (IS_PAUSED, IS_MUTED, VOLUME)
# Which attribute of :class:`BroadcastState` each name is.
_ATTRIBUTES: Final = {IS_PAUSED: "is_paused", IS_MUTED: "is_muted", VOLUME: "volume"}


@dataclass(frozen=True)
class BroadcastState:
    """What the speaker has set: paused, muted and the volume level (0.0-1.0; 0.0 is as silent as muted)."""

    is_paused: bool = False
    is_muted: bool = False
    volume: Decimal = limits.DEFAULT_VOLUME

    @property
    def forwards_audio(self) -> bool:
        """Whether the audio path passes the speaker's audio on: not paused, not muted, and a volume above 0."""
        return not self.is_paused and not self.is_muted and self.volume > 0

    def to_item(self) -> dict[str, Any]:
        """Sessions item attributes (the volume as an exact ``Decimal``)."""
        return {name: getattr(self, attribute) for name, attribute in _ATTRIBUTES.items()}

    def to_message(self) -> dict[str, Any]:
        """The fields as server messages carry them (the volume as a JSON number)."""
        return {IS_PAUSED: self.is_paused, IS_MUTED: self.is_muted, VOLUME: float(self.volume)}

    def updated(self, change: BroadcastChange) -> BroadcastState:
        """This state with what ``change`` sets."""
        return dataclasses.replace(self, **{_ATTRIBUTES[name]: value for name, value in change.to_item().items()})


@dataclass(frozen=True)
class BroadcastChange:
    """Some of the state, as an action sets it (None: left as it is)."""

    is_paused: bool | None = None
    is_muted: bool | None = None
    volume: Decimal | None = None

    def to_item(self) -> dict[str, Any]:
        """What is set, as Sessions item attributes."""
        values = {name: getattr(self, attribute) for name, attribute in _ATTRIBUTES.items()}
        return {name: value for name, value in values.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> BroadcastState:
    """The state of a (deserialized) Sessions item; what is absent or corrupt reads as a new session's."""
    default = BroadcastState()
    values: dict[str, Any] = {}
    for name, attribute in _ATTRIBUTES.items():
        if name not in item:
            continue
        raw = item[name]
        if name == VOLUME:
            number = Decimal(raw) if isinstance(raw, (Decimal, int)) and not isinstance(raw, bool) else None
            valid = number is not None and number.is_finite() and limits.VOLUME_LOWER <= number <= limits.VOLUME_UPPER
            value: Any = number if valid else None
        else:
            value = raw if isinstance(raw, bool) else None
        if value is None:
            _log.warning("session item has an invalid %s; reading it as %s", name, getattr(default, attribute))
            continue
        values[attribute] = value
    return dataclasses.replace(default, **values)
