"""Every limit and default of the service, in one place.

The CDK configuration imports the per-environment defaults from here, and the Lambda code reads the
deployed values from its environment, falling back to these. Nothing else spells these numbers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

# Partial-result configuration (per session).
DEFAULT_PARTIAL_RESULTS_ENABLED: Final = True
DEFAULT_MIN_STABILITY: Final = Decimal("0.85")
MIN_STABILITY_LOWER: Final = Decimal("0.70")
MIN_STABILITY_UPPER: Final = Decimal("0.95")
DEFAULT_MAX_BUFFER_TIMEOUT: Final = Decimal("5.0")
MAX_BUFFER_TIMEOUT_LOWER: Final = Decimal("2.0")
MAX_BUFFER_TIMEOUT_UPPER: Final = Decimal("10.0")

# Sessions (per environment; the stack passes the deployed values as environment variables).
DEFAULT_SESSION_LIFETIME_HOURS: Final = 3
DEFAULT_MAX_LISTENERS_PER_SESSION: Final = 500

# Input sizes, refused before any parsing work.
MAX_FIELD_LENGTH: Final = 256
# A speaker token (a Cognito JWT is ~1 KB) is the one longer value; its own bound, checked before parsing.
TOKEN_FIELD: Final = "token"
MAX_TOKEN_LENGTH: Final = 4096
MAX_FRAME_BYTES: Final = 128 * 1024

# Session ids: conditional writes retried on collision, bounded well inside the function timeout.
SESSION_ID_ATTEMPTS: Final = 5

QUALITY_TIERS: Final = ("standard", "premium")
DEFAULT_QUALITY_TIER: Final = "standard"
