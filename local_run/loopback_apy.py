"""Apertium's translation server (APY) bound to 127.0.0.1: run by the Python that Debian's ``apertium-apy``
command runs on (``local_run.apertium`` starts it), with the same arguments as that command.

APY has no bind-address option: it binds its port on every interface (``HTTPServer.bind(port)``), so anyone on the
network could use the local run's translator. This launcher gives Tornado's ``bind`` the loopback address before
APY's own ``main`` runs; everything else is APY's.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

LISTEN_HOST = "127.0.0.1"


def main() -> None:
    tcpserver = importlib.import_module("tornado.tcpserver")  # Debian's python3-tornado, not this project's venv
    bind = tcpserver.TCPServer.bind

    def bind_on_loopback(self: Any, port: int, address: str | None = None, *args: Any, **kwargs: Any) -> Any:
        return bind(self, port, LISTEN_HOST, *args, **kwargs)

    tcpserver.TCPServer.bind = bind_on_loopback
    apy = importlib.import_module("apertium_apy.apy")
    sys.argv[0] = "apertium-apy"
    apy.main()


if __name__ == "__main__":
    main()
