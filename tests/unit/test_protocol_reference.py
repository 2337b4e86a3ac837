"""The protocol page (docs/protocol.md) matches the code: error catalogue, actions and server message types."""

from __future__ import annotations

import re
from pathlib import Path

from lambda_src.contract import routes
from lambda_src.contract.errors import ErrorCode
from lambda_src.protocol import messages

PROTOCOL = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def _table_after(heading: str) -> list[dict[str, str]]:
    """The body rows of the first table after the line ``heading``, each by its column's header (cells stripped)."""
    lines = PROTOCOL.split(f"\n{heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))

    def cells(row: str) -> list[str]:
        return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]

    header = cells(lines[start])
    return [dict(zip(header, cells(row), strict=True)) for row in lines[start + 2 : end]]


def _names(rows: list[dict[str, str]]) -> list[str]:
    """The first column of each row, without its backticks."""
    return [next(iter(row.values())).strip("`") for row in rows]


def test_error_table_is_the_catalogue() -> None:
    rows = _table_after("## Error codes")
    assert [(row["code"].strip("`"), int(row["status"]), row["when"]) for row in rows] == [
        (code.name, code.status, code.when) for code in ErrorCode
    ]


def test_query_actions_table_lists_every_connect_action() -> None:
    documented = [name for name in _names(_table_after("## Query-string actions")) if name != "(none)"]
    assert documented == list(routes.CONNECT_ACTIONS)


def test_message_table_lists_every_message_route() -> None:
    assert _names(_table_after("## Messages")) == list(routes.MESSAGE_ROUTES)


def test_server_message_table_lists_every_message_type() -> None:
    assert _names(_table_after("## Server messages")) == list(messages.SERVER_MESSAGE_TYPES)
