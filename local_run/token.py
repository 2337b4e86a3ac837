"""``make token``: a speaker token that the running ``make local`` accepts (its last line is the token).

Reads the issuer and client id the local run wrote when it started; options as ``dev_issuer``'s.
"""

from __future__ import annotations

import json
import sys

from local_run import dev_issuer
from local_run.run import ISSUER_FILE


def main(argv: list[str]) -> int:
    if not ISSUER_FILE.exists():
        print("start the service first: make local (it writes the issuer this token is for)", file=sys.stderr)
        return 1
    pool = json.loads(ISSUER_FILE.read_text())[0]
    return dev_issuer.main(
        ["--issuer", pool["issuer"], "--client-id", pool["clientId"], "--key-dir", str(ISSUER_FILE.parent), *argv]
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
