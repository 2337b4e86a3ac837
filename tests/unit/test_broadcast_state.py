"""The speaker's broadcast state: pause, resume, mute, unmute, volume and ``speakerStateChange``, stored on the
session, echoed to the speaker, told to listeners only when it changed, reported by ``getSessionStatus``, restored
on a speaker's new connection and read by the downstream reader."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from lambda_src import runtime
from lambda_src.adapters.repositories.connections import Connection
from lambda_src.app import welcome as app_welcome
from lambda_src.contract.schema import ROLE_SPEAKER
from lambda_src.downstream import read_session_settings
from lambda_src.handlers import welcome
from lambda_src.model.broadcast import BroadcastState
from lambda_src.model.partial_results import PartialResultConfig
from lambda_src.protocol import messages
from tests.support.helpers import DynamoDBRequests, body_of
from tests.unit.flows import OWNER, SESSION_ID, connect_with, error_of, join, plain, send

SPEAKER = "speaker-conn"  # put_session's default speakerConnectionId

# Each simple action, the state it leaves from a new session's, and the notice listeners get.
SIMPLE_ACTIONS = {
    "pauseBroadcast": ({"isPaused": True}, "broadcastPaused"),
    "muteBroadcast": ({"isMuted": True}, "broadcastMuted"),
}
# The opposite actions, from a paused and muted session.
UNDOING_ACTIONS = {
    "resumeBroadcast": ({"isPaused": False}, "broadcastResumed"),
    "unmuteBroadcast": ({"isMuted": False}, "broadcastUnmuted"),
}
NEW_STATE = {"isPaused": False, "isMuted": False, "volume": 1.0}


@pytest.fixture
def session(tables, gateway):
    """A live session (speaker ``speaker-conn``) with two listeners in different languages; their ids."""
    put_speakers_session(tables)
    return join(language="es"), join(language="fr")


def put_speakers_session(tables, **overrides) -> None:
    """A session item (speaker ``speaker-conn``, owner ``user-1``) and its speaker's connection row."""
    tables.put_session(sessionId=SESSION_ID, speakerConnectionId=SPEAKER, **overrides)
    runtime.connections().put(
        Connection(SPEAKER, messages.now_ms(), role=ROLE_SPEAKER, user_id=OWNER, session_id=SESSION_ID)
    )


def state_of(tables) -> dict:
    item = tables.session(SESSION_ID)
    return {name: item[name] for name in ("isPaused", "isMuted", "volume") if name in item}


def reply(body: dict, connection_id: str = SPEAKER) -> dict:
    return body_of(send(body, connection_id))


@pytest.mark.parametrize("action", sorted(SIMPLE_ACTIONS))
def test_a_broadcast_action_is_stored_echoed_and_told_to_each_listener_once(session, tables, gateway, action) -> None:
    changed, notice = SIMPLE_ACTIONS[action]
    # When the speaker acts
    answer = reply({"action": action})
    # Then it is stored, the speaker gets the whole state, and each listener is told once
    assert answer["type"] == "broadcastState"
    assert {k: answer[k] for k in NEW_STATE} == {**NEW_STATE, **changed}
    assert answer["sessionId"] == SESSION_ID
    for name, value in changed.items():
        assert state_of(tables)[name] is value
    for listener in session:
        assert gateway.types_to(listener) == [notice]
        assert gateway.messages_to(listener)[0]["sessionId"] == SESSION_ID
    assert gateway.types_to(SPEAKER) == []  # the speaker's answer is the route response


@pytest.mark.parametrize("action", sorted(UNDOING_ACTIONS))
def test_resume_and_unmute_undo_pause_and_mute(session, tables, gateway, action) -> None:
    changed, notice = UNDOING_ACTIONS[action]
    assert reply({"action": "speakerStateChange", "state": {"isPaused": True, "isMuted": True}})["isPaused"] is True
    gateway.clear()
    answer = reply({"action": action})
    expected = {"isPaused": True, "isMuted": True, "volume": 1.0, **changed}
    assert {k: answer[k] for k in NEW_STATE} == expected
    assert [gateway.types_to(listener) for listener in session] == [[notice], [notice]]


@pytest.mark.parametrize("action", [*SIMPLE_ACTIONS, "resumeBroadcast", "unmuteBroadcast"])
def test_an_action_that_changes_nothing_tells_no_listener_but_still_answers_the_speaker(
    session, gateway, action
) -> None:
    # Given the state the action would leave (a new session is playing and unmuted already)
    if action in SIMPLE_ACTIONS:
        reply({"action": action})
    gateway.clear()
    # When the speaker repeats it
    with DynamoDBRequests() as requests:
        answer = reply({"action": action, "sessionId": SESSION_ID})
    # Then the speaker gets the state, nobody else hears anything, and the write alone was made
    assert answer["type"] == "broadcastState"
    assert gateway.posts() == []
    assert requests.by_operation == {"UpdateItem": 1}


def test_set_volume_stores_the_exact_level_and_tells_listeners_the_level(session, tables, gateway) -> None:
    answer = reply({"action": "setVolume", "volumeLevel": 0.35})
    assert answer["volume"] == 0.35
    assert state_of(tables)["volume"] == Decimal("0.35")
    for listener in session:
        (notice,) = gateway.messages_to(listener)
        assert (notice["type"], notice["volumeLevel"]) == ("volumeChanged", 0.35)
    # The same level again tells nobody
    gateway.clear()
    assert reply({"action": "setVolume", "volumeLevel": "0.350"})["volume"] == 0.35
    assert gateway.posts() == []


@pytest.mark.parametrize("level", [0, "0.0", 1, "1", "1.0", 0.5, "0.25"])
def test_set_volume_accepts_numbers_and_decimal_strings_bounds_inclusive(session, tables, level) -> None:
    answer = reply({"action": "setVolume", "volumeLevel": level})
    assert answer["type"] == "broadcastState"
    assert state_of(tables)["volume"] == Decimal(str(level))


def test_volume_zero_is_silent_for_the_audio_path_but_reported_as_a_level(session, tables) -> None:
    answer = reply({"action": "setVolume", "volumeLevel": 0})
    assert (answer["volume"], answer["isMuted"]) == (0.0, False)
    settings = read_session_settings(SESSION_ID)
    assert settings is not None
    assert settings.broadcast.volume == 0
    assert settings.broadcast.forwards_audio is False


@pytest.mark.parametrize(
    "level", [-0.01, 1.01, "1.5", "NaN", "Infinity", "-inf", True, False, "", " 0.5", None, [], {}, "0x1", "1" * 39]
)
def test_set_volume_refuses_what_is_not_a_level_and_writes_nothing(session, tables, gateway, level) -> None:
    response = send({"action": "setVolume", "volumeLevel": level}, SPEAKER)
    assert error_of(response) == (400, "INVALID_PARAMETERS")
    assert body_of(response)["field"] == "volumeLevel"
    assert state_of(tables) == {}
    assert gateway.posts() == []


def test_set_volume_without_a_level_is_refused(session, tables) -> None:
    response = send({"action": "setVolume"}, SPEAKER)
    assert error_of(response) == (400, "INVALID_PARAMETERS")
    assert body_of(response)["field"] == "volumeLevel"
    assert state_of(tables) == {}


def test_speaker_state_change_sets_several_fields_at_once_and_tells_the_whole_state(session, tables, gateway) -> None:
    answer = reply({"action": "speakerStateChange", "state": {"isMuted": True, "volume": "0.5"}})
    expected = {"isPaused": False, "isMuted": True, "volume": 0.5}
    assert {k: answer[k] for k in NEW_STATE} == expected
    assert state_of(tables) == {"isMuted": True, "volume": Decimal("0.5")}
    for listener in session:
        (notice,) = gateway.messages_to(listener)
        assert notice["type"] == "speakerStateChanged"
        assert {k: notice[k] for k in NEW_STATE} == expected
    # The same state again changes nothing and tells nobody
    gateway.clear()
    assert reply({"action": "speakerStateChange", "state": {"isMuted": True}})["type"] == "broadcastState"
    assert gateway.posts() == []


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({}, "state"),
        (None, "state"),
        ([], "state"),
        ("paused", "state"),
        ({"isPaused": "true"}, "state.isPaused"),
        ({"isPaused": 1}, "state.isPaused"),
        ({"isMuted": None}, "state.isMuted"),
        ({"volume": 2}, "state.volume"),
        ({"volume": True}, "state.volume"),
        ({"volume": "NaN"}, "state.volume"),
        ({"isPaused": True, "loud": True}, "state.loud"),
    ],
)
def test_speaker_state_change_refuses_a_bad_state_and_writes_nothing(session, tables, gateway, state, field) -> None:
    body = {"action": "speakerStateChange"} if state is None else {"action": "speakerStateChange", "state": state}
    response = send(body, SPEAKER)
    assert error_of(response) == (400, "INVALID_PARAMETERS")
    assert body_of(response)["field"] == field
    assert state_of(tables) == {}
    assert gateway.posts() == []


BROADCAST_ACTIONS = [
    {"action": "pauseBroadcast"},
    {"action": "resumeBroadcast"},
    {"action": "muteBroadcast"},
    {"action": "unmuteBroadcast"},
    {"action": "setVolume", "volumeLevel": 0.5},
    {"action": "speakerStateChange", "state": {"isPaused": True}},
]


@pytest.mark.parametrize("body", BROADCAST_ACTIONS, ids=lambda body: body["action"])
def test_only_the_sessions_speaker_may_change_the_broadcast(session, tables, gateway, body) -> None:
    listener, _ = session
    # A listener, a plain connection, and a speaker naming another's session are all refused
    assert error_of(send(body, listener)) == (403, "FORBIDDEN")
    assert error_of(send(body, plain())) == (403, "FORBIDDEN")
    assert error_of(send({**body, "sessionId": SESSION_ID}, plain(user_id="intruder"))) == (403, "FORBIDDEN")
    assert state_of(tables) == {}
    assert gateway.posts() == []


@pytest.mark.parametrize("body", BROADCAST_ACTIONS, ids=lambda body: body["action"])
def test_a_broadcast_action_on_an_ended_session_is_refused(tables, gateway, body) -> None:
    put_speakers_session(tables, isActive=False)
    assert error_of(send(body, SPEAKER)) == (410, "SESSION_ENDED")
    assert state_of(tables) == {}


def test_get_session_status_reports_the_broadcast_state(session) -> None:
    assert reply({"action": "getSessionStatus"})["broadcastState"] == NEW_STATE
    reply({"action": "speakerStateChange", "state": {"isPaused": True, "volume": 0.25}})
    assert reply({"action": "getSessionStatus"})["broadcastState"] == {
        "isPaused": True,
        "isMuted": False,
        "volume": 0.25,
    }


def test_the_downstream_reader_returns_the_state_beside_the_settings(session) -> None:
    reply({"action": "muteBroadcast"})
    settings = read_session_settings(SESSION_ID)
    assert settings is not None
    assert settings.partial_results == PartialResultConfig()
    assert settings.broadcast == BroadcastState(is_muted=True)
    assert settings.broadcast.forwards_audio is False
    reply({"action": "unmuteBroadcast"})
    settings = read_session_settings(SESSION_ID)
    assert settings is not None and settings.broadcast.forwards_audio is True


def test_the_downstream_reader_reads_no_ended_session(tables) -> None:
    tables.put_session(sessionId=SESSION_ID, isActive=False, isPaused=True)
    assert read_session_settings(SESSION_ID) is None


@pytest.mark.parametrize("bad", [{"isPaused": "yes"}, {"isMuted": 1}, {"volume": Decimal("1.5")}, {"volume": "0.5"}])
def test_a_corrupt_stored_state_reads_as_a_new_sessions(tables, bad) -> None:
    tables.put_session(sessionId=SESSION_ID, **bad)
    settings = read_session_settings(SESSION_ID)
    assert settings is not None and settings.broadcast == BroadcastState()


def welcome_messages(connection_id: str) -> list[dict]:
    """The messages the welcome function posts to a new connection, in order (from its row, as the stream has it)."""
    row = runtime.connections().get(connection_id)
    assert row is not None and row.welcome is not None
    return [json.loads(message) for message in (row.welcome, *row.welcome_then)]


@pytest.mark.parametrize("how", ["refreshConnection", "resumeSession"])
def test_a_speakers_new_connection_gets_state_restored_after_its_first_message(session, tables, how) -> None:
    # Given a paused broadcast at volume 0.4
    reply({"action": "speakerStateChange", "state": {"isPaused": True, "volume": 0.4}})
    if how == "resumeSession":
        tables.client.update_item(
            TableName=tables.sessions,
            Key={"sessionId": {"S": SESSION_ID}},
            UpdateExpression="SET speakerGraceEndsAt = :g",
            ExpressionAttributeValues={":g": {"N": "9999999999"}},
        )
    query = {"action": how, "sessionId": SESSION_ID, **({"role": "speaker"} if how == "refreshConnection" else {})}
    # When the owner's new connection takes over
    with DynamoDBRequests() as requests:
        connection_id, response = connect_with(query, user_id=OWNER)
    assert response["statusCode"] == 200, response
    # Then its first message comes first, then stateRestored with the state, at no extra request
    first, restored = welcome_messages(connection_id)
    assert first["type"] == ("connectionRefreshComplete" if how == "refreshConnection" else "sessionResumed")
    assert restored["type"] == "stateRestored"
    assert {k: restored[k] for k in NEW_STATE} == {"isPaused": True, "isMuted": False, "volume": 0.4}
    assert restored["sessionId"] == SESSION_ID
    # (a resume after a drop also tells the listeners speakerReconnected: one index page, as before)
    told = {"Query": 1} if how == "resumeSession" else {}
    assert requests.by_operation == {"GetItem": 1, "TransactWriteItems": 1, **told}


def test_the_welcome_function_posts_the_following_messages_in_order(gateway, monkeypatch) -> None:
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "NewImage": {
                "connectionId": {"S": "conn-1"},
                "welcome": {"S": '{"type":"connectionRefreshComplete"}'},
                "welcomeThen": {"L": [{"S": '{"type":"stateRestored"}'}]},
            }
        },
    }
    assert welcome.handler({"Records": [record]}, None) == {"delivered": 1}
    assert gateway.types_to("conn-1") == ["connectionRefreshComplete", "stateRestored"]


def test_the_welcome_function_posts_nothing_more_once_the_connection_is_gone(gateway, monkeypatch) -> None:
    monkeypatch.setattr(app_welcome, "HANDSHAKE_RETRY_DELAYS", ())
    gateway.gone.add("conn-2")
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "NewImage": {
                "connectionId": {"S": "conn-2"},
                "welcome": {"S": '{"type":"sessionResumed"}'},
                "welcomeThen": {"L": [{"S": '{"type":"stateRestored"}'}]},
            }
        },
    }
    welcome.handler({"Records": [record]}, None)
    assert gateway.types_to("conn-2") == []
