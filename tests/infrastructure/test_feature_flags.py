"""The CDK feature flags of ``cdk.json`` against those the installed aws-cdk-lib recommends."""

from __future__ import annotations

import importlib.metadata
import json
import tarfile
from pathlib import Path
from typing import Any

import aws_cdk

from tests.infrastructure.template_support import feature_flags

# Recommended flags set otherwise, each with its value and why (docs/decisions/0025-feature-flags.md).
DECLINED = {
    # It writes construct properties into the CDKMetadata resource, which CloudFormation reports to AWS.
    "@aws-cdk/core:enableAdditionalMetadataCollection": False,
}


def recommended_flags() -> dict[str, Any]:
    """``recommended-feature-flags.json`` of the installed aws-cdk-lib (inside its jsii bundle)."""
    version = importlib.metadata.version("aws-cdk-lib")
    bundle = Path(aws_cdk.__file__).parent / "_jsii" / f"aws-cdk-lib@{version}.jsii.tgz"
    with tarfile.open(bundle) as archive:
        member = archive.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        flags: dict[str, Any] = json.load(member)
    return flags


def test_every_recommended_feature_flag_is_set_to_its_recommended_value_or_declined() -> None:
    # Given the flags this aws-cdk-lib recommends (what `cdk init` writes for a new project)
    recommended = recommended_flags()
    assert recommended
    # Then cdk.json sets each one: to the recommended value, or to the value declined above
    configured = feature_flags()
    expected = {flag: DECLINED.get(flag, value) for flag, value in recommended.items()}
    assert {flag: configured.get(flag, "<unset>") for flag in recommended} == expected
    # And every declined flag is one this version still recommends otherwise (no stale exception)
    assert all(flag in recommended and recommended[flag] != value for flag, value in DECLINED.items())
