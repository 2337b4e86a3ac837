"""Audio chunks back in sequence order before they reach the recognizer.

API Gateway may run two messages of one connection at the same time in different execution environments, so
``sendAudio`` chunks can be stored out of order. The sequencer releases them in ``sequenceNumber`` order:

- a connection's sequence starts where the caller expects it (``expected``: 0 for a connection new to the
  consumer, or the next after its recorded position): a later chunk waits for it as for any gap, but an expected
  start that never comes is not counted missing (chunks dropped while the broadcast was paused were never
  stored). Without an expectation, the first chunk that arrives sets the start. An earlier number that arrives
  after its place has passed is late;
- a chunk that fills the next place goes out at once, with whatever it unblocks;
- a gap waits at most :data:`REORDER_WINDOW_SECONDS` (or until :data:`MAX_HELD_CHUNKS` wait behind it), then the
  missing chunks are given up and the rest goes out in order;
- a chunk whose place has passed (late, or a duplicate) is dropped.

Each gap, late chunk and duplicate is counted, for the caller to log and publish. Pure: the caller passes the
wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass

REORDER_WINDOW_SECONDS = 0.3
MAX_HELD_CHUNKS = 50  # 5 s of 100 ms chunks


@dataclass
class SequencerCounters:
    released: int = 0
    missing: int = 0  # chunks given up after waiting for them
    late: int = 0  # arrived after their place had passed
    duplicates: int = 0


class ChunkSequencer:
    """One connection's audio chunks, released in sequence order."""

    def __init__(self, expected: int | None = None) -> None:
        self._next: int | None = expected
        self._started = expected is None  # False while the expected start has not come (nor been given up)
        self._held: dict[int, tuple[bytes, float]] = {}  # sequence -> (chunk, when it arrived)
        self.counters = SequencerCounters()

    def push(self, sequence: int, chunk: bytes, now: float) -> list[tuple[int, bytes]]:
        """Take one chunk received at ``now``; the chunks that can go on, in order."""
        if self._next is None:
            self._next = sequence
        if sequence < self._next:
            self.counters.late += 1
        elif sequence in self._held:
            self.counters.duplicates += 1
        else:
            self._held[sequence] = (chunk, now)
        return self.tick(now)

    def tick(self, now: float) -> list[tuple[int, bytes]]:
        """The chunks that can go on at ``now``: those in order, and those past a gap that waited long enough
        (a gap waits from the arrival of the oldest chunk held behind it)."""
        out = self._in_order()
        while self._held and (
            len(self._held) >= MAX_HELD_CHUNKS
            or now - min(arrived for _chunk, arrived in self._held.values()) >= REORDER_WINDOW_SECONDS
        ):
            assert self._next is not None
            resume = min(self._held)
            if self._started:
                self.counters.missing += resume - self._next
            self._next = resume
            out += self._in_order()
        return out

    def _in_order(self) -> list[tuple[int, bytes]]:
        out = []
        while self._next is not None and self._next in self._held:
            out.append((self._next, self._held.pop(self._next)[0]))
            self._next += 1
        self.counters.released += len(out)
        self._started = self._started or bool(out)
        return out

    @property
    def waiting(self) -> int:
        """Chunks held behind a gap."""
        return len(self._held)
