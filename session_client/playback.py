"""A listener's segments in order: :class:`SegmentQueue` fetches each segment's MP3 as soon as it arrives (its URL
lives about 5 minutes, a backlog of playing may be longer) and hands the audio to one handler, one segment at a
time, in sequence-number order; :func:`find_player` and :func:`play` pipe an MP3 to a player found on ``PATH``.

Ordering: the service numbers each language's segments from 1 without gaps, but a listener may see gaps (it joined
late, paused its playback, lost its connection for a while) and frames may overtake one another. So the queue hands
on the lowest number it holds: at once when it is in turn (1 first, then the number after the last one handed on),
otherwise after ``reorder_wait`` seconds without the missing one (a listener that joined late waits that long
once); a segment that arrives after a higher one was handed on is dropped, never played late. One queue serves one
language: numbers start again in another.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Awaitable, Callable, Sequence

from session_client.audio_segments import AudioFetchFailed, AudioSegment

# The players tried, in order: each reads an MP3 on standard input, plays it to the end and exits, showing nothing.
PLAYERS: tuple[tuple[str, ...], ...] = (
    ("mpg123", "-q", "-"),
    ("ffplay", "-nodisp", "-autoexit", "-loglevel", "error", "-"),
    ("play", "-q", "-t", "mp3", "-"),  # sox
)
# What to install when none is found (their packages' names in Debian and Homebrew alike).
INSTALL_A_PLAYER = "mpg123, ffmpeg (ffplay) or sox (play; on Debian with libsox-fmt-mp3)"
# How long a segment waits for a missing lower number before it is handed on without it.
REORDER_WAIT_SECONDS = 1.0

Handler = Callable[[AudioSegment, bytes], Awaitable[None]]


class PlayerFailed(Exception):
    """The player exited with a failure (its ``returncode``)."""

    def __init__(self, command: Sequence[str], returncode: int) -> None:
        super().__init__(f"{command[0]} exited with {returncode}")
        self.returncode = returncode


def find_player(path: str | None = None) -> tuple[str, ...] | None:
    """The first of :data:`PLAYERS` on ``path`` (None: ``$PATH``) as a command with its arguments, the program by
    its full path; None when there is none."""
    for program, *arguments in PLAYERS:
        found = shutil.which(program, path=path)
        if found is not None:
            return (found, *arguments)
    return None


async def play(command: Sequence[str], mp3: bytes) -> None:
    """Pipe ``mp3`` to ``command`` and wait until it has played; :class:`PlayerFailed` when it exits with a failure.
    Cancelled, the player is killed."""
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        await process.communicate(mp3)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode:
        raise PlayerFailed(command, process.returncode)


class SegmentQueue:
    """Segments put in as they arrive (:meth:`put`, e.g. a listener's ``on_audio``), each fetched at once, their
    audio handed to ``handle`` one at a time in sequence-number order (see the module's docstring). A segment whose
    fetch fails is skipped (``on_skipped`` is told why); what ``handle`` raises ends the queue (:meth:`close`
    raises it). Create it inside a running event loop."""

    def __init__(
        self,
        handle: Handler,
        *,
        on_skipped: Callable[[AudioSegment, str], None] | None = None,
        reorder_wait: float = REORDER_WAIT_SECONDS,
        fetch: Callable[[AudioSegment], Awaitable[bytes]] | None = None,
    ) -> None:
        """``fetch``: how a segment's audio is read (its own :meth:`AudioSegment.fetch` unless given)."""
        self._handle = handle
        self._on_skipped = on_skipped
        self._reorder_wait = reorder_wait
        self._fetch = fetch or (lambda segment: segment.fetch())
        self._held: dict[int, tuple[AudioSegment, asyncio.Future[bytes]]] = {}
        self._changed = asyncio.Event()
        self._closed = False
        self.last_handed: int | None = None
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="segment-queue")

    def put(self, segment: AudioSegment) -> None:
        """Take a segment (not a coroutine: a callback may call it) and start fetching it; a duplicate, or one
        whose place has passed, is dropped."""
        number, last = segment.sequence_number, self.last_handed
        if number in self._held:
            reason = "a duplicate"
        elif last is not None and number <= last:
            reason = f"arrived after segment {last}"
        elif self._closed:
            reason = "arrived after the queue closed"
        else:
            self._held[number] = (segment, asyncio.ensure_future(self._fetch(segment)))
            self._changed.set()
            return
        self._skipped(segment, reason)

    async def close(self) -> None:
        """Hand on what is held (no more waiting for missing numbers), then stop; raises what ``handle`` raised."""
        self._closed = True
        self._changed.set()
        await self._worker

    async def cancel(self) -> None:
        """Stop at once: the segment being handled (a player is killed) and the fetches in flight."""
        self._closed = True
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._worker

    async def _run(self) -> None:
        try:
            await self._hand_on()
        finally:  # cancelled, or ``handle`` failed: the fetches in flight are not wanted
            for _segment, fetching in self._held.values():
                fetching.cancel()

    async def _hand_on(self) -> None:
        gap_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            self._changed.clear()
            if not self._held:
                if self._closed:
                    return
                await self._changed.wait()
                continue
            number = min(self._held)
            in_turn = number == (1 if self.last_handed is None else self.last_handed + 1)
            if not in_turn and not self._closed:
                gap_since = loop.time() if gap_since is None else gap_since
                left = gap_since + self._reorder_wait - loop.time()
                if left > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), left)
                    continue
            gap_since = None
            segment, fetching = self._held.pop(number)
            self.last_handed = number
            try:
                audio = await fetching
            except AudioFetchFailed as failed:
                self._skipped(segment, str(failed))
                continue
            await self._handle(segment, audio)

    def _skipped(self, segment: AudioSegment, reason: str) -> None:
        if self._on_skipped is not None:
            self._on_skipped(segment, reason)
