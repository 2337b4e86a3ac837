"""Customer managed keys: in prod (and wherever ``-c customerManagedKeys=true``) the tables and every log group
are encrypted with keys of the stack's own, rotated, kept or deleted with the data, whose policies admit the
account's IAM (where each role's own policy decides) and, for the logs key, CloudWatch Logs for this account's
log groups only. Elsewhere the tables use the AWS managed key and the log groups CloudWatch Logs' own."""

from __future__ import annotations

import pytest

from tests.infrastructure.template_support import (
    EXPECTED,
    KEY_TYPE,
    LOG_GROUP_TYPE,
    TABLE_TYPE,
    Synthesized,
    get_att,
    synthesize,
)

ACCOUNT_ROOT = {
    "AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}
}
ACCOUNT_ADMINISTERS = {"Action": "kms:*", "Effect": "Allow", "Principal": ACCOUNT_ROOT, "Resource": "*"}
THIS_ACCOUNTS_LOG_GROUPS = {
    "Fn::Join": [
        "",
        [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":logs:",
            {"Ref": "AWS::Region"},
            ":",
            {"Ref": "AWS::AccountId"},
            ":log-group:*",
        ],
    ]
}
LOGS_SERVICE = {"Service": {"Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}


def _assert_encrypted_with_own_keys(synthesized: Synthesized) -> None:
    tables_key, logs_key = synthesized.tables_key_id, synthesized.logs_key_id
    assert tables_key is not None and logs_key is not None and tables_key != logs_key
    for logical_id, table in synthesized.resources(TABLE_TYPE).items():
        assert table["Properties"]["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": get_att(tables_key, "Arn"),
        }, logical_id
    for logical_id, log_group in synthesized.resources(LOG_GROUP_TYPE).items():
        assert log_group["Properties"]["KmsKeyId"] == get_att(logs_key, "Arn"), logical_id


def _assert_aws_managed(synthesized: Synthesized) -> None:
    assert synthesized.tables_key_id is None and synthesized.logs_key_id is None
    for logical_id, table in synthesized.resources(TABLE_TYPE).items():
        assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}, logical_id
    for logical_id, log_group in synthesized.resources(LOG_GROUP_TYPE).items():
        assert "KmsKeyId" not in log_group["Properties"], logical_id


def test_tables_and_every_log_group_use_the_environments_keys(deployed_any: Synthesized) -> None:
    # Given an environment (customer managed keys in prod only)
    # Then every table and every log group (functions', stage access logs) is encrypted accordingly
    assert len(deployed_any.resources(LOG_GROUP_TYPE)) == 12  # ten functions and the two stages
    if EXPECTED[deployed_any.name].customer_managed_keys:
        _assert_encrypted_with_own_keys(deployed_any)
    else:
        _assert_aws_managed(deployed_any)


@pytest.mark.parametrize(("environment", "value"), [("staging", "true"), ("prod", "false")])
def test_customer_managed_keys_override_from_context(environment: str, value: str) -> None:
    # Given an environment with -c customerManagedKeys overridden
    synthesized = synthesize({"env": environment, "customerManagedKeys": value})

    # Then its tables and log groups follow the override
    if value == "true":
        _assert_encrypted_with_own_keys(synthesized)
    else:
        _assert_aws_managed(synthesized)


def test_keys_rotate_and_follow_the_data_when_the_stack_goes(deployed_any: Synthesized) -> None:
    # Given the environment's keys for tables and logs
    expected = EXPECTED[deployed_any.name]
    own = [key for key in (deployed_any.tables_key_id, deployed_any.logs_key_id) if key]
    assert len(own) == (2 if expected.customer_managed_keys else 0)
    for logical_id in own:
        key = deployed_any.resource(logical_id)

        # Then each rotates yearly, and is retained where the data is (prod), scheduled for deletion elsewhere
        assert key["Properties"]["EnableKeyRotation"] is True, logical_id
        assert key.get("DeletionPolicy") == expected.removal_policy, logical_id
        assert key.get("UpdateReplacePolicy") == expected.removal_policy, logical_id


def test_tables_key_policy_leaves_its_use_to_each_roles_own_policy(synthesized_environment) -> None:
    # Given prod's tables key
    prod = synthesized_environment("prod")
    policy = prod.resource(prod.tables_key_id)["Properties"]["KeyPolicy"]

    # Then its one statement lets the account administer it through IAM: no service or role is admitted by
    # the key policy itself (each function role's policy grants its own kms:Decrypt, test_permissions)
    assert policy["Statement"] == [ACCOUNT_ADMINISTERS]


def test_logs_key_admits_cloudwatch_logs_for_this_accounts_log_groups_only(synthesized_environment) -> None:
    # Given prod's logs key
    prod = synthesized_environment("prod")
    statements = prod.resource(prod.logs_key_id)["Properties"]["KeyPolicy"]["Statement"]

    # Then besides the account's administration, only CloudWatch Logs of this region may use it, and only
    # with the encryption context of a log group of this account
    assert ACCOUNT_ADMINISTERS in statements
    (logs_statement,) = [statement for statement in statements if statement != ACCOUNT_ADMINISTERS]
    assert logs_statement["Principal"] == LOGS_SERVICE
    assert logs_statement["Effect"] == "Allow"
    assert sorted(logs_statement["Action"]) == [
        "kms:Decrypt*",
        "kms:Describe*",
        "kms:Encrypt*",
        "kms:GenerateDataKey*",
        "kms:ReEncrypt*",
    ]
    assert logs_statement["Condition"] == {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": THIS_ACCOUNTS_LOG_GROUPS}}


def test_no_key_but_the_alarm_topics_without_customer_managed_keys(synthesized_environment) -> None:
    # Given dev (AWS managed keys)
    dev = synthesized_environment("dev")

    # Then the only key of the stack is the alarm topic's
    assert list(dev.resources(KEY_TYPE)) == [dev.key_id("alarm topic")]
