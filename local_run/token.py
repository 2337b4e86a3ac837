"""``make token``: a speaker token that the running ``make local`` accepts (its last line is the token).

Reads the issuer and client id the local run wrote when it started; options as ``dev_issuer``'s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from local_run import dev_issuer
from local_run.run import ISSUER_FILE

NOT_RUNNING = "start the service first: make local (it writes the issuer this token is for)"


class LocalRunNotStarted(RuntimeError):
    """No local run has written the issuer file a token is minted for."""


def trusted_issuer(issuer_file: Path | None = None) -> dict[str, Any]:
    """The issuer and client id the running local service trusts (its first user pool's), from ``issuer_file``
    (default: the one the local run writes)."""
    issuer_file = issuer_file or ISSUER_FILE
    if not issuer_file.exists():
        raise LocalRunNotStarted(NOT_RUNNING)
    pool: dict[str, Any] = json.loads(issuer_file.read_text())[0]
    return pool


def mint_local_token(user_id: str = "local-speaker", expires_in: int = 3600, issuer_file: Path | None = None) -> str:
    """A speaker token that the running local service accepts (what ``make token`` prints), signed with the key
    beside ``issuer_file``."""
    issuer_file = issuer_file or ISSUER_FILE
    pool = trusted_issuer(issuer_file)
    return dev_issuer.DevIssuer(issuer_file.parent, pool["issuer"], pool["clientId"]).mint(user_id, expires_in)


def main(argv: list[str]) -> int:
    try:
        pool = trusted_issuer()
    except LocalRunNotStarted as not_started:
        print(not_started, file=sys.stderr)
        return 1
    return dev_issuer.main(
        ["--issuer", pool["issuer"], "--client-id", pool["clientId"], "--key-dir", str(ISSUER_FILE.parent), *argv]
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
