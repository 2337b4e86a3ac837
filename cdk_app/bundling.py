"""The Lambda code asset and the dependencies layer, both built without Docker.

The code asset is the ``lambda_src`` package as it is in the repository (so the local run executes the
very files that deploy). Third-party wheels go to a layer; they change rarely, so code deploys stay small.
The layer is installed from ``lambda_deps/requirements.lock`` (every package pinned, with the hashes of its
files) for the Lambda platform with ``pip install --require-hashes --platform ... --only-binary=:all:``, so two
builds of one lock hold the same files; what the Lambda runtime provides (botocore and its dependencies) is left
out. ``make lock`` (``python -m cdk_app.bundling``) writes the lock from
``lambda_deps/requirements.txt`` for the runtime and architecture of ``cdk_app.constants``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, IgnoreMode, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_app import constants

_PYTHON_RUNTIME_PREFIX = "python"
# CPython: Lambda's Python runtimes.
_IMPLEMENTATION = "cp"


@dataclass(frozen=True)
class LayerTarget:
    """The platform the layer's wheels must match: the functions' Python version and architecture."""

    python_version: str  # e.g. "3.12"
    pip_platform: str  # pip's --platform tag, e.g. "manylinux2014_aarch64"
    uv_platform: str  # uv's --python-platform name for the same platform, e.g. "aarch64-manylinux2014"


def layer_target() -> LayerTarget:
    """The target of ``constants.RUNTIME`` and ``constants.ARCHITECTURE``, read when called."""
    runtime_name = constants.RUNTIME.name
    if constants.RUNTIME.family != lambda_.RuntimeFamily.PYTHON or not runtime_name.startswith(_PYTHON_RUNTIME_PREFIX):
        raise ValueError(f"the layer holds Python wheels; the runtime is {runtime_name}")
    architecture = constants.ARCHITECTURE.name
    if architecture not in constants.WHEEL_PLATFORMS:
        raise ValueError(f"no wheel platform for the architecture {architecture} (constants.WHEEL_PLATFORMS)")
    pip_platform, uv_platform = constants.WHEEL_PLATFORMS[architecture]
    return LayerTarget(runtime_name.removeprefix(_PYTHON_RUNTIME_PREFIX), pip_platform, uv_platform)


def layer_install_options(target: LayerTarget) -> list[str]:
    """``pip install``'s options for the layer, all but the output directory: what the layer is built from."""
    return [
        "--quiet",
        "--disable-pip-version-check",
        # Bytecode built by this machine's Python would not match the Lambda runtime's.
        "--no-compile",
        "--require-hashes",
        # The lock is the whole set (RUNTIME_PROVIDED_PACKAGES left out on purpose): nothing else is resolved.
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        target.pip_platform,
        "--python-version",
        target.python_version,
        "--implementation",
        _IMPLEMENTATION,
        "-r",
        str(constants.LAYER_LOCK),
    ]


def layer_asset_hash(target: LayerTarget) -> str:
    """The layer asset's hash: the lock's content and every install option (platform, Python version,
    implementation), so a new lock or another runtime or architecture never reuses a layer built for another."""
    digest = hashlib.sha256()
    digest.update(constants.LAYER_LOCK.read_bytes())
    options = layer_install_options(target)
    # The lock's path is the machine's; its content is hashed above.
    digest.update(json.dumps(options[: options.index("-r")]).encode())
    return digest.hexdigest()


def lock_command(target: LayerTarget) -> list[str]:
    """The command that writes the lock from ``lambda_deps/requirements.txt`` for ``target`` (``make lock``): uv
    from this interpreter's environment (pinned in requirements-dev.txt), run from the project root; the paths
    are relative to it because the lock's header repeats them."""
    return [
        sys.executable,
        "-m",
        "uv",
        "pip",
        "compile",
        "--quiet",
        "--generate-hashes",
        "--python-version",
        target.python_version,
        "--python-platform",
        target.uv_platform,
        *(option for package in constants.RUNTIME_PROVIDED_PACKAGES for option in ("--no-emit-package", package)),
        str(constants.LAYER_REQUIREMENTS.relative_to(constants.PROJECT_ROOT)),
        "--output-file",
        str(constants.LAYER_LOCK.relative_to(constants.PROJECT_ROOT)),
    ]


def dev_lock_command() -> list[str]:
    """The command that writes the local venv's lock from ``requirements-dev.txt`` (``make lock``, after the layer's):
    universal (markers for every platform, the hashes of every file), for DEV_PYTHON_VERSION and later, with the
    layer's lock as a constraint, so that a package of the layer is installed locally at the layer's version;
    wheels only, as ``make install`` installs."""
    return [
        sys.executable,
        "-m",
        "uv",
        "pip",
        "compile",
        "--quiet",
        "--universal",
        "--generate-hashes",
        # `make install` installs wheels only: a package that ships no wheel is refused here, not on a fresh clone.
        "--only-binary",
        ":all:",
        "--python-version",
        constants.DEV_PYTHON_VERSION,
        "--constraint",
        str(constants.LAYER_LOCK.relative_to(constants.PROJECT_ROOT)),
        str(constants.DEV_REQUIREMENTS.relative_to(constants.PROJECT_ROOT)),
        "--output-file",
        str(constants.DEV_LOCK.relative_to(constants.PROJECT_ROOT)),
    ]


@jsii.implements(ILocalBundling)
class LocalWheelBundling:
    """Installs the lock into ``python/`` for the Lambda runtime and architecture."""

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        options = layer_install_options(layer_target())
        subprocess.run(
            [sys.executable, "-m", "pip", "install", *options, "--target", f"{output_dir}/python"], check=True
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
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=layer_asset_hash(layer_target()),
            bundling=BundlingOptions(
                image=DockerImage.from_registry("local-bundling-only"),
                local=LocalWheelBundling(),
            ),
        ),
        compatible_runtimes=[constants.RUNTIME],
        compatible_architectures=[constants.ARCHITECTURE],
        description="Third-party packages of the session service functions",
    )


if __name__ == "__main__":
    subprocess.run(lock_command(layer_target()), cwd=constants.PROJECT_ROOT, check=True)
    subprocess.run(dev_lock_command(), cwd=constants.PROJECT_ROOT, check=True)
