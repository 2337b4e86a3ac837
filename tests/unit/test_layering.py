"""DynamoDB stays in ``repositories/``: no module of ``lambda_src`` imports botocore but the repositories and
the modules that own an AWS client (``aws.py``, ``connections_api.py``, ``transcription/starter.py``, the Amazon
Transcribe adapter, which signs its stream's URL and reads its event stream with botocore, and the Amazon Translate
adapter, which turns its errors into translation failures). Checked on the modules' import statements, so a new
import anywhere else (at the top, or inside a function) fails here."""

from __future__ import annotations

import ast
from pathlib import Path

LAMBDA_SRC = Path(__file__).resolve().parents[2] / "lambda_src"
MAY_IMPORT_BOTOCORE = {
    "aws.py",
    "connections_api.py",
    "transcription/transcribe_recognizer.py",
    "transcription/starter.py",  # owns the Lambda client that starts a session's transcription consumer
    "translation/amazon_translate.py",
}


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            modules.add(node.module)
    return modules


def _outside_the_repositories() -> list[Path]:
    return [
        path
        for path in sorted(LAMBDA_SRC.rglob("*.py"))
        if "repositories" not in path.relative_to(LAMBDA_SRC).parts
        and str(path.relative_to(LAMBDA_SRC)) not in MAY_IMPORT_BOTOCORE
    ]


def test_no_module_outside_the_repositories_imports_botocore() -> None:
    importing = {
        str(path.relative_to(LAMBDA_SRC)): sorted(
            module for module in _imported_modules(path) if module.split(".")[0] == "botocore"
        )
        for path in _outside_the_repositories()
    }
    assert {name: modules for name, modules in importing.items() if modules} == {}


def test_the_scan_sees_the_modules_that_do_import_botocore() -> None:
    # The check above is only as good as its reading of imports: it must find the ones that exist.
    assert any(module.startswith("botocore") for module in _imported_modules(LAMBDA_SRC / "aws.py"))
    assert "botocore.exceptions" in _imported_modules(LAMBDA_SRC / "repositories" / "dynamodb.py")
    assert len(_outside_the_repositories()) > 20
