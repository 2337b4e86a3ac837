"""The audio bucket (decision record 0039) in every environment: encrypted (the stack's audio key with customer
managed keys, S3 managed otherwise), public access blocked, TLS only, objects deleted after a day, CORS GET/HEAD for
the configured listener origins only, kept or deleted with the data; and the transcriber alone told its name and
granted exactly PutObject and GetObject under audio/, SynthesizeSpeech, and the audio key through S3."""

from __future__ import annotations

import pytest

from tests.infrastructure.template_support import (
    BUCKET_POLICY_TYPE,
    BUCKET_TYPE,
    EXPECTED,
    TRANSCRIBER_MODULE,
    Synthesized,
    allowed_pairs,
    canonical,
    get_att,
    ref,
    synthesize,
)

AUDIO_BUCKET_VARIABLE = "AUDIO_BUCKET"
S3_VIA_SERVICE = {
    "StringEquals": {"kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}
}


def _bucket(synthesized: Synthesized) -> tuple[str, dict]:
    ((logical_id, bucket),) = synthesized.resources(BUCKET_TYPE).items()
    return logical_id, bucket


def test_one_bucket_encrypted_private_and_short_lived(deployed_any: Synthesized) -> None:
    # Given the environment's one bucket
    logical_id, bucket = _bucket(deployed_any)
    properties = bucket["Properties"]
    expected = EXPECTED[deployed_any.name]

    # Then it is encrypted with the stack's audio key where customer managed keys are on, S3's own elsewhere
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    if expected.customer_managed_keys:
        assert deployed_any.audio_key_id is not None
        assert encryption["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": get_att(deployed_any.audio_key_id, "Arn"),
        }
        assert encryption["BucketKeyEnabled"] is True
    else:
        assert deployed_any.audio_key_id is None
        assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    # And no public access of any kind, objects owned by the bucket (no ACLs)
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # And every object is deleted a day after it was written
    (rule,) = properties["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == 1 and "Prefix" not in rule
    # And it is kept or deleted with the stack as the tables are
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == expected.removal_policy, logical_id


def test_the_bucket_refuses_every_request_without_tls(deployed_any: Synthesized) -> None:
    logical_id, _ = _bucket(deployed_any)
    (policy,) = deployed_any.resources(BUCKET_POLICY_TYPE).values()
    assert policy["Properties"]["Bucket"] == ref(logical_id)
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Resource": [
                get_att(logical_id, "Arn"),
                {"Fn::Join": ["", [get_att(logical_id, "Arn"), "/*"]]},
            ],
        }
    ]


def test_browsers_on_the_configured_origins_may_get_the_audio(deployed_any: Synthesized) -> None:
    # Given the environment's listener origins (dev: loopback; staging and prod: none until configured)
    _, bucket = _bucket(deployed_any)
    origins = deployed_any.config.audio_cors_origins

    # Then the bucket's one CORS rule lets exactly those origins GET and HEAD; without any, it has none
    if not origins:
        assert "CorsConfiguration" not in bucket["Properties"]
        return
    assert all(origin.startswith(("http://localhost:", "http://127.0.0.1:")) for origin in origins)
    (rule,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD"]
    assert rule["AllowedOrigins"] == list(origins)


def test_the_listener_origins_come_from_context() -> None:
    # Given prod with -c audioCorsOrigins
    synthesized = synthesize({"env": "prod", "audioCorsOrigins": "https://listen.example.com"})

    # Then the bucket admits that origin
    (bucket,) = synthesized.resources(BUCKET_TYPE).values()
    (rule,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == ["https://listen.example.com"]


def test_only_the_transcriber_knows_the_bucket_and_may_use_it(deployed_any: Synthesized) -> None:
    logical_id, _ = _bucket(deployed_any)
    objects = canonical({"Fn::Join": ["", [get_att(logical_id, "Arn"), "/audio/*"]]})
    for function_id, function in deployed_any.functions.items():
        module = deployed_any.function_module(function_id)
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        pairs = allowed_pairs(deployed_any.statements_of_function(function_id))
        s3_and_polly = {(action, resource) for action, resource in pairs if action.startswith(("s3:", "polly:"))}
        if module == TRANSCRIBER_MODULE:
            # Then the transcriber is told the bucket's name, and may put and get its objects under audio/ (nothing
            # else of S3: no list, no delete, nothing on the bucket itself) and synthesize speech
            assert variables[AUDIO_BUCKET_VARIABLE] == ref(logical_id)
            assert s3_and_polly == {
                ("s3:GetObject", objects),
                ("s3:PutObject", objects),
                ("polly:SynthesizeSpeech", canonical("*")),
            }
        else:
            # And no other function is
            assert AUDIO_BUCKET_VARIABLE not in variables, module
            assert s3_and_polly == set(), module


@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_with_customer_managed_keys_the_transcriber_uses_the_audio_key_through_s3_only(
    synthesized_environment, environment: str
) -> None:
    # Given prod (customer managed keys) and staging with them switched on
    synthesized = (
        synthesized_environment(environment)
        if environment == "prod"
        else synthesize({"env": environment, "customerManagedKeys": "true"})
    )
    key = synthesized.audio_key_id
    assert key is not None
    for function_id in synthesized.functions:
        statements = [
            statement
            for statement in synthesized.statements_of_function(function_id)
            if statement.get("Resource") == get_att(key, "Arn")
        ]
        if synthesized.function_module(function_id) == TRANSCRIBER_MODULE:
            # Then the transcriber may make a new object's data key and decrypt one, through S3 only
            assert statements == [
                {
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Condition": S3_VIA_SERVICE,
                    "Effect": "Allow",
                    "Resource": get_att(key, "Arn"),
                }
            ]
        else:
            # And no other function may use the key
            assert statements == [], synthesized.function_module(function_id)
