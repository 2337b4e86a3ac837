"""``python -m session_client listen|speak``: see :mod:`session_client.cli`."""

from __future__ import annotations

import sys

from session_client.cli import main

sys.exit(main())
