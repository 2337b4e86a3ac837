"""The lint gate bites: ruff and mypy, configured from ``pyproject.toml`` alone, refuse a file with a finding.

Each probe file is written to a temporary folder inside the repository and checked from the repository root
without naming a configuration file, so the tools find their settings the way ``make lint`` and the pre-commit
hooks do. The findings chosen are ones only the project's settings produce (rules outside ruff's default set,
the 120-column limit, mypy's ``disallow_untyped_defs``), so a tool that ran with its defaults would pass them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PYPROJECT = ROOT / "pyproject.toml"

# Files that would be a second home for a tool's settings (each of these tools reads one when present).
OTHER_SETTINGS_FILES = (
    "pytest.ini",
    "tox.ini",
    "setup.cfg",
    "mypy.ini",
    ".mypy.ini",
    "ruff.toml",
    ".ruff.toml",
    ".flake8",
    ".isort.cfg",
    ".coveragerc",
)
GATE_TOOLS = ("ruff", "mypy", "import-linter", "pre-commit", "botocore-stubs", "types-boto3")

CLEAN = (
    '"""A module every check accepts."""\n\n'
    "from __future__ import annotations\n\n\n"
    "def double(value: int) -> int:\n"
    "    return value * 2\n"
)


@pytest.fixture
def probe_dir() -> Iterator[Path]:
    """A folder inside the repository (so the tools resolve ``pyproject.toml`` as for any project file)."""
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".gate-probe-") as folder:
        yield Path(folder)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return _run(str(BIN / "ruff"), *args)


def _mypy(path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    # A cache of its own, so the probe neither reads nor disturbs the repository's .mypy_cache.
    return _run(str(BIN / "mypy"), "--cache-dir", str(cache), str(path))


def test_ruff_check_refuses_findings_of_the_project_rule_set(probe_dir: Path) -> None:
    probe = probe_dir / "probe.py"
    long_line = "LONG = " + repr("x" * 120)
    probe.write_text(
        "from __future__ import annotations\n\n"
        "import sys\nimport os\n\n"  # I001: unsorted imports
        f"{long_line}\n\n\n"  # E501 at the project's 120 columns
        "def collect(item: int, bucket: list[int] = []) -> list[int]:\n"  # B006: mutable default
        "    bucket.append(item)\n"
        "    return bucket + [len(os.sep), len(sys.argv)]\n"
    )
    result = _ruff("check", "--output-format", "concise", str(probe))
    assert result.returncode == 1, result.stdout + result.stderr
    codes = set(re.findall(r": ([A-Z]+[0-9]+) ", result.stdout))
    assert {"I001", "E501", "B006"} <= codes, result.stdout

    probe.write_text(CLEAN)
    assert _ruff("check", str(probe)).returncode == 0


def test_ruff_allows_the_house_line_length_and_no_more(probe_dir: Path) -> None:
    probe = probe_dir / "probe.py"
    prefix = "VALUE = "
    probe.write_text(f"{prefix}{'x' * (120 - len(prefix) - 2)!r}\n")  # exactly 120 columns
    assert len(probe.read_text().splitlines()[0]) == 120
    assert _ruff("check", str(probe)).returncode == 0
    probe.write_text(f"{prefix}{'x' * (121 - len(prefix) - 2)!r}\n")
    assert _ruff("check", str(probe)).returncode == 1


def test_ruff_check_refuses_a_function_over_the_complexity_limit(probe_dir: Path) -> None:
    probe = probe_dir / "probe.py"
    branches = "".join(f"    if value == {n}:\n        return {n}\n" for n in range(13))
    probe.write_text(f"def branchy(value: int) -> int:\n{branches}    return -1\n")
    result = _ruff("check", "--output-format", "concise", str(probe))
    assert result.returncode == 1
    assert "C901" in result.stdout


def test_ruff_format_check_refuses_unformatted_code(probe_dir: Path) -> None:
    probe = probe_dir / "probe.py"
    probe.write_text("VALUES = [1,2,  3]\n")
    assert _ruff("format", "--check", str(probe)).returncode == 1
    probe.write_text(CLEAN)
    assert _ruff("format", "--check", str(probe)).returncode == 0


def test_mypy_refuses_untyped_definitions_and_type_errors(probe_dir: Path, tmp_path: Path) -> None:
    probe = probe_dir / "probe.py"
    probe.write_text(
        "from __future__ import annotations\n\n\n"
        "def untyped(value):\n"  # only disallow_untyped_defs makes this an error
        "    return value\n\n\n"
        "def typed(value: int) -> str:\n"
        "    return value\n"  # a plain type error
    )
    result = _mypy(probe, tmp_path / "cache")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[no-untyped-def]" in result.stdout
    assert "[return-value]" in result.stdout

    probe.write_text(CLEAN)
    result = _mypy(probe, tmp_path / "cache")
    assert result.returncode == 0, result.stdout


def test_tools_are_configured_in_pyproject_only() -> None:
    settings = tomllib.loads(PYPROJECT.read_text())["tool"]
    assert {"ruff", "mypy", "pytest"} <= settings.keys()
    assert settings["ruff"]["line-length"] == 120
    assert {"E", "W", "F", "I", "B", "UP", "SIM", "C90"} <= set(settings["ruff"]["lint"]["select"])
    assert settings["mypy"]["disallow_untyped_defs"] is True
    assert not settings["mypy"].get("ignore_missing_imports"), "missing imports are ignored per module only"
    assert [name for name in OTHER_SETTINGS_FILES if (ROOT / name).exists()] == []

    shown = _ruff("check", "--show-settings", str(Path(__file__).relative_to(ROOT)))
    assert f'Settings path: "{PYPROJECT}"' in shown.stdout


def test_gate_tools_are_pinned_and_installed_at_the_pins() -> None:
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for tool in GATE_TOOLS:
        assert tool in pins, f"{tool} is not pinned in requirements-dev.txt"
        installed = metadata.version(tool)
        assert installed == pins[tool], f"{tool} {installed} is installed, {pins[tool]} is pinned"


def test_pre_commit_runs_the_venv_tools_that_make_lint_runs() -> None:
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    entries = re.findall(r"entry: (\S+)", config)
    assert sorted(entries) == [".venv/bin/lint-imports", ".venv/bin/mypy", ".venv/bin/ruff", ".venv/bin/ruff"]
    makefile = (ROOT / "Makefile").read_text()
    for command in ("ruff check", "ruff format --check", "mypy", "lint-imports --no-cache"):
        assert f"$(VENV)/bin/{command}" in makefile
    assert re.search(r"^lint: lint-python$", makefile, re.MULTILINE), "the Python checks run before the synth"


# The packages lint-imports reads (pyproject.toml's root_packages).
IMPORT_ROOTS = ("lambda_src", "cdk_app", "session_client", "local_run", "bench", "tests")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports over a copy of the packages in ``tree`` (with the project's pyproject.toml)."""
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "lint-imports"), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _copy_of_the_packages(tmp_path: Path) -> Path:
    for package in IMPORT_ROOTS:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    return tmp_path


def test_the_import_contracts_hold_and_break_on_a_module_that_imports_botocore_into_contract(tmp_path: Path) -> None:
    # Given a copy of the packages: the contracts hold on it as they are
    tree = _copy_of_the_packages(tmp_path)
    kept = _lint_imports(tree)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    # When a module of contract imports botocore (what cdk synth and the client library cannot load)
    (tree / "lambda_src" / "contract" / "probe.py").write_text("import botocore.exceptions\n")
    broken = _lint_imports(tree)
    # Then lint-imports fails, naming the contract and the import
    assert broken.returncode != 0
    assert "contract imports nothing outside the standard library BROKEN" in broken.stdout
    assert "lambda_src.contract.probe -> botocore" in broken.stdout


def test_an_import_against_the_layers_breaks_the_layers_contract(tmp_path: Path) -> None:
    # Given a copy of the packages, and a model module that imports a use case (a layer above it)
    tree = _copy_of_the_packages(tmp_path)
    (tree / "lambda_src" / "model" / "probe.py").write_text("from lambda_src.app import fanout\n")
    broken = _lint_imports(tree)
    # Then the layers contract is broken, naming the import
    assert broken.returncode != 0
    assert "each imports only the layers below it BROKEN" in broken.stdout
    assert "lambda_src.model.probe -> lambda_src.app.fanout" in broken.stdout
