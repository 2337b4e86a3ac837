"""The process's one botocore session, which its clients share (loaded models, endpoints, credentials).

The functions use botocore directly, not boto3: they need only low-level clients, and importing boto3 would
load its resource layer and s3transfer on every cold start (``make bench``, section 3).
"""

from __future__ import annotations

from functools import cache

from botocore.session import Session, get_session


@cache
def session() -> Session:
    return get_session()
