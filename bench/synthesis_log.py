"""Each synthesis the local run's consumer makes, timed where it happens: section 9's spoken-translation phases
(``bench.speech_path``) subtract it from the ``translatedAudio`` receipt time to get the service's own part.

The bench starts the local run's function workers with ``LOCAL_WORKER_PRELOAD=bench.synthesis_log``
(``local_run.worker``) and :data:`ENV_LOG` naming a file: imported in each worker before its handler, from the same
code asset, this module wraps ``EspeakSynthesizer.synthesize`` (the local run's synthesizer) so that each call, once
it returned or raised, appends one JSON line: the text, the language, its start and end (``time.monotonic()``,
seconds) and whether it succeeded. Writing the line comes after the call's end, so its cost counts as the
service's, never as the synthesis's. Without :data:`ENV_LOG` the module changes nothing.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ENV_LOG = "BENCH_SYNTHESIS_LOG"

Method = TypeVar("Method", bound=Callable[..., Any])


@dataclass(frozen=True)
class Synthesis:
    """One synthesis as the log recorded it."""

    text: str
    language: str
    start: float
    end: float
    ok: bool

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


def timed(synthesize: Method, log: Path) -> Method:
    """``synthesize(self, text, language)``, each call appended to ``log`` once it returned or raised."""
    lock = threading.Lock()

    @functools.wraps(synthesize)
    def wrapper(self: Any, text: str, language: str) -> Any:
        start, ok = time.monotonic(), False
        try:
            spoken = synthesize(self, text, language)
            ok = True
            return spoken
        finally:
            end = time.monotonic()
            line = json.dumps({"text": text, "language": language, "start": start, "end": end, "ok": ok})
            with lock, log.open("a") as out:
                out.write(line + "\n")

    return wrapper  # type: ignore[return-value]


def lines(log: Path) -> int:
    """How many syntheses ``log`` holds so far (0 before the first)."""
    return len(log.read_text().splitlines()) if log.exists() else 0


def read(log: Path, since: int = 0) -> list[Synthesis]:
    """The syntheses ``log`` recorded after its first ``since`` lines."""
    if not log.exists():
        return []
    return [Synthesis(**json.loads(line)) for line in log.read_text().splitlines()[since:] if line.strip()]


def _install() -> None:
    path = os.environ.get(ENV_LOG, "")
    if not path:
        return
    from lambda_src.adapters.speech import espeak

    espeak.EspeakSynthesizer.synthesize = timed(espeak.EspeakSynthesizer.synthesize, Path(path))  # type: ignore[method-assign]


_install()
