"""What the sweeper guarantees when something in between fails: an ended session's listeners are dismissed
even when the ending call could not reach them, a listener whose handshake is still completing is never
taken for gone, a committed ``$connect`` is never refused afterwards, and a listener whose ``$disconnect``
was lost is counted out within the reconciliation period at a bounded cost.

Through the real handlers, on moto, with the recording ``@connections`` fake (``gateway``) and a fixed
clock; DynamoDB faults are injected where moto answers (see ``test_faults``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from moto.core.botocore_stubber import BotocoreStubber

from lambda_src import runtime
from lambda_src.adapters.repositories.connections import ROW_LIFETIME_SECONDS, ConnectionsRepository
from lambda_src.app import sweeper as app_sweeper
from lambda_src.contract import limits
from lambda_src.handlers import sweeper
from lambda_src.platform import metrics
from tests.support.helpers import DynamoDBRequests, body_of
from tests.unit.flows import (
    OWNER,
    Clock,
    connect_with,
    create_session,
    deliver_disconnects,
    drop,
    handshake_done_ms,
    join,
    plain,
    send,
)
from tests.unit.test_faults import (  # noqa: F401 (fixtures: faults; sleeps is autouse)
    QUERY,
    THROTTLED,
    TRANSACT,
    _operation,
    assert_counts_match_rows,
    faults,
    sleeps,
)

GRACE = limits.DEFAULT_SPEAKER_GRACE_SECONDS
INTERVAL = limits.SWEEP_INTERVAL_SECONDS
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock.install(monkeypatch)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """SessionsEnded (by reason) and ListenersLeft, as the code counts them."""
    seen: dict[str, list[Any]] = {"ended": [], "left": []}
    monkeypatch.setattr(metrics, "session_ended", seen["ended"].append)
    monkeypatch.setattr(metrics, "listener_left", lambda: seen["left"].append(1))
    return seen


@pytest.fixture
def lost_replies(tables, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """DynamoDB operations (append their names) whose next request is applied but whose reply never comes
    back (a read timeout after the write), as when a reply is lost in the network."""
    pending: list[str] = []
    answer = BotocoreStubber.process_request

    def process_request(stubber: BotocoreStubber, request: Any) -> Any:
        response = answer(stubber, request)  # moto applies the request here
        operation = _operation(request)
        if operation in pending:
            pending.remove(operation)
            raise ReadTimeoutError(endpoint_url=request.url)
        return response

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
    return pending


def run_sweeper() -> dict:
    return sweeper.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)


def dropped_session_due(clock: Clock, *languages: str) -> tuple[str, list[str]]:
    """A session whose speaker dropped and whose resume window is over; (id, listener ids)."""
    session_id, speaker = create_session()
    listeners = [join(session_id, language) for language in languages]
    assert drop(speaker)["statusCode"] == 200
    clock.advance(GRACE + 1)
    return session_id, listeners


def sweep_every_minute(clock: Clock, sweeps: int) -> None:
    for _ in range(sweeps):
        clock.advance(INTERVAL)
        assert run_sweeper()["ended"] == 0


# --- 1. an ended session's listeners are dismissed, whatever failed in between ------------------------


def test_a_sweep_whose_end_write_was_applied_but_whose_reply_was_lost_still_counts_and_dismisses(
    tables, gateway, clock, counted, lost_replies
) -> None:
    # (Regression: the repeat of the applied end write failed its condition and end_if_due reported the
    # session "no longer due": never counted, listeners never told, and out of the sweeper's index.)
    # Given a due session with a listener, and the end write's reply lost after DynamoDB applied it
    session_id, [listener] = dropped_session_due(clock, "es")
    gateway.clear()
    lost_replies.append(TRANSACT)
    # When the sweeper runs
    result = run_sweeper()
    # Then the ending is this sweep's: counted once, the listener told and closed right away
    assert not lost_replies, "the reply was not lost"
    assert result == {"ended": 1}
    assert counted["ended"] == ["speakerTimeout"]
    assert gateway.types_to(listener) == ["sessionEnded"]
    assert gateway.closed() == [listener]
    assert tables.session(session_id)["isActive"] is False


def test_an_end_session_whose_write_was_applied_but_whose_reply_was_lost_is_counted_once(
    tables, gateway, clock, counted, lost_replies
) -> None:
    # (Regression: the speaker got sessionEnded, but SessionsEnded was never counted.)
    session_id, speaker = create_session()
    listener = join(session_id)
    lost_replies.append(TRANSACT)
    response = send({"action": "endSession"}, speaker)
    assert not lost_replies, "the reply was not lost"
    assert body_of(response)["type"] == "sessionEnded"
    assert counted["ended"] == ["endedBySpeaker"]
    assert gateway.types_to(listener) == ["sessionEnded"]


def test_listeners_the_sweeper_could_not_reach_when_it_ended_the_session_are_dismissed_by_a_later_sweep(
    tables,
    gateway,
    clock,
    faults,  # noqa: F811 - pytest injects the faults fixture imported above
) -> None:
    # (Regression: once ended, the session left the sweeper's index; its listeners stayed attached to a
    # dead session with no sessionEnded until their connections' 2-hour limit.)
    # Given a due session with two listeners, and the listener index unreadable while the sweeper ends it
    session_id, listeners = dropped_session_due(clock, "es", "de")
    gateway.clear()
    faults.always(QUERY, THROTTLED)
    with faults.active():
        run_sweeper()
    faults.reset()
    assert tables.session(session_id)["isActive"] is False
    assert gateway.posts() == []
    # When the sweeper runs again a sweep interval later, the store recovered
    clock.advance(INTERVAL)
    run_sweeper()
    # Then every listener is told and closed
    for listener in listeners:
        assert gateway.types_to(listener) == ["sessionEnded"]
    assert sorted(gateway.closed()) == sorted(listeners)
    # And once their $disconnects came, the next sweep finds nobody and takes the session out of its index
    deliver_disconnects(gateway.closed())
    gateway.clear()
    clock.advance(INTERVAL)
    run_sweeper()
    item = tables.session(session_id)
    assert "sweepAt" not in item and item["listenerCount"] == 0
    assert gateway.posts() == []
    assert_counts_match_rows(tables)


def test_listeners_an_end_session_could_not_reach_are_dismissed_by_the_sweeper_without_a_retry(
    tables,
    gateway,
    clock,
    faults,  # noqa: F811 - pytest injects the faults fixture imported above
) -> None:
    # Given a session ended by its speaker while the listener index was unreadable, never ended again
    session_id, speaker = create_session()
    listener = join(session_id)
    runtime.reset()
    faults.always(QUERY, THROTTLED)
    with faults.active():
        send({"action": "endSession"}, speaker)
    faults.reset()
    assert tables.session(session_id)["isActive"] is False
    assert gateway.types_to(listener) == []
    # When the sweeper runs a sweep interval later
    clock.advance(INTERVAL)
    run_sweeper()
    # Then the listener is told and closed, with the session's own end reason
    assert [message["reason"] for message in gateway.messages_to(listener)] == ["endedBySpeaker"]
    assert gateway.closed() == [listener]


def test_an_ended_session_stops_coming_due_once_its_listener_rows_have_outlived_their_lifetime(
    tables, gateway, clock
) -> None:
    # Given an ended session whose listener is told and closed on every sweep but whose $disconnect never
    # comes (its row stays)
    session_id, speaker = create_session()
    listener = join(session_id)
    send({"action": "endSession"}, speaker)
    clock.advance(INTERVAL)
    run_sweeper()
    assert tables.session(session_id)["sweepAt"] == clock.now_s + INTERVAL  # looked at again
    # When the sweeper finds it due after the rows' own lifetime since the end
    clock.advance(ROW_LIFETIME_SECONDS)
    gateway.clear()
    run_sweeper()
    # Then it dismisses once more and takes the session out of its index (nothing loops forever)
    assert gateway.types_to(listener) == ["sessionEnded"]
    assert "sweepAt" not in tables.session(session_id)


# --- 2. a 410 during the handshake is not proof that a listener is gone ---------------------------------


def test_a_listener_answering_410_within_its_handshake_window_is_not_counted_out(
    tables, gateway, clock, counted
) -> None:
    # (Regression: the fan-out took every 410 as gone: the row was deleted and counted out, then the
    # handshake completed and the listener was told sessionJoined, attached to nothing.)
    # Given a listener whose handshake has not completed (@connections answers 410 for it)
    session_id, speaker = create_session()
    listener = join(session_id)
    gateway.gone.add(listener)
    # When the speaker drops and the listeners are told
    assert drop(speaker)["statusCode"] == 200
    # Then the listener is still in the session and counted
    assert tables.connection(listener) is not None
    assert tables.session(session_id)["listenerCount"] == 1
    assert counted["left"] == []
    # And once its handshake completed, the session's later notices reach it
    gateway.gone.discard(listener)
    _resumed, response = connect_with({"action": "resumeSession", "sessionId": session_id}, user_id=OWNER)
    assert response["statusCode"] == 200
    assert gateway.types_to(listener) == ["speakerReconnected"]


def test_a_young_listener_of_an_ended_session_is_dismissed_by_the_next_sweep(tables, gateway, clock, counted) -> None:
    # (Regression: the young listener was counted out at the end and never heard sessionEnded.)
    # Given a session ended by its speaker while a listener's handshake was still completing
    session_id, speaker = create_session()
    listener = join(session_id)
    gateway.gone.add(listener)
    assert body_of(send({"action": "endSession"}, speaker))["type"] == "sessionEnded"
    assert tables.connection(listener) is not None
    # When its handshake completes and the sweeper runs a sweep interval later
    gateway.gone.discard(listener)
    clock.advance(INTERVAL)
    run_sweeper()
    # Then it is told and closed, and its $disconnect counts it out once
    assert gateway.types_to(listener) == ["sessionEnded"]
    assert gateway.closed() == [listener]
    deliver_disconnects(gateway.closed())
    assert tables.session(session_id)["listenerCount"] == 0
    assert counted["left"] == [1]


def test_a_410_from_a_listener_past_its_handshake_window_is_counted_out_once(tables, gateway, clock, counted) -> None:
    session_id, speaker = create_session()
    vanished = join(session_id, connected_at_ms=handshake_done_ms())
    gateway.gone.add(vanished)
    assert drop(speaker)["statusCode"] == 200
    assert tables.connection(vanished) is None
    assert tables.session(session_id)["listenerCount"] == 0
    assert drop(vanished)["statusCode"] == 200  # its late $disconnect counts nobody twice
    assert counted["left"] == [1]


def test_a_410_from_a_listener_that_joined_by_message_is_counted_out_at_once(tables, gateway, clock, counted) -> None:
    # Given a listener that joined by a message (so its handshake had completed), whose connection vanished
    session_id, speaker = create_session()
    listener = plain()
    assert (
        body_of(send({"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}, listener))["type"]
        == "sessionJoined"
    )
    gateway.gone.add(listener)
    # When the speaker drops and the listeners are told, however young the connection
    assert drop(speaker)["statusCode"] == 200
    # Then it is counted out right away
    assert tables.connection(listener) is None
    assert counted["left"] == [1]


# --- 3. after a $connect commit, nothing refuses the handshake -------------------------------------------


def test_a_resume_whose_listener_notice_fails_still_opens_the_connection(tables, gateway, clock, faults) -> None:  # noqa: F811 - pytest injects the faults fixture imported above
    # (Regression: the takeover was committed, then a throttled listener query answered the handshake 503;
    # no $disconnect ever came, so the session showed a speaker connection that did not exist.)
    session_id, speaker = create_session()
    join(session_id)
    assert drop(speaker)["statusCode"] == 200
    runtime.reset()
    faults.always(QUERY, THROTTLED)
    with faults.active():
        resumed, response = connect_with({"action": "resumeSession", "sessionId": session_id}, user_id=OWNER)
    assert response["statusCode"] == 200, response
    item = tables.session(session_id)
    assert item["speakerConnectionId"] == resumed and "speakerGraceEndsAt" not in item


def test_a_speaker_drop_whose_listener_notice_fails_still_opens_the_resume_window(
    tables,
    gateway,
    clock,
    faults,  # noqa: F811 - pytest injects the faults fixture imported above
) -> None:
    session_id, speaker = create_session()
    join(session_id)
    runtime.reset()
    faults.always(QUERY, THROTTLED)
    with faults.active():
        response = drop(speaker)
    assert response["statusCode"] == 200, response
    assert tables.session(session_id)["speakerGraceEndsAt"] == clock.now_s + GRACE


# --- lost $disconnects: the sweeper's reconciliation ----------------------------------------------------


def test_a_listener_whose_disconnect_was_lost_is_counted_out_within_the_reconcile_period(
    tables, gateway, clock, counted
) -> None:
    # (Regression: without a notice to its session, such a row and its count stayed until the row's TTL.)
    # Given a live session with a present listener and one whose connection vanished without $disconnect
    session_id, speaker = create_session()
    present, vanished = join(session_id, "es"), join(session_id, "de")
    gateway.gone.add(vanished)
    # When the sweeper runs once a minute for a reconciliation period, nothing else happening
    sweep_every_minute(clock, limits.RECONCILE_PERIOD_MINUTES // limits.SWEEP_INTERVAL_MINUTES)
    # Then the vanished listener is counted out once and forgotten; the present one is untouched
    assert tables.connection(vanished) is None
    assert tables.session(session_id)["listenerCount"] == 1
    assert counted["left"] == [1]
    assert tables.connection(present) is not None
    # (the speaker alone hears something: its periodic status)
    assert {(target, message["updateReason"]) for target, message in gateway.posts()} == {(speaker, "periodic")}
    assert gateway.closed() == []
    # And its late $disconnect, should it ever come, counts nobody twice
    assert drop(vanished)["statusCode"] == 200
    assert counted["left"] == [1]
    assert_counts_match_rows(tables)


def test_reconciliation_asks_about_each_listener_once_per_period_and_writes_nothing_when_all_are_there(
    tables, gateway, clock
) -> None:
    # Given several live sessions with listeners, all connected
    created = [create_session(f"speaker-{index}") for index in range(6)]  # one each: at most 3 active per speaker
    sessions = [session_id for session_id, _speaker in created]
    listeners = {session_id: [join(session_id, "es"), join(session_id, "de")] for session_id in sessions}
    runtime.reset()
    # When the sweeper runs once a minute for a reconciliation period
    sweeps = limits.RECONCILE_PERIOD_MINUTES // limits.SWEEP_INTERVAL_MINUTES
    with DynamoDBRequests() as requests:
        sweep_every_minute(clock, sweeps)
    # Then each listener was asked about exactly once, each session's listeners read with one index query for
    # the probe (and one a sweep for its speaker's periodic status)
    asked = gateway.asked_about()
    assert sorted(asked) == sorted(c for ids in listeners.values() for c in ids)
    assert requests.by_operation.get("Query") == len(sessions) + len(sessions) * sweeps
    # And nothing was written; only the speakers were told something (their periodic status)
    assert not WRITES & set(requests.by_operation), requests.by_operation
    assert {(target, message["updateReason"]) for target, message in gateway.posts()} == {
        (speaker, "periodic") for _session_id, speaker in created
    }
    assert gateway.closed() == []


def test_reconciliation_leaves_a_listener_in_its_handshake_window_alone(tables, gateway, clock, counted) -> None:
    # Given a listener whose handshake has not completed, in a session the sweeper probes now
    session_id, _speaker = create_session()
    listener = join(session_id)
    gateway.gone.add(listener)
    # When its session's listeners are probed
    app_sweeper._probe_listeners(session_id)
    # Then it is neither forgotten nor counted out
    assert tables.connection(listener) is not None
    assert tables.session(session_id)["listenerCount"] == 1
    assert counted["left"] == []


def test_one_sessions_failed_probe_does_not_keep_the_others_from_being_reconciled(
    tables, gateway, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two sessions, each with a listener whose $disconnect was lost; one's listener index unreadable
    first, _ = create_session()
    second, _ = create_session()
    vanished = {first: join(first), second: join(second)}
    gateway.gone.update(vanished.values())
    pages = ConnectionsRepository.listener_pages

    def failing_pages(self: ConnectionsRepository, session_id: str) -> Iterator[list[tuple[str, str]]]:
        if session_id == first:
            raise RuntimeError("index read failed")
        return pages(self, session_id)

    monkeypatch.setattr(ConnectionsRepository, "listener_pages", failing_pages)
    # When the sweeper runs for a reconciliation period
    sweep_every_minute(clock, limits.RECONCILE_PERIOD_MINUTES // limits.SWEEP_INTERVAL_MINUTES)
    # Then the other session's vanished listener was counted out
    assert tables.connection(vanished[second]) is None
    assert tables.session(second)["listenerCount"] == 0
    assert tables.connection(vanished[first]) is not None


def test_a_sweep_short_of_time_ends_due_sessions_but_starts_no_probe(
    tables, gateway, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a due session, and live sessions with listeners, all of them in this sweep's share
    due_session, [due_listener] = dropped_session_due(clock, "es")
    live_listeners = [join(create_session(f"speaker-{index}")[0]) for index in range(3)]
    monkeypatch.setattr(app_sweeper, "reconcile_round", lambda _id: app_sweeper.reconcile_round_at(clock.now_s))
    gateway.clear()
    # When a sweep runs with less time left than the reserve
    ended = app_sweeper.sweep(clock.now_ms, time_left=lambda: limits.RECONCILE_RESERVE_SECONDS - 1)
    # Then the due session ended and its listener was dismissed, but nobody was asked about
    assert ended == [(due_session, "speakerTimeout")]
    assert gateway.types_to(due_listener) == ["sessionEnded"]
    assert gateway.asked_about() == []
    # While a sweep with time to spare asks about every listener of its share
    app_sweeper.sweep(clock.now_ms, time_left=lambda: limits.RECONCILE_RESERVE_SECONDS + 30)
    assert set(live_listeners) <= set(gateway.asked_about())
