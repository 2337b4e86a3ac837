"""The dependencies layer: its lock against the hand-edited requirements, and the layer asset's hash against
what the layer is built for (the lock, the runtime's Python version, the architecture's wheel platform)."""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aws_cdk import aws_lambda as lambda_
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from cdk_app import bundling, constants
from tests.infrastructure.template_support import synthesize

LAYER_TYPE = "AWS::Lambda::LayerVersion"
_LOCK_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s\\;]+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass
class LockEntry:
    version: str
    hashes: list[str] = field(default_factory=list)
    direct: bool = False  # "# via -r lambda_deps/requirements.txt": asked for by the input, not only a dependency


def read_lock(path: Path) -> dict[str, LockEntry]:
    """The lock's pins by canonical name, with their hashes and whether the input names them."""
    entries: dict[str, LockEntry] = {}
    current: LockEntry | None = None
    direct_marker = f"-r {constants.LAYER_REQUIREMENTS.relative_to(constants.PROJECT_ROOT)}"
    for line in path.read_text().splitlines():
        match = _LOCK_ENTRY.match(line)
        if match:
            current = entries.setdefault(canonicalize_name(match["name"]), LockEntry(match["version"]))
        elif current is not None:
            current.hashes.extend(_HASH.findall(line))
            current.direct = current.direct or (line.lstrip().startswith("#") and direct_marker in line)
    return entries


def read_requirements(path: Path) -> dict[str, str]:
    """The input's pins by canonical name (each must be ``name==version``)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        requirement = Requirement(text)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"the layer's input pins exact versions: {text}"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def layer_asset_key() -> str:
    """The S3 key of the synthesized dev stack's one layer (its asset hash, ``<hash>.zip``)."""
    layers = synthesize({"env": "dev"}).resources(LAYER_TYPE)
    assert len(layers) == 1, sorted(layers)
    (layer,) = layers.values()
    key = layer["Properties"]["Content"]["S3Key"]
    assert isinstance(key, str), key
    return key


def test_lock_pins_exactly_the_requirements_and_their_versions() -> None:
    # Given the hand-edited input and the lock the layer is built from
    requirements = read_requirements(constants.LAYER_REQUIREMENTS)
    lock = read_lock(constants.LAYER_LOCK)
    # Then the lock's direct entries are exactly the input's packages, at the input's versions
    assert {name: entry.version for name, entry in lock.items() if entry.direct} == requirements
    # And every package of the lock (dependencies too) is pinned with at least one file hash
    assert lock and all(entry.hashes for entry in lock.values()), {n: len(e.hashes) for n, e in lock.items()}


def test_lock_was_resolved_for_the_functions_runtime_and_architecture() -> None:
    # Given the target of the runtime and architecture the functions deploy with
    target = bundling.layer_target()
    # Then the command recorded in the lock's header resolved it for that Python version and platform
    header = " ".join(line for line in constants.LAYER_LOCK.read_text().splitlines() if line.startswith("#"))
    assert f"--python-version {target.python_version} " in header, header
    assert f"--python-platform {target.uv_platform} " in header, header


def test_local_venv_runs_the_layers_versions() -> None:
    # Given the local venv (installed from requirements-dev.lock, resolved with the layer's lock as a constraint, so
    # make local and the tests run the same third-party code as the functions)
    lock = read_lock(constants.LAYER_LOCK)
    # Then every package of the layer is installed locally at the lock's version
    installed = {name: importlib.metadata.version(name) for name in lock}
    assert installed == {name: entry.version for name, entry in lock.items()}


def read_requirements_tree(path: Path) -> dict[str, str]:
    """Every requirement of a hand-edited requirements file and of the files it takes in (``-r``), as its specifier
    by canonical name."""
    specifiers: dict[str, str] = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text.startswith("-r "):
            specifiers |= read_requirements_tree(path.parent / text.removeprefix("-r ").strip())
        elif text:
            requirement = Requirement(text)
            specifiers[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return specifiers


def read_universal_lock(path: Path) -> dict[str, tuple[str, set[str]]]:
    """A universal lock's pins for this machine (its entries whose environment marker holds here, as pip installs
    them), by canonical name: version and file hashes."""
    entries: dict[str, tuple[str, set[str]]] = {}
    current: set[str] | None = None
    for line in path.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            requirement = Requirement(line.removesuffix("\\").strip())
            (specifier,) = requirement.specifier
            current = None
            if requirement.marker is None or requirement.marker.evaluate():
                current = set()
                entries[canonicalize_name(requirement.name)] = (specifier.version, current)
        elif current is not None:
            current.update(_HASH.findall(line))
    return entries


def test_the_venvs_lock_pins_every_requirement_within_its_specifier_with_hashes() -> None:
    # Given the venv's hand-edited input (with the layer's input and synth's, which it takes in) and its lock
    wanted = read_requirements_tree(constants.DEV_REQUIREMENTS)
    lock = read_universal_lock(constants.DEV_LOCK)
    # Then each requirement is locked at a version its specifier allows (the lock is current: `make lock`)
    outside = {
        name: (specifier, lock[name][0] if name in lock else None)
        for name, specifier in wanted.items()
        if name not in lock or not SpecifierSet(specifier).contains(lock[name][0])
    }
    assert outside == {}
    # And every package of the lock, dependencies too, carries the hashes its files are checked against
    assert all(hashes for _version, hashes in lock.values())


def test_the_venvs_lock_holds_the_layers_packages_at_the_layers_versions_and_files() -> None:
    # Given the layer's lock and the venv's
    layer = read_lock(constants.LAYER_LOCK)
    venv = read_universal_lock(constants.DEV_LOCK)
    # Then every package of the layer is locked for the venv at the same version, with the same files' hashes
    assert {name: (venv[name][0], venv[name][1]) for name in layer if name in venv} == {
        name: (entry.version, set(entry.hashes)) for name, entry in layer.items()
    }


def test_the_venv_holds_exactly_what_its_lock_pins() -> None:
    # Given the packages the venv's lock pins for this machine
    lock = read_universal_lock(constants.DEV_LOCK)
    pinned = {name: version for name, (version, _hashes) in lock.items()}
    # When this environment's distributions are listed (the venv's own installer and its build tool aside)
    installed = {
        canonicalize_name(distribution.metadata["Name"]): distribution.version
        for distribution in importlib.metadata.distributions()
    }
    for own in ("pip", "setuptools"):
        if own not in lock:
            installed.pop(canonicalize_name(own), None)
    # Then they are exactly the lock's, at its versions: nothing resolved afresh, nothing missing
    assert installed == pinned


def test_layer_is_built_from_the_lock_with_hashes_for_the_target() -> None:
    # Given the pip options the layer is installed with
    target = bundling.layer_target()
    options = bundling.layer_install_options(target)
    # Then it installs the lock, checking every file's hash, wheels only, for the target platform and Python
    assert options[options.index("-r") + 1] == str(constants.LAYER_LOCK)
    assert {"--require-hashes", "--only-binary=:all:", "--no-compile"} <= set(options)
    assert options[options.index("--platform") + 1] == target.pip_platform
    assert options[options.index("--python-version") + 1] == target.python_version
    assert target == bundling.LayerTarget("3.12", "manylinux2014_aarch64", "aarch64-manylinux2014")


def test_layer_asset_hash_changes_with_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the layer's asset key as deployed
    deployed = layer_asset_key()
    # When the functions' runtime is another Python
    monkeypatch.setattr(constants, "RUNTIME", lambda_.Runtime.PYTHON_3_13)
    # Then the layer is another asset (wheels for another Python's ABI), never the one built for 3.12
    assert layer_asset_key() != deployed


def test_layer_asset_hash_changes_with_the_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the layer's asset key as deployed
    deployed = layer_asset_key()
    # When the functions run on the other architecture
    monkeypatch.setattr(constants, "ARCHITECTURE", lambda_.Architecture.X86_64)
    # Then the layer is another asset
    assert layer_asset_key() != deployed


def test_layer_asset_hash_changes_with_the_lock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Given the layer's asset key as deployed
    deployed = layer_asset_key()
    # When the lock changes (here by one line)
    lock = tmp_path / constants.LAYER_LOCK.name
    lock.write_text(constants.LAYER_LOCK.read_text() + "# changed\n")
    monkeypatch.setattr(constants, "LAYER_LOCK", lock)
    # Then the layer is another asset
    assert layer_asset_key() != deployed


def test_layer_asset_hash_is_stable_for_the_same_inputs() -> None:
    # Then two synths of the same lock and target give the same asset (nothing random or machine-specific)
    assert layer_asset_key() == layer_asset_key()
