"""The README stays a short front page and the documentation site covers every page: the README is at most 15 KB and
keeps the commands CI and the hook look for; every page under docs/ is in mkdocs.yml's nav (and the nav names no
page that is missing); the decision records are numbered in order and each is in the decisions index; the README's
relative links lead to files that exist (mkdocs checks the links of docs/, not the README's)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_LIMIT_BYTES = 15_000


def _nav_pages(node: Any) -> list[str]:
    """Every page a mkdocs nav names, however nested (a page is a string, or a title mapped to one)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def _pages() -> list[str]:
    return sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))


def test_the_readme_is_at_most_15_kb() -> None:
    assert README.stat().st_size <= README_LIMIT_BYTES


def test_the_readme_keeps_the_local_run_and_test_commands() -> None:
    readme = README.read_text()
    assert "make local" in readme
    assert "make test" in readme


def test_every_page_under_docs_is_in_the_nav_and_the_nav_names_only_pages_that_exist() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["docs_dir"] == "docs"
    nav = _nav_pages(config["nav"])
    assert len(nav) == len(set(nav))
    assert sorted(nav) == _pages()


def test_the_decision_records_are_numbered_in_order_and_each_is_in_the_index() -> None:
    records = sorted(path.name for path in (DOCS / "decisions").glob("[0-9][0-9][0-9][0-9]-*.md"))
    assert [int(name[:4]) for name in records] == list(range(1, len(records) + 1))
    index = (DOCS / "decisions" / "index.md").read_text()
    assert sorted(set(re.findall(r"\]\((\d{4}-[\w-]+\.md)\)", index))) == records


def test_the_readmes_relative_links_lead_to_files_that_exist() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    relative = [target for target in targets if "://" not in target]
    assert relative
    assert [target for target in relative if not (ROOT / target).is_file()] == []
