"""The process's one botocore session, which its clients share (loaded models, endpoints, credentials).

The functions use botocore directly, not boto3: they need only low-level clients, and importing boto3 would
load its resource layer and s3transfer on every cold start (``make bench``, section 3).
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from botocore.session import Session, get_session

# Clients are thread-safe; a session creating them is not, and a fan-out's threads may all want their first
# client at once (the first post of a cold instance).
_CREATING = threading.Lock()


@cache
def _session() -> Session:
    return get_session()


def create_client(service_name: str, **options: Any) -> Any:
    """A new low-level client from the shared session (callers keep the one they create)."""
    with _CREATING:
        return _session().create_client(service_name, **options)


def credentials() -> Any:
    """The process's credentials (what its clients sign with), for signing that no client does (a presigned URL)."""
    return _session().get_credentials()


class LazyClient:
    """A client of ``service_name`` created from the shared session on first use, once however many threads ask,
    or the ``client`` given (tests pass a stubbed one)."""

    def __init__(self, service_name: str, client: Any | None = None, **options: Any) -> None:
        self._service_name = service_name
        self._options = options
        self._client = client
        self._creating = threading.Lock()

    def get(self) -> Any:
        if self._client is None:
            with self._creating:
                if self._client is None:
                    self._client = create_client(self._service_name, **self._options)
        return self._client
