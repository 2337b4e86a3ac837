"""What each part of the project loads: ``cdk synth`` runs on ``requirements.txt`` alone, and the client library on
its own dependencies (websockets), never on the functions' (botocore, Powertools, PyJWT).

Each case runs in a fresh interpreter whose imports are limited to the standard library, the project's own
packages and the distributions one set of requirements installs (with their dependencies, as installed here): an
import of anything else fails there as it would in a venv made from that set alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("app", "lambda_src", "cdk_app", "session_client", "local_run", "bench", "tests")
# The client library's own dependency (session_client's imports beside the standard library and lambda_src.contract).
CLIENT_REQUIREMENTS = ("websockets",)
FUNCTIONS_ONLY = ("botocore", "boto3", "aws_lambda_powertools", "jwt", "rapidfuzz")

# Run in the fresh interpreter: a finder first on sys.meta_path that refuses every top-level module outside the
# allowed set, then the given code. Exit 0, or the refused import on stderr.
_GUARD = """
import importlib.abc, json, sys
allowed = set(json.loads(sys.argv[1]))
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in allowed or top in sys.stdlib_module_names or top in sys.builtin_module_names:
            return None
        raise ModuleNotFoundError(f"{top} is not in this dependency set (importing {name})", name=name)
sys.meta_path.insert(0, Refuse())
exec(sys.argv[2])
"""


def _closure(names: tuple[str, ...]) -> set[str]:
    """The distributions ``names`` install, with their dependencies (as installed here, markers evaluated)."""
    seen: set[str] = set()
    todo = [canonicalize_name(name) for name in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def _top_level_modules(distributions: set[str]) -> set[str]:
    provided = metadata.packages_distributions()
    return {module for module, owners in provided.items() if {canonicalize_name(d) for d in owners} & distributions}


def _requirement_names(path: Path) -> tuple[str, ...]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return tuple(Requirement(line).name for line in lines if line and not line.startswith("-"))


def _run_limited_to(modules: set[str], code: str) -> subprocess.CompletedProcess[str]:
    allowed = sorted(modules | set(PROJECT_PACKAGES))
    return subprocess.run(
        [sys.executable, "-c", _GUARD, json.dumps(allowed), code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_guard_refuses_what_is_not_in_the_set() -> None:
    # The check is only as good as its guard: botocore is installed here, and refused outside the set
    result = _run_limited_to(set(), "import botocore")
    assert result.returncode != 0 and "botocore is not in this dependency set" in result.stderr


def test_cdk_synth_runs_on_requirements_txt_alone(tmp_path: Path) -> None:
    # Given only what requirements.txt installs (the CDK libraries, cdk-nag, and what they need)
    modules = _top_level_modules(_closure(_requirement_names(ROOT / "requirements.txt")))
    assert not modules & set(FUNCTIONS_ONLY), modules & set(FUNCTIONS_ONLY)
    # When the app is synthesized (every construct of the stack, cdk-nag's checks; the layer's bundling is a pip
    # process of its own)
    code = f"import app; app.build_app(__import__('aws_cdk').App(outdir={str(tmp_path)!r})).synth()"
    result = _run_limited_to(modules, code)
    # Then it succeeds, with the template written
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(tmp_path.glob("*.template.json")), sorted(path.name for path in tmp_path.iterdir())


def test_the_client_library_loads_on_its_own_dependencies() -> None:
    # Given only the client library's own dependencies
    modules = _top_level_modules(_closure(CLIENT_REQUIREMENTS))
    assert not modules & set(FUNCTIONS_ONLY)
    # When every module of the library is imported (the smoke tool beside it aside: it drives the local run)
    library = sorted(
        f"session_client.{path.stem}"
        for path in (ROOT / "session_client").glob("*.py")
        if path.stem not in {"__init__", "__main__", "smoke"}
    )
    result = _run_limited_to(modules, "import " + ", ".join(["session_client", *library]))
    # Then it loads
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"session_client\.clients", " ".join(library))
