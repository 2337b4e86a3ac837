"""What a speaker is told without asking: ``sessionStatus`` on a notable change of its audience (the status
function, fed by the Connections stream) and periodically (each sweep); and the time fields of messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambda_src import runtime
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.connections import stream_changes
from lambda_src.app import speaker_status
from lambda_src.contract import limits, wire
from lambda_src.handlers import status, sweeper, welcome
from tests.support.helpers import DynamoDBRequests, body_of
from tests.unit.flows import OWNER, Clock, connect_with, create_session, drop, join, plain, send


def image(connection_id: str) -> dict[str, Any]:
    """The row of ``connection_id`` as a stream record carries it."""
    row = runtime.connections().get(connection_id)
    assert row is not None
    return dynamodb.serialize(row.to_item())


def inserted(*connection_ids: str) -> list[dict[str, Any]]:
    return [{"eventName": "INSERT", "dynamodb": {"NewImage": image(c)}} for c in connection_ids]


def stream_batch(records: list[dict[str, Any]]) -> dict[str, int]:
    return status.handler({"Records": records}, None)


def statuses_to(gateway: Any, speaker: str) -> list[dict[str, Any]]:
    return [m for m in gateway.messages_to(speaker) if m["type"] == "sessionStatus"]


def test_the_first_listener_and_a_large_arrival_are_pushed_to_the_speaker(tables, gateway) -> None:
    # Given a session whose first listener just joined
    session_id, speaker = create_session()
    first = join(session_id, "es")
    # When the status function gets that row's insert
    assert stream_batch(inserted(first)) == {"pushed": 1}
    # Then the speaker hears sessionStatus, a new language, with the count and the languages
    [pushed] = statuses_to(gateway, speaker)
    assert (pushed["updateReason"], pushed["listenerCount"], pushed["listenersByLanguage"]) == (
        "newLanguage",
        1,
        {"es": 1},
    )
    # And what was pushed is recorded on the session
    item = tables.session(session_id)
    assert (item["statusListenerCount"], item["statusLanguages"]) == (1, ["es"])
    # When ten more Spanish listeners arrive in one batch
    more = [join(session_id, "es") for _ in range(10)]
    assert stream_batch(inserted(*more)) == {"pushed": 1}
    # Then one push says the count changed
    assert [(s["updateReason"], s["listenerCount"]) for s in statuses_to(gateway, speaker)][1:] == [
        ("listenerCountChange", 11)
    ]


def test_a_change_of_ten_percent_or_less_pushes_nothing_and_costs_one_read(tables, gateway) -> None:
    # Given a speaker last told about 20 listeners
    session_id, speaker = create_session()
    listeners = [join(session_id, "es") for _ in range(20)]
    stream_batch(inserted(*listeners))
    gateway.clear()
    # When two more of the same language arrive (10 %)
    records = inserted(*[join(session_id, "es") for _ in range(2)])
    with DynamoDBRequests() as requests:
        assert stream_batch(records) == {"pushed": 0}
    # Then nothing is posted, and the batch cost one read of the session
    assert statuses_to(gateway, speaker) == []
    assert requests.by_operation == {"GetItem": 1}
    # But a third (15 % since the last push) is pushed
    assert stream_batch(inserted(join(session_id, "es"))) == {"pushed": 1}
    assert [s["listenerCount"] for s in statuses_to(gateway, speaker)] == [23]


def test_a_new_language_is_pushed_however_small_the_change(tables, gateway) -> None:
    session_id, speaker = create_session()
    stream_batch(inserted(*[join(session_id, "es") for _ in range(30)]))
    gateway.clear()
    stream_batch(inserted(join(session_id, "de")))
    assert [(s["updateReason"], s["listenersByLanguage"]) for s in statuses_to(gateway, speaker)] == [
        ("newLanguage", {"de": 1, "es": 30})
    ]


def test_a_departure_is_known_by_the_removed_rows_old_image(tables, gateway) -> None:
    # Given a speaker told about its one listener
    session_id, speaker = create_session()
    listener = join(session_id, "es")
    stream_batch(inserted(listener))
    gateway.clear()
    old = image(listener)
    # When the listener disconnects, and its removal reaches the status function with the old image only
    drop(listener)
    removal = {"eventName": "REMOVE", "dynamodb": {"Keys": {"connectionId": old["connectionId"]}, "OldImage": old}}
    assert stream_batch([removal]) == {"pushed": 1}
    # Then the speaker hears the count fell to zero
    assert [(s["updateReason"], s["listenerCount"]) for s in statuses_to(gateway, speaker)] == [
        ("listenerCountChange", 0)
    ]


def test_row_changes_that_leave_the_audience_alone_are_no_change() -> None:
    listener = {"connectionId": {"S": "c"}, "role": {"S": "listener"}, "sessionId": {"S": "s"}}
    listener["targetLanguage"] = {"S": "es"}
    notified = {**listener, "refreshNotified": {"BOOL": True}}
    speaker = {"connectionId": {"S": "d"}, "role": {"S": "speaker"}, "sessionId": {"S": "s"}}
    records = [
        {"eventName": "MODIFY", "dynamodb": {"OldImage": listener, "NewImage": notified}},
        {"eventName": "INSERT", "dynamodb": {"NewImage": speaker}},
    ]
    assert speaker_status.listener_changes(stream_changes({"Records": records})) == {}
    switched = {**listener, "targetLanguage": {"S": "fr"}}
    switch = {"eventName": "MODIFY", "dynamodb": {"OldImage": listener, "NewImage": switched}}
    assert speaker_status.listener_changes(stream_changes({"Records": [switch]})) == {"s": {"fr"}}


def test_a_dropped_or_ended_speaker_is_not_pushed_to(tables, gateway) -> None:
    # Given a session whose speaker dropped, and an ended one
    dropped_session, dropped = create_session()
    drop(dropped)
    ended_session, ender = create_session()
    send({"action": "endSession"}, ender)
    gateway.clear()
    # When listener changes of both reach the status function (rows as they were)
    for session_id in (dropped_session, ended_session):
        records = [
            {
                "eventName": "INSERT",
                "dynamodb": {
                    "NewImage": dynamodb.serialize(
                        {"connectionId": "x-" + session_id, "role": "listener", "sessionId": session_id}
                        | {"targetLanguage": "es"}
                    )
                },
            }
        ]
        assert stream_batch(records) == {"pushed": 0}
    # Then nobody is told anything, and nothing is recorded
    assert gateway.posts() == []
    assert "statusPushedAt" not in tables.session(dropped_session)


def test_two_batches_of_one_session_never_push_the_same_change_twice(tables, gateway, monkeypatch) -> None:
    # Given a listener whose arrival two batches (two shards) handle at once: both read the session first
    session_id, speaker = create_session()
    listener = join(session_id, "es")
    sessions = runtime.sessions()
    read = sessions.get(session_id, None)
    assert read is not None
    # When one records its push, the other's record (from the same read) is refused
    first = speaker_status.PushedStatus(1, frozenset({"es"}), 1)
    assert sessions.record_status_push(read, first) is True
    assert sessions.record_status_push(read, first) is False
    # And a batch after the push finds nothing new to say
    assert stream_batch(inserted(listener)) == {"pushed": 0}
    assert statuses_to(gateway, speaker) == []


@pytest.mark.parametrize("why", ["newLanguage", "periodic", "requested"])
def test_a_status_counts_the_listeners_its_languages_count_while_listeners_join(
    tables, gateway, monkeypatch, why: str
) -> None:
    # (Regression: the count came from the session's counter and the languages from the listener index, two
    # reads taken at different moments: a push while 40 listeners joined at once said listenerCount 38 and
    # listenersByLanguage {"fr": 40}.)
    # Given 38 French listeners of a settled speaker
    clock = Clock.install(monkeypatch)
    session_id, speaker = create_session()
    early = [join(session_id, "fr") for _ in range(38)]
    clock.advance(limits.SPEAKER_SETTLE_SECONDS)
    gateway.clear()
    # And two more joining after the session is read, before its listeners are (the index sees all 40)
    connections = runtime.connections()
    read_listeners = connections.listener_pages
    late: list[str] = []

    def two_more_join_first(*args: Any, **kwargs: Any) -> Any:
        if not late:
            late.extend(join(session_id, "fr") for _ in range(2))
        return read_listeners(*args, **kwargs)

    monkeypatch.setattr(connections, "listener_pages", two_more_join_first)
    # When the speaker is told its status (a change push, the periodic one, or the reply to its request)
    if why == "newLanguage":
        assert stream_batch(inserted(*early)) == {"pushed": 1}
        [told] = statuses_to(gateway, speaker)
    elif why == "periodic":
        sweeper.handler({"source": "aws.events"}, None)
        [told] = statuses_to(gateway, speaker)
    else:
        told = body_of(send({"action": "getSessionStatus"}, speaker))
    # Then the count is the listeners its languages count, as of one moment
    assert told["updateReason"] == why
    assert len(late) == 2
    assert told["listenerCount"] == sum(told["listenersByLanguage"].values()), told
    assert told["listenersByLanguage"] == {"fr": 40}
    # And a change push records the count it told
    if why == "newLanguage":
        assert tables.session(session_id)["statusListenerCount"] == 40


def test_every_sweep_pushes_a_periodic_status_to_each_connected_speaker(tables, gateway, monkeypatch) -> None:
    # Given a session with listeners and a connected speaker, and one whose speaker dropped, a while ago
    clock = Clock.install(monkeypatch)
    session_id, speaker = create_session()
    join(session_id, "es"), join(session_id, "de")
    _other, dropped = create_session()
    drop(dropped)
    gateway.clear()
    clock.advance(limits.SPEAKER_SETTLE_SECONDS)
    # When the sweeper runs
    sweeper.handler({"source": "aws.events"}, None)
    # Then the connected speaker hears its status (periodic), the dropped one nothing
    [periodic] = statuses_to(gateway, speaker)
    assert (periodic["updateReason"], periodic["listenerCount"], periodic["listenersByLanguage"]) == (
        "periodic",
        2,
        {"de": 1, "es": 1},
    )
    assert [target for target, _message in gateway.posts()] == [speaker]
    assert limits.STATUS_PERIODIC_SECONDS <= 60


def test_no_periodic_status_overtakes_a_new_speaker_connections_welcome(tables, gateway, monkeypatch) -> None:
    # (Regression: a sweep between a speaker's handshake and its welcome pushed sessionStatus first, so the
    # speaker app's first message was not sessionCreated / connectionRefreshComplete.)
    # Given a settled speaker, a speaker that refreshed its connection just now, and a session created just now
    clock = Clock.install(monkeypatch)
    _settled_id, settled = create_session()
    refreshed_id, before = create_session()
    clock.advance(limits.SPEAKER_SETTLE_SECONDS)
    refreshed, response = connect_with(
        {"action": "refreshConnection", "sessionId": refreshed_id, "role": "speaker"}, user_id=OWNER
    )
    assert response["statusCode"] == 200, response
    _new_id, creator = create_session()
    gateway.clear()
    # When the sweeper runs within the settling time of the new connections
    clock.advance(limits.SPEAKER_SETTLE_SECONDS - 1)
    sweeper.handler({"source": "aws.events"}, None)
    # Then only the settled speaker is pushed to
    assert [target for target, _message in gateway.posts()] == [settled]
    # And once the new connections have settled, they are pushed to as well (the refreshed one, not its old one)
    gateway.clear()
    clock.advance(1)
    sweeper.handler({"source": "aws.events"}, None)
    assert sorted(target for target, _message in gateway.posts()) == sorted([settled, refreshed, creator])
    assert before != refreshed


def test_get_session_status_is_the_requested_update(tables, gateway) -> None:
    _session_id, speaker = create_session()
    assert body_of(send({"action": "getSessionStatus"}, speaker))["updateReason"] == "requested"


def test_every_time_in_the_speakers_messages_is_epoch_milliseconds(tables, gateway) -> None:
    # (Regression: sessionStatus.expiresAt was in epoch seconds.)
    session_id, speaker = create_session()
    expires_at_s = int(tables.session(session_id)["expiresAt"])
    status_reply = body_of(send({"action": "getSessionStatus"}, speaker))
    connection = runtime.connections().get(speaker)
    assert connection is not None and connection.welcome is not None
    created = json.loads(connection.welcome)
    assert status_reply["expiresAt"] == created["expiresAt"] == expires_at_s * 1000
    assert created["timestamp"] < created["expiresAt"]
    assert abs(status_reply["createdAt"] - status_reply["timestamp"]) < 60_000


def test_session_joined_by_message_counts_the_listener_in_and_names_the_tier(tables, gateway) -> None:
    # Given a premium session with one listener
    session_id, _speaker = create_session(qualityTier="premium")
    join(session_id, "es")
    # When a plain connection joins it by message
    joined = body_of(send({"action": "joinSession", "sessionId": session_id, "targetLanguage": "de"}, plain()))
    # Then the reply counts it in and names the tier
    assert (joined["type"], joined["listenerCount"], joined["qualityTier"]) == ("sessionJoined", 2, "premium")


def test_the_welcome_function_fills_in_each_joined_listeners_count_with_one_read(tables, gateway) -> None:
    # Given two listeners who joined on $connect: their stored sessionJoined has no count yet
    session_id, speaker = create_session()
    listeners = [join(session_id, "es"), join(session_id, "de")]
    assert all(wire.LISTENER_COUNT not in json.loads(image(c)["welcome"]["S"]) for c in listeners)
    # When the welcome function delivers both first messages and the speaker's in one batch
    records = inserted(speaker, *listeners)
    with DynamoDBRequests() as requests:
        welcome.handler({"Records": records}, None)
    # Then each sessionJoined carries the session's count, read once for the batch; sessionCreated is as stored
    assert [gateway.messages_to(c)[0]["listenerCount"] for c in listeners] == [2, 2]
    assert wire.LISTENER_COUNT not in gateway.messages_to(speaker)[0]
    assert requests.by_operation == {"BatchGetItem": 1}
