"""The Lambda code asset and the dependencies layer, both built without Docker.

The code asset is the ``lambda_src`` package as it is in the repository (so the local run executes the
very files that deploy). Third-party wheels go to a layer, installed for the Lambda platform with
``pip install --platform ... --only-binary=:all:``; they change rarely, so code deploys stay small.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, IgnoreMode, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_app import constants

_REQUIREMENTS_FILE = "requirements.txt"


@jsii.implements(ILocalBundling)
class LocalWheelBundling:
    """Installs ``lambda_deps/requirements.txt`` into ``python/`` for the Lambda runtime and architecture."""

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        subprocess.run(
            [
                # --no-compile: bytecode built by this machine's Python would not match the Lambda runtime's.
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--platform",
                constants.WHEEL_PLATFORM,
                "--python-version",
                constants.WHEEL_PYTHON_VERSION,
                "--implementation",
                "cp",
                "--only-binary=:all:",
                "--target",
                f"{output_dir}/python",
                "-r",
                str(constants.LAMBDA_DEPENDENCIES_DIR / _REQUIREMENTS_FILE),
            ],
            check=True,
        )
        return True


def lambda_code() -> lambda_.Code:
    """Only ``lambda_src/`` from the repository root, so handlers are ``lambda_src.handlers.<module>``."""
    return lambda_.Code.from_asset(
        str(constants.PROJECT_ROOT),
        exclude=[
            "*",
            ".*",
            f"!{constants.LAMBDA_PACKAGE}",
            f"!{constants.LAMBDA_PACKAGE}/**",
            "**/__pycache__",
            "**/*.pyc",
        ],
        ignore_mode=IgnoreMode.GLOB,
    )


def dependencies_layer(scope: Construct, construct_id: str) -> lambda_.LayerVersion:
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=lambda_.Code.from_asset(
            str(constants.LAMBDA_DEPENDENCIES_DIR),
            bundling=BundlingOptions(
                image=DockerImage.from_registry("local-bundling-only"),
                local=LocalWheelBundling(),
            ),
        ),
        compatible_runtimes=[constants.RUNTIME],
        compatible_architectures=[constants.ARCHITECTURE],
        description="Third-party packages of the session service functions",
    )
