"""The audio store on Amazon S3 (decision record 0039): each spoken segment one object of the stack's audio bucket
(encrypted by the bucket's default, deleted by its lifecycle after a day), handed out as a presigned GET URL, which
a listener's browser fetches cross-origin (the bucket's CORS rules name the listener apps' origins).

The local run points the same client at its S3-API server (``AWS_ENDPOINT_URL_S3``, botocore's own variable), so
the URLs there are the server's on loopback.
"""

from __future__ import annotations

from typing import Any, Final

from botocore.config import Config

from lambda_src.contract import limits
from lambda_src.platform import aws

SERVICE: Final = "s3"

# SigV4 signs every request and URL (S3 refuses the older signature for KMS-encrypted objects); the live path waits
# at most 1 s to connect and 5 s for an answer, and retries once.
CLIENT_CONFIG = Config(
    signature_version="s3v4",
    retries={"mode": "standard", "total_max_attempts": 2},
    connect_timeout=1,
    read_timeout=5,
    max_pool_connections=limits.TRANSLATION_PARALLELISM,  # one upload per language spoken at once
)


class S3AudioStore:
    """``PutObject`` and presigned ``GetObject`` URLs on ``bucket``. ``client``: a botocore ``s3`` client to use
    (tests stub one); by default one is created on first use."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        if not bucket:
            raise ValueError("the audio store needs a bucket name")
        self.bucket = bucket
        self._client = aws.LazyClient(SERVICE, client, config=CLIENT_CONFIG)

    def client(self) -> Any:
        return self._client.get()

    def put(self, key: str, audio: bytes, content_type: str) -> None:
        """The object, with its content type (what the browser's player goes by); no encryption header: the
        bucket's default encryption applies."""
        self.client().put_object(Bucket=self.bucket, Key=key, Body=audio, ContentType=content_type)

    def url(self, key: str, expires_in_seconds: int) -> str:
        """A GET URL signed with this process's credentials: valid for ``expires_in_seconds`` or until those
        credentials expire, whichever comes first. Signing is local: no request is made."""
        url: str = self.client().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in_seconds
        )
        return url
