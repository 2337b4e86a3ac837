"""The audio bucket (decision record 0039): where the transcriber keeps each segment's translation spoken in each
language, for the listeners' browsers to GET through presigned URLs.

Encrypted (S3 managed keys, or the stack's audio key with customer managed keys), public access blocked, TLS only,
objects deleted a day after they were written (a URL is valid minutes; nothing reads an object later), CORS GET and
HEAD for the listener apps' origins (``EnvironmentConfig.audio_cors_origins``), and kept or deleted with the stack
as the tables are (``removal_policy``). The transcriber may put and get objects under ``audio/`` only
(``cdk_app.permissions.grant_audio_objects``); it is told the bucket's name (``AUDIO_BUCKET``).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_app import nag, permissions
from cdk_app.config import EnvironmentConfig
from lambda_src.contract import function_settings

# Every object the service writes is under this prefix (audio/<sessionId>/<language>/<segmentId>.mp3).
AUDIO_PREFIX: Final = "audio/"
EXPIRATION: Final = Duration.days(1)
# How long a browser may cache the answer to a CORS preflight.
CORS_MAX_AGE_SECONDS: Final = 3000


class AudioBucket(Construct):
    """``bucket``: the audio bucket. ``key``: the customer managed key that encrypts it, or None (S3 managed)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, key: kms.IKey | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = key
        cors = (
            [
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=list(config.audio_cors_origins),
                    allowed_headers=["Range"],  # a player may fetch part of the audio
                    exposed_headers=["Content-Length", "Content-Range", "Accept-Ranges"],
                    max_age=CORS_MAX_AGE_SECONDS,
                )
            ]
            if config.audio_cors_origins
            else None
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS if key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=key,
            bucket_key_enabled=key is not None,  # one data key per bucket and period, not a KMS call per object
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            cors=cors,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireSpokenSegments",
                    expiration=EXPIRATION,
                    abort_incomplete_multipart_upload_after=EXPIRATION,
                )
            ],
            removal_policy=config.removal_policy,
        )
        nag.acknowledge(
            self.bucket,
            "S1",
            "no server access logs: every object is a spoken segment written by the transcriber (whose function "
            "logs each one) and deleted after a day, read only through presigned URLs handed to listeners; access "
            "logs would need a second bucket to record reads of data that is published to its audience anyway",
        )

    def grant_speech(self, function: lambda_.Function) -> None:
        """Let ``function`` store spoken translations in this bucket and hand out URLs to them
        (``permissions.grant_audio_objects``), and tell it the bucket's name."""
        permissions.grant_audio_objects(function, self.bucket, self.key)
        function.add_environment(function_settings.ENV_AUDIO_BUCKET, self.bucket.bucket_name)
