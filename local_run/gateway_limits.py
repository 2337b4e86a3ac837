"""API Gateway's WebSocket limits as the local gateway applies them (docs/local-run.md, "API Gateway's limits").

- A connection is closed with 1001 "Going away" once its client has sent no message for the idle timeout (10
  minutes), and once it is 2 hours old, whatever it does; ``$disconnect`` follows, as for any close. Both clocks run
  ``time_scale`` times faster in a scaled run (``make local GATEWAY_TIME_SCALE=60``: 10 s and 2 minutes), and the
  run tells the functions the same scale (``CONNECTION_TIME_SCALE``), so that they ask for the refresh and warn as
  many times sooner.
- A client's frame over 32 KB, or message over 128 KB (in frames of at most 32 KB), closes its connection with 1009;
  a ``@connections`` post over 128 KB is refused 413 ``PayloadTooLargeException``.
- With ``post_rate`` (``GATEWAY_POST_RATE``), every ``@connections`` request takes a token from one bucket for the
  whole run, refilled at that rate and holding a second's worth; a request that finds it empty is answered 429
  ``LimitExceededException``, as API Gateway answers requests over the account's rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from websockets.frames import CloseCode

from lambda_src.contract import function_settings, limits

IDLE_TIMEOUT_SECONDS: Final = limits.IDLE_TIMEOUT_MINUTES * 60
CONNECTION_LIFETIME_SECONDS: Final = limits.CONNECTION_LIMIT_MINUTES * 60
# What API Gateway sends when it closes a connection for its idle timeout or its lifetime.
GOING_AWAY: Final = (CloseCode.GOING_AWAY, "Going away")
# The client's messages and frames (websockets' ``max_size``: the message's limit, then each frame's).
MAX_SIZE: Final = (limits.MAX_FRAME_BYTES, limits.MAX_WEBSOCKET_FRAME_BYTES)
MAX_POST_BYTES: Final = limits.MAX_FRAME_BYTES
# The answers of a refused ``@connections`` request: status, ``x-amzn-ErrorType`` (the code botocore raises), body.
THROTTLED: Final = (429, "LimitExceededException", b'{"message":"Rate exceeded"}')
PAYLOAD_TOO_LARGE: Final = (413, "PayloadTooLargeException", b'{"message":"Payload too large"}')


@dataclass(frozen=True)
class GatewayLimits:
    """``time_scale``: how many times faster than API Gateway's the connections' clocks run (1: as deployed);
    ``post_rate``: ``@connections`` requests a second over the whole run (None: unlimited)."""

    time_scale: float = 1.0
    post_rate: float | None = None

    def __post_init__(self) -> None:
        function_settings.parse_time_scale(str(self.time_scale))  # positive and finite, or ValueError
        if self.post_rate is not None and not (self.post_rate > 0 and math.isfinite(self.post_rate)):
            raise ValueError(f"a post rate must be a positive number of requests a second, got {self.post_rate!r}")

    @property
    def idle_timeout_seconds(self) -> float:
        return IDLE_TIMEOUT_SECONDS / self.time_scale

    @property
    def lifetime_seconds(self) -> float:
        return CONNECTION_LIFETIME_SECONDS / self.time_scale

    def function_environment(self) -> dict[str, str]:
        """What the functions are told of the scale (nothing at 1: the code's default, as deployed)."""
        if self.time_scale == 1:
            return {}
        return {function_settings.ENV_CONNECTION_TIME_SCALE: repr(float(self.time_scale))}

    def notes(self) -> list[str]:
        """What ``make local`` says of the limits that differ from API Gateway's own (none at the defaults)."""
        notes = []
        if self.time_scale != 1:
            minute = 60 / self.time_scale
            notes.append(
                f"connections' clocks {self.time_scale:g}x faster (GATEWAY_TIME_SCALE): closed after "
                f"{self.idle_timeout_seconds:g} s without a client message and at {self.lifetime_seconds:g} s of age; "
                f"refresh asked for at {limits.REFRESH_REQUIRED_AT_MINUTES * minute:g} s, warnings from "
                f"{limits.CONNECTION_WARNING_FROM_MINUTES * minute:g} s; a client should heartbeat every "
                f"{minute:g} s (the console's pages heartbeat every 60 s)"
            )
        if self.post_rate is not None:
            notes.append(
                f"@connections limited to {self.post_rate:g} requests a second (GATEWAY_POST_RATE): "
                "429 LimitExceededException beyond it"
            )
        return notes


class TokenBucket:
    """``rate`` tokens a second, holding at most a second's worth (at least one); :meth:`take` says whether a request
    may go, and takes its token if so. A refused request takes none."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
