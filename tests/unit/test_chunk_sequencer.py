"""Audio chunks back in sequence order: reordering within a short window, then moving on past a gap."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_src.model.chunk_sequencer import MAX_HELD_CHUNKS, REORDER_WINDOW_SECONDS, ChunkSequencer


def chunk(n: int) -> bytes:
    return f"chunk-{n}".encode()


def test_chunks_in_order_go_on_at_once() -> None:
    sequencer = ChunkSequencer()
    assert sequencer.push(7, chunk(7), now=0.0) == [(7, chunk(7))]
    assert sequencer.push(8, chunk(8), now=0.1) == [(8, chunk(8))]


def test_a_chunk_that_overtook_another_waits_for_it() -> None:
    sequencer = ChunkSequencer()
    sequencer.push(1, chunk(1), now=0.0)
    assert sequencer.push(3, chunk(3), now=0.1) == []
    assert sequencer.push(2, chunk(2), now=0.2) == [(2, chunk(2)), (3, chunk(3))]
    assert sequencer.counters.missing == 0


def test_a_gap_is_given_up_after_the_reorder_window() -> None:
    sequencer = ChunkSequencer()
    sequencer.push(1, chunk(1), now=0.0)
    sequencer.push(3, chunk(3), now=1.0)
    assert sequencer.tick(1.0 + REORDER_WINDOW_SECONDS - 0.01) == []
    assert sequencer.tick(1.0 + REORDER_WINDOW_SECONDS) == [(3, chunk(3))]
    assert sequencer.counters.missing == 1
    assert sequencer.push(2, chunk(2), now=2.0) == []  # too late now
    assert sequencer.counters.late == 1


def test_a_long_backlog_behind_a_gap_does_not_wait_the_window() -> None:
    sequencer = ChunkSequencer()
    sequencer.push(0, chunk(0), now=0.0)
    released = [c for n in range(2, MAX_HELD_CHUNKS + 2) for c in sequencer.push(n, chunk(n), now=0.01)]
    assert [n for n, _c in released] == list(range(2, MAX_HELD_CHUNKS + 2))


def test_a_duplicate_is_dropped_and_counted() -> None:
    sequencer = ChunkSequencer()
    sequencer.push(1, chunk(1), now=0.0)
    sequencer.push(3, chunk(3), now=0.0)
    assert sequencer.push(3, b"again", now=0.1) == []
    assert sequencer.push(1, b"again", now=0.1) == []
    assert sequencer.counters.duplicates == 1 and sequencer.counters.late == 1
    assert sequencer.push(2, chunk(2), now=0.2) == [(2, chunk(2)), (3, chunk(3))]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_whatever_the_arrival_order_chunks_go_on_once_each_and_in_order(data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 40))
    order = data.draw(st.permutations(range(count)))
    dropped = data.draw(st.sets(st.integers(0, count - 1)))
    repeated = data.draw(st.lists(st.integers(0, count - 1), max_size=5))
    sequencer = ChunkSequencer(expected=data.draw(st.sampled_from([None, 0])))
    now = 0.0
    out: list[int] = []
    pushed = [n for n in order if n not in dropped] + repeated
    for n in pushed:
        now += data.draw(st.sampled_from([0.0, 0.05, 0.5]))
        out += [seq for seq, _c in sequencer.push(n, chunk(n), now)]
    out += [seq for seq, _c in sequencer.tick(now + 10)]
    assert out == sorted(set(out)), "in order, each once"
    assert sequencer.waiting == 0
    assert set(out) <= set(pushed)
    counters = sequencer.counters
    assert counters.released == len(out)
    # Every chunk that arrived is released, or counted as late or as a duplicate.
    assert len(pushed) == counters.released + counters.late + counters.duplicates
    # Whatever was never released in between is counted missing.
    assert counters.missing == (out[-1] - out[0] + 1 - len(out) if out else 0)


def test_a_connection_expected_from_0_waits_for_chunk_0_within_the_window() -> None:
    sequencer = ChunkSequencer(expected=0)
    assert sequencer.push(1, chunk(1), now=0.0) == []
    assert sequencer.push(0, chunk(0), now=0.1) == [(0, chunk(0)), (1, chunk(1))]
    assert sequencer.counters.missing == 0


def test_an_expected_start_that_never_comes_is_given_up_after_the_window_and_not_counted_missing() -> None:
    # (a connection whose first chunks were dropped while the broadcast was paused: they were never stored)
    sequencer = ChunkSequencer(expected=0)
    assert sequencer.push(40, chunk(40), now=0.0) == []
    assert sequencer.tick(REORDER_WINDOW_SECONDS) == [(40, chunk(40))]
    assert sequencer.counters.missing == 0
    # From there on, a gap is a gap
    sequencer.push(42, chunk(42), now=1.0)
    assert sequencer.tick(1.0 + REORDER_WINDOW_SECONDS) == [(42, chunk(42))]
    assert sequencer.counters.missing == 1
    assert sequencer.push(0, chunk(0), now=2.0) == [] and sequencer.counters.late == 1
