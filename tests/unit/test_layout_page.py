"""The Layout page (docs/layout.md) and the package docstring name every module of the project, and only modules
that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cdk_app", "lambda_src", "local_run", "bench", "session_client")


def _layout() -> str:
    return (ROOT / "docs" / "layout.md").read_text()


def test_the_layout_names_every_module() -> None:
    named = set(re.findall(r"`([A-Za-z0-9_/]+?)(?:\.py)?`", _layout()))
    modules = sorted(
        path.relative_to(ROOT)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.stem != "__init__" and "__pycache__" not in path.parts
    )
    missing = [str(module) for module in modules if module.stem not in named and module.stem != "__main__"]
    assert missing == []


def test_the_layout_names_no_module_that_does_not_exist() -> None:
    existing = {path.name for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    cited = set(re.findall(r"`([a-z0-9_]+\.py)`", _layout())) - {"app.py"}
    assert cited - existing == set()


def test_the_package_docstring_names_existing_modules_only() -> None:
    import lambda_src

    cited = set(re.findall(r"``([a-z_]+)``", lambda_src.__doc__ or ""))
    existing = {path.stem for path in (ROOT / "lambda_src").iterdir() if path.suffix == ".py" or path.is_dir()}
    assert cited and cited <= existing


def test_the_downstream_reader_cites_a_grant_the_stack_has() -> None:
    import ast

    from lambda_src import downstream

    cited = re.findall(r"``(\w+)\.(grant_\w+)``", downstream.__doc__ or "")
    assert cited
    tree = ast.parse((ROOT / "cdk_app" / "stack.py").read_text())
    methods = {
        (node.name, item.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for item in node.body
        if isinstance(item, ast.FunctionDef)
    }
    assert set(cited) <= methods
