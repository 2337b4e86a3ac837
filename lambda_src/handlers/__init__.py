"""API Gateway entry points: parse the event, call the service, shape the reply. Nothing else.

Loading a handler module brings in botocore, Powertools and this package: tens of thousands of objects that
live as long as the process. Python's cyclic garbage collector would walk them again and again while they
load, and again in every full collection after, for nothing: none of them is garbage. So the collector is
paused while the package loads, and each handler module ends with ``finish_loading()``, which moves what
loading created out of the collector's reach (``gc.freeze``) and resumes it. Measured by ``make bench``,
section 3: about a tenth of a cold start on a small machine. Where the stack turns tracing on, botocore is
patched for X-Ray here too, before any client exists (``lambda_src.platform.tracing``).
"""

from __future__ import annotations

import gc

from lambda_src.platform import tracing

_COLLECTOR_WAS_ENABLED = gc.isenabled()
gc.disable()
# Before any client exists, and while the collector is paused: botocore patched where tracing is on.
tracing.instrument_from_environment()


def finish_loading() -> None:
    """The last statement of each handler module (each entry point; ``tests/unit/test_function_loading.py``
    checks them all): exempt the loaded objects from collection, then resume it."""
    gc.freeze()
    if _COLLECTOR_WAS_ENABLED:
        gc.enable()
