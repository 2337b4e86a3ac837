"""The stack's own KMS keys for the tables, the log groups and the audio bucket, when the environment asks for customer
managed keys (``customer_managed_keys``; prod by default, ``-c customerManagedKeys=true`` elsewhere).

Both are symmetric, rotated yearly, and kept or scheduled for deletion with the stack as its data is
(``removal_policy``). Their key policies keep CDK's default statement, which hands the key's use to IAM in
this account: the functions' roles get exactly ``kms:Decrypt`` through their own policies (DynamoDB decrypts
a table's key with the caller's permission when it serves a request or a stream read; S3 an object's data key
with the caller's permission when it stores or serves the object, a presigned URL's signer's; see
``cdk_app.permissions``). The log groups' key also lets CloudWatch Logs of this region use it, for log groups
of this account only (the encryption-context condition CloudWatch Logs documents).
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk_app.config import EnvironmentConfig

# What CloudWatch Logs does with a log group's key (AWS's documented key policy statement for it).
LOGS_KEY_ACTIONS = ("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*")


class ServiceKeys(Construct):
    """``tables``, ``logs`` and ``audio``: the keys, or None for each when the environment uses AWS managed keys
    (S3 managed keys for the audio bucket)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self.tables: kms.IKey | None = None
        self.logs: kms.IKey | None = None
        self.audio: kms.IKey | None = None
        if not config.customer_managed_keys:
            return
        self.audio = self._key("AudioKey", f"{config.stack_name} audio bucket (spoken translations)", config)
        self.tables = self._key("TablesKey", f"{config.stack_name} tables (items, indexes, streams)", config)
        logs_key = self._key("LogsKey", f"{config.stack_name} log groups (functions, stage access logs)", config)
        logs_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=list(LOGS_KEY_ACTIONS),
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )
        self.logs = logs_key

    def _key(self, construct_id: str, description: str, config: EnvironmentConfig) -> kms.Key:
        return kms.Key(
            self,
            construct_id,
            description=description,
            enable_key_rotation=True,
            removal_policy=config.removal_policy,
        )
