"""The speaker's side of a session's life: dropping and resuming, refreshing its connection, changing the
configuration, reading the status, ending the session, and the sweeper that ends sessions nobody ends.

Messages to other connections go through a recording fake of API Gateway's ``@connections`` API (the
``gateway`` fixture); the clock is fixed (the ``clock`` fixture) so windows and ages are exact.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from lambda_src import runtime
from lambda_src.adapters.repositories.connections import ConnectionsRepository
from lambda_src.adapters.repositories.sessions import SessionsRepository
from lambda_src.contract import limits
from lambda_src.downstream import read_partial_result_config
from lambda_src.handlers import sweeper
from lambda_src.model.partial_results import PartialResultConfig
from tests.support.helpers import SESSION_CREATED_KEYS, body_of
from tests.unit.flows import (
    OWNER,
    SESSION_ID,
    Clock,
    connect_with,
    create_session,
    deliver_disconnects,
    drop,
    error_of,
    join,
    plain,
    send,
    welcome_of_row,
)

CONFIG_UPDATED_KEYS = {
    "type",
    "sessionId",
    "partialResultsEnabled",
    "minStabilityThreshold",
    "maxBufferTimeout",
    "timestamp",
}
DEFAULT_GRACE = 120
END = {"action": "endSession"}
STATUS = {"action": "getSessionStatus"}


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock.install(monkeypatch)


def resume(session_id: str, user_id: str | None = OWNER) -> tuple[str, dict]:
    query = {"action": "resumeSession", "sessionId": session_id}
    return connect_with(query, user_id=user_id)


def refresh_speaker(session_id: str, user_id: str | None = OWNER, previous: str | None = None) -> tuple[str, dict]:
    query = {"action": "refreshConnection", "sessionId": session_id, "role": "speaker"}
    if previous is not None:
        query["previousConnectionId"] = previous
    return connect_with(query, user_id=user_id)


def session_with_listeners(*languages: str, **create_query: str) -> tuple[str, str, list[str]]:
    """A session created by OWNER's speaker connection, with one listener per language."""
    session_id, speaker = create_session(**create_query)
    return session_id, speaker, [join(session_id, language) for language in languages]


def run_sweeper() -> dict:
    return sweeper.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)


# --- the speaker's connection drops ------------------------------------------------------------------


def test_speaker_drop_opens_the_grace_window_and_tells_listeners(tables, gateway, clock):
    # Given a session with two listeners
    session_id, speaker, listeners = session_with_listeners("es", "de")
    # When the speaker's connection drops
    assert drop(speaker)["statusCode"] == 200
    # Then the session stays active with its resume window open, and the sweeper will look at it then
    item = tables.session(session_id)
    assert item["isActive"] is True
    assert item["speakerGraceEndsAt"] == clock.now_s + DEFAULT_GRACE
    assert item["sweepAt"] == clock.now_s + DEFAULT_GRACE
    assert item["listenerCount"] == 2
    assert "endReason" not in item
    assert tables.connection(speaker) is None
    # And every listener is told once, with the window's length, and nobody is closed
    for listener in listeners:
        assert gateway.messages_to(listener) == [
            {
                "type": "speakerDisconnected",
                "sessionId": session_id,
                "graceSeconds": DEFAULT_GRACE,
                "timestamp": clock.now_ms,
            }
        ]
    assert gateway.messages_to(speaker) == []
    assert gateway.closed() == []


def test_speaker_grace_window_comes_from_the_environment(tables, gateway, clock, monkeypatch):
    # Given a deployment whose speakers get 30 seconds to come back
    monkeypatch.setenv("SPEAKER_GRACE_SECONDS", "30")
    runtime.reset()
    session_id, speaker, [listener] = session_with_listeners("es")
    # When the speaker drops
    drop(speaker)
    # Then the window is 30 seconds and the listener hears so
    assert tables.session(session_id)["speakerGraceEndsAt"] == clock.now_s + 30
    assert gateway.messages_to(listener)[0]["graceSeconds"] == 30


def test_a_repeated_speaker_disconnect_neither_moves_the_window_nor_tells_listeners_again(tables, gateway, clock):
    # Given a speaker that dropped
    session_id, speaker, [listener] = session_with_listeners("es")
    drop(speaker)
    first_window = tables.session(session_id)["speakerGraceEndsAt"]
    # When its $disconnect is delivered again later
    clock.advance(30)
    assert drop(speaker)["statusCode"] == 200
    # Then the window still ends when it first did and the listener was told once
    assert tables.session(session_id)["speakerGraceEndsAt"] == first_window
    assert gateway.types_to(listener) == ["speakerDisconnected"]


def test_a_listener_that_vanished_is_counted_out_when_the_speaker_drop_is_announced(tables, gateway, clock):
    # Given a session whose listener connection vanished without its $disconnect (410 Gone), after its handshake
    session_id, speaker, [present, vanished] = session_with_listeners("es", "de")
    gateway.gone.add(vanished)
    clock.advance(limits.HANDSHAKE_WINDOW_SECONDS + 1)
    # When the speaker drops and the listeners are told
    drop(speaker)
    # Then the present listener hears it, and the vanished one is counted out and forgotten
    assert gateway.types_to(present) == ["speakerDisconnected"]
    assert tables.connection(vanished) is None
    assert tables.session(session_id)["listenerCount"] == 1


def test_speaker_drop_of_a_deleted_session_does_not_recreate_it(tables, gateway, clock):
    # Given a speaker whose session was deleted (TTL)
    session_id, speaker = create_session()
    tables.client.delete_item(TableName=tables.sessions, Key={"sessionId": {"S": session_id}})
    # When the speaker's connection drops
    assert drop(speaker)["statusCode"] == 200
    # Then no session item is written back and the speaker's row is gone
    assert tables.raw_sessions() == []
    assert tables.connection(speaker) is None
    assert gateway.posts() == []


# --- resumeSession -----------------------------------------------------------------------------------


def test_owner_resumes_a_dropped_session(tables, gateway, clock):
    # Given a session whose speaker dropped, with a listener
    session_id, speaker, [listener] = session_with_listeners(
        "es", qualityTier="premium", partialResults="false", minStability="0.9", maxBufferTimeout="3.5"
    )
    drop(speaker)
    expires_at = tables.session(session_id)["expiresAt"]
    # When the owner connects again with resumeSession
    clock.advance(10)
    new, response = resume(session_id)
    # Then the handshake is accepted and the new connection is the session's speaker, window closed
    assert response["statusCode"] == 200
    item = tables.session(session_id)
    assert item["speakerConnectionId"] == new
    assert item["isActive"] is True
    assert "speakerGraceEndsAt" not in item
    # (the speaker is back: the session lives the lifetime again from now, and is due for the sweeper then)
    assert item["expiresAt"] == item["sweepAt"] == expires_at + 10
    row = tables.connection(new)
    assert (row["role"], row["sessionId"], row["userId"]) == ("speaker", session_id, OWNER)
    # And its first message is sessionResumed with the sessionCreated fields, carried on the new row
    resumed = welcome_of_row(new)
    assert set(resumed) == SESSION_CREATED_KEYS
    assert resumed == {
        "type": "sessionResumed",
        "sessionId": session_id,
        "sourceLanguage": "en",
        "qualityTier": "premium",
        "partialResultsEnabled": False,
        "minStabilityThreshold": 0.9,
        "maxBufferTimeout": 3.5,
        "expiresAt": int(expires_at) * 1000,  # epoch milliseconds, like every time in a message
        "connectionId": new,
        "timestamp": clock.now_ms,
    }
    # And the listener heard the speaker come back, after hearing it leave
    assert gateway.types_to(listener) == ["speakerDisconnected", "speakerReconnected"]
    assert gateway.messages_to(listener)[1] == {
        "type": "speakerReconnected",
        "sessionId": session_id,
        "timestamp": clock.now_ms,
    }


def test_resumed_speaker_can_act_and_its_own_drop_opens_a_new_window(tables, gateway, clock):
    # Given a session resumed on a new connection
    session_id, speaker, [listener] = session_with_listeners("es")
    drop(speaker)
    new, _ = resume(session_id)
    # When the resumed speaker reads the status
    response = send(STATUS, new)
    # Then it is the speaker
    assert response["statusCode"] == 200
    assert body_of(response)["speakerConnected"] is True
    # And when the new connection drops in turn, a new window opens
    clock.advance(60)
    drop(new)
    assert tables.session(session_id)["speakerGraceEndsAt"] == clock.now_s + DEFAULT_GRACE
    assert gateway.types_to(listener) == ["speakerDisconnected", "speakerReconnected", "speakerDisconnected"]


def test_resume_while_the_speaker_is_still_connected_takes_over_without_telling_listeners(tables, gateway, clock):
    # Given a session whose speaker is connected
    session_id, speaker, [listener] = session_with_listeners("es")
    # When the owner resumes on another connection
    new, response = resume(session_id)
    # Then the new connection is the speaker and listeners hear nothing (the speaker never left)
    assert response["statusCode"] == 200
    assert tables.session(session_id)["speakerConnectionId"] == new
    assert gateway.messages_to(listener) == []
    # And the old connection's close is not a drop
    drop(speaker)
    item = tables.session(session_id)
    assert item["isActive"] is True and "speakerGraceEndsAt" not in item
    assert gateway.messages_to(listener) == []


@pytest.mark.parametrize(
    ("user_id", "overrides", "expected"),
    [
        ("user-2", {}, (403, "FORBIDDEN")),
        (None, {}, (401, "UNAUTHORIZED")),
        (OWNER, {"isActive": False, "endReason": "endedBySpeaker"}, (410, "SESSION_ENDED")),
        (OWNER, {"sessionId": "brave-otter-321"}, (404, "SESSION_NOT_FOUND")),
        (OWNER, {"expiresAt": int(time.time()) - 1}, (404, "SESSION_NOT_FOUND")),
    ],
    ids=["another-user", "no-token", "ended", "unknown", "expired"],
)
def test_resume_refusals_write_nothing(tables, gateway, user_id, overrides, expected):
    # Given a session whose speaker dropped (grace window open), with a listener
    now_s = int(time.time())
    tables.put_session(
        **{
            "sessionId": SESSION_ID,
            "speakerConnectionId": "gone-speaker",
            "speakerUserId": OWNER,
            "speakerGraceEndsAt": now_s + 60,
            "sweepAt": now_s + 60,
            **overrides,
        }
    )
    listener = None
    if overrides.get("isActive", True) and "sessionId" not in overrides and "expiresAt" not in overrides:
        listener = join()
    sessions_before = tables.raw_sessions()
    # When someone tries to resume it
    new, response = resume(SESSION_ID, user_id)
    # Then the handshake is refused with the contract's status
    assert error_of(response) == expected
    # And nothing is written: no row for the new connection, the session unchanged, nobody told
    assert tables.connection(new) is None
    assert tables.raw_sessions() == sessions_before
    if listener is not None:
        assert gateway.messages_to(listener) == []


def test_resume_with_a_malformed_session_id_is_invalid_parameters(tables, gateway):
    # Given nothing, when the owner resumes with a session id of the wrong form
    new, response = resume("Golden-Eagle-427")
    # Then the handshake is refused naming the field, and nothing is written
    assert error_of(response) == (400, "INVALID_PARAMETERS")
    assert body_of(response)["field"] == "sessionId"
    assert tables.raw_connections() == []


# --- refreshConnection (speaker) ---------------------------------------------------------------------


def test_speaker_refresh_moves_the_speaker_so_the_old_close_is_not_a_drop(tables, gateway, clock):
    # Given a session with a listener
    session_id, old, [listener] = session_with_listeners("es")
    expires_at = tables.session(session_id)["expiresAt"]
    # When the owner opens a new connection with refreshConnection (role speaker)
    new, response = refresh_speaker(session_id, previous=old)
    # Then the handshake is accepted and the session's speaker is the new connection
    assert response["statusCode"] == 200
    assert tables.session(session_id)["speakerConnectionId"] == new
    complete = welcome_of_row(new)
    assert complete == {
        "type": "connectionRefreshComplete",
        "sessionId": session_id,
        "role": "speaker",
        "sourceLanguage": "en",
        "connectionId": new,
        "timestamp": clock.now_ms,
    }
    # When the old connection's $disconnect arrives later
    clock.advance(5)
    assert drop(old)["statusCode"] == 200
    # Then the session neither ends nor opens a grace window, and listeners hear nothing
    item = tables.session(session_id)
    assert item["isActive"] is True
    assert "speakerGraceEndsAt" not in item
    assert item["sweepAt"] == expires_at
    assert item["speakerConnectionId"] == new
    assert item["listenerCount"] == 1
    assert tables.connection(old) is None
    assert gateway.posts() == []
    # And the new connection acts as the speaker, the old one no longer may
    assert send(STATUS, new)["statusCode"] == 200
    assert error_of(send({"action": "updateSessionConfig", "minStability": 0.8}, old)) == (403, "FORBIDDEN")


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [("user-2", (403, "FORBIDDEN")), (None, (401, "UNAUTHORIZED"))],
    ids=["another-user", "no-token"],
)
def test_speaker_refresh_by_anyone_but_the_owner_writes_nothing(tables, gateway, user_id, expected):
    # Given a live session
    session_id, speaker = create_session()
    before = tables.raw_sessions()
    # When someone else refreshes into it as the speaker
    new, response = refresh_speaker(session_id, user_id=user_id)
    # Then it is refused and the speaker is unchanged
    assert error_of(response) == expected
    assert tables.connection(new) is None
    assert tables.raw_sessions() == before
    assert tables.session(session_id)["speakerConnectionId"] == speaker


# --- updateSessionConfig -----------------------------------------------------------------------------


@pytest.mark.parametrize("explicit_session_id", [False, True], ids=["session-of-connection", "explicit-sessionId"])
def test_update_config_replies_the_full_config_and_stores_exact_numbers(tables, gateway, clock, explicit_session_id):
    # Given a speaker's session with default configuration
    session_id, speaker = create_session()
    body = {"action": "updateSessionConfig", "minStability": 0.9}
    if explicit_session_id:
        body["sessionId"] = session_id
    # When the speaker changes only minStability (a JSON number)
    response = send(json.dumps(body), speaker)
    # Then the reply is sessionConfigUpdated with the whole configuration
    assert response["statusCode"] == 200
    reply = body_of(response)
    assert set(reply) == CONFIG_UPDATED_KEYS
    assert reply == {
        "type": "sessionConfigUpdated",
        "sessionId": session_id,
        "partialResultsEnabled": True,
        "minStabilityThreshold": 0.9,
        "maxBufferTimeout": 5.0,
        "timestamp": clock.now_ms,
    }
    assert '"minStabilityThreshold":0.9,' in response["body"]
    # And it is stored as an exact DynamoDB number, the other fields untouched
    raw = tables.raw_sessions()[0]
    assert raw["minStabilityThreshold"] == {"N": "0.9"}
    assert raw["maxBufferTimeout"] == {"N": "5.0"}
    assert raw["partialResultsEnabled"] == {"BOOL": True}
    # And downstream processors read the new value
    assert read_partial_result_config(session_id) == PartialResultConfig(True, Decimal("0.9"), Decimal("5.0"))


def test_update_config_with_string_forms_and_every_field(tables, gateway, clock):
    # Given a speaker's session
    session_id, speaker = create_session()
    # When it changes all three settings with their string forms
    body = {
        "action": "updateSessionConfig",
        "partialResults": "FALSE",
        "minStability": "0.72",
        "maxBufferTimeout": "7.25",
    }
    response = send(body, speaker)
    # Then the reply and the stored item carry exactly those values
    assert response["statusCode"] == 200
    reply = body_of(response)
    assert (reply["partialResultsEnabled"], reply["minStabilityThreshold"], reply["maxBufferTimeout"]) == (
        False,
        0.72,
        7.25,
    )
    raw = tables.raw_sessions()[0]
    assert (raw["partialResultsEnabled"], raw["minStabilityThreshold"], raw["maxBufferTimeout"]) == (
        {"BOOL": False},
        {"N": "0.72"},
        {"N": "7.25"},
    )
    assert read_partial_result_config(session_id) == PartialResultConfig(False, Decimal("0.72"), Decimal("7.25"))


INVALID_CONFIG_VALUES = [
    ("minStability", "0.69"),
    ("minStability", "0.951"),
    ("minStability", '"0.951"'),
    ("minStability", "-0.8"),
    ("minStability", "true"),
    ("minStability", "null"),
    ("minStability", '""'),
    ("minStability", '"abc"'),
    ("minStability", '"NaN"'),
    ("minStability", '"inf"'),
    ("minStability", "1e999999"),
    ("minStability", '"1e999999"'),
    ("minStability", "[0.85]"),
    ("maxBufferTimeout", "1.99"),
    ("maxBufferTimeout", "10.01"),
    ("maxBufferTimeout", '"ten"'),
    ("maxBufferTimeout", "false"),
    ("partialResults", "1"),
    ("partialResults", '"yes"'),
    ("partialResults", '"tru"'),
    ("partialResults", "null"),
]


def _with_field(body: dict, field: str, raw: str) -> str:
    """``body`` as JSON text with ``field`` set to the raw JSON ``raw``."""
    return json.dumps(body)[:-1] + f', "{field}": {raw}}}'


def _refusal(response: dict) -> tuple:
    body = body_of(response)
    return response["statusCode"], body.get("code"), body.get("field"), body.get("message")


@pytest.mark.parametrize(("field", "raw"), INVALID_CONFIG_VALUES)
def test_update_config_validates_exactly_as_creation_and_writes_nothing(tables, gateway, field, raw):
    # Given a speaker's session
    session_id, speaker = create_session()
    before = tables.raw_sessions()
    # When the same value is sent at creation and as an update
    creation = send(
        _with_field({"action": "createSession", "sourceLanguage": "en"}, field, raw), plain("user-9"), user_id="user-9"
    )
    update = send(_with_field({"action": "updateSessionConfig"}, field, raw), speaker)
    # Then both are refused identically: INVALID_CONFIGURATION naming the field, the same message
    assert _refusal(update) == _refusal(creation)
    assert _refusal(update)[:3] == (400, "INVALID_CONFIGURATION", field)
    # And the session is unchanged
    assert tables.raw_sessions() == before


@pytest.mark.parametrize(
    ("field", "raw", "stored"),
    [
        ("minStability", "0.70", {"N": "0.70"}),
        ("minStability", "0.95", {"N": "0.95"}),
        ("minStability", '"0.7"', {"N": "0.7"}),
        ("maxBufferTimeout", "2.0", {"N": "2.0"}),
        ("maxBufferTimeout", "10.0", {"N": "10.0"}),
        ("maxBufferTimeout", '"10"', {"N": "10"}),
        ("partialResults", '"False"', {"BOOL": False}),
        ("partialResults", "false", {"BOOL": False}),
    ],
)
def test_update_config_accepts_the_inclusive_bounds_and_string_forms(tables, gateway, field, raw, stored):
    # Given a speaker's session, when it sends a value on a bound or in a string form
    session_id, speaker = create_session()
    response = send(_with_field({"action": "updateSessionConfig"}, field, raw), speaker)
    # Then it is accepted and stored exactly
    assert response["statusCode"] == 200, response
    attribute = {
        "minStability": "minStabilityThreshold",
        "maxBufferTimeout": "maxBufferTimeout",
        "partialResults": "partialResultsEnabled",
    }[field]
    assert tables.raw_sessions()[0][attribute] == stored


def test_update_config_without_any_setting_is_refused(tables, gateway):
    # Given a speaker's session, when it sends updateSessionConfig naming no setting
    session_id, speaker = create_session()
    before = tables.raw_sessions()
    response = send({"action": "updateSessionConfig", "sessionId": session_id}, speaker)
    # Then it is refused and nothing is written
    assert error_of(response) == (400, "INVALID_CONFIGURATION")
    assert tables.raw_sessions() == before


@pytest.mark.parametrize(
    ("who", "explicit_session_id"),
    [("listener", False), ("listener", True), ("plain", False), ("plain", True), ("other-speaker", True)],
    # (the other speaker without a sessionId would address its own session)
)
def test_update_config_by_anyone_but_the_speaker_is_forbidden(tables, gateway, who, explicit_session_id):
    # Given a session with a listener, a plain connection and the speaker of another session
    session_id, speaker, [listener] = session_with_listeners("es")
    _other_session, other_speaker = create_session("user-2")
    actor = {"listener": listener, "plain": plain("user-3"), "other-speaker": other_speaker}[who]
    before = tables.session(session_id)
    body = {"action": "updateSessionConfig", "minStability": "0.75"}
    if explicit_session_id:
        body["sessionId"] = session_id
    # When it tries to change the session's configuration
    response = send(body, actor)
    # Then it is FORBIDDEN and the configuration is unchanged
    assert error_of(response) == (403, "FORBIDDEN")
    assert tables.session(session_id) == before
    config = read_partial_result_config(session_id)
    assert config is not None and config.min_stability_threshold == Decimal("0.85")


def test_update_config_of_an_unknown_or_ended_session(tables, gateway):
    # Given a speaker whose session was ended
    session_id, speaker = create_session()
    assert send(END, speaker)["statusCode"] == 200
    # When it updates its configuration, or names a session that does not exist
    ended = send({"action": "updateSessionConfig", "minStability": "0.8"}, speaker)
    unknown = send({"action": "updateSessionConfig", "minStability": "0.8", "sessionId": "brave-otter-321"}, speaker)
    # Then it hears 410 and 404, and nothing is written
    assert error_of(ended) == (410, "SESSION_ENDED")
    assert error_of(unknown) == (404, "SESSION_NOT_FOUND")
    assert tables.session(session_id)["minStabilityThreshold"] == Decimal("0.85")
    assert tables.session("brave-otter-321") is None


# --- getSessionStatus --------------------------------------------------------------------------------


@pytest.mark.parametrize("explicit_session_id", [False, True], ids=["session-of-connection", "explicit-sessionId"])
def test_session_status_for_the_speaker(tables, gateway, clock, explicit_session_id):
    # Given a session created 90 seconds ago with three listeners in two languages and a custom config
    session_id, speaker, _listeners = session_with_listeners(
        "es", "de", "es", qualityTier="premium", minStability="0.9", maxBufferTimeout="3"
    )
    created_at = clock.now_ms
    clock.advance(90)
    body = dict(STATUS, sessionId=session_id) if explicit_session_id else STATUS
    # When the speaker asks for the status
    response = send(body, speaker)
    # Then it gets the count, the listeners per language, the config and the age
    assert response["statusCode"] == 200
    status = body_of(response)
    assert status["type"] == "sessionStatus"
    assert status["sessionId"] == session_id
    assert status["listenerCount"] == 3
    assert status["listenersByLanguage"] == {"de": 1, "es": 2}
    assert (status["partialResultsEnabled"], status["minStabilityThreshold"], status["maxBufferTimeout"]) == (
        True,
        0.9,
        3.0,
    )
    assert status["ageSeconds"] == 90
    assert status["createdAt"] == created_at
    assert (status["isActive"], status["speakerConnected"], status["sourceLanguage"], status["qualityTier"]) == (
        True,
        True,
        "en",
        "premium",
    )
    assert status["timestamp"] == clock.now_ms


def test_session_status_follows_leaves(tables, gateway):
    # Given a session whose German listener left
    session_id, speaker, [spanish, german] = session_with_listeners("es", "de")
    send({"action": "leaveSession"}, german)
    # Then the status no longer counts it in either view
    status = body_of(send(STATUS, speaker))
    assert status["listenerCount"] == 1
    assert status["listenersByLanguage"] == {"es": 1}


@pytest.mark.parametrize("who", ["listener", "plain", "other-speaker"])
def test_session_status_is_forbidden_to_anyone_but_the_speaker(tables, gateway, who):
    # Given a session with a listener, a plain connection and the speaker of another session
    session_id, _speaker, [listener] = session_with_listeners("es")
    _other, other_speaker = create_session("user-2")
    actor = {"listener": listener, "plain": plain(), "other-speaker": other_speaker}[who]
    # When it asks for this session's status, naming it and not
    named = send(dict(STATUS, sessionId=session_id), actor)
    # Then it is FORBIDDEN
    assert error_of(named) == (403, "FORBIDDEN")
    if who != "other-speaker":  # the other speaker without sessionId asks about its own session
        assert error_of(send(STATUS, actor)) == (403, "FORBIDDEN")


def test_session_status_of_an_unknown_session(tables, gateway):
    # Given a speaker, when it asks for the status of a session that does not exist
    _session_id, speaker = create_session()
    response = send(dict(STATUS, sessionId="brave-otter-321"), speaker)
    # Then it is not found
    assert error_of(response) == (404, "SESSION_NOT_FOUND")


# --- endSession --------------------------------------------------------------------------------------


def test_end_session_ends_it_for_good_and_dismisses_every_listener(tables, gateway, clock):
    # Given a session with three listeners
    session_id, speaker, listeners = session_with_listeners("es", "de", "fr")
    # When its speaker ends it
    response = send(END, speaker)
    # Then the speaker gets sessionEnded
    assert response["statusCode"] == 200
    assert body_of(response) == {
        "type": "sessionEnded",
        "sessionId": session_id,
        "reason": "endedBySpeaker",
        "timestamp": clock.now_ms,
    }
    # And the session is inactive for good, due for one more sweep (which dismisses any listener left)
    item = tables.session(session_id)
    assert item["isActive"] is False
    assert item["endReason"] == "endedBySpeaker"
    assert item["sweepAt"] == clock.now_s + limits.SWEEP_INTERVAL_SECONDS
    assert "speakerGraceEndsAt" not in item
    # And every listener was told, then closed (sessionEnded posted before the close)
    for listener in listeners:
        assert gateway.messages_to(listener) == [
            {
                "type": "sessionEnded",
                "sessionId": session_id,
                "reason": "endedBySpeaker",
                "timestamp": clock.now_ms,
            }
        ]
        operations = [op for op, target, _ in gateway.calls if target == listener]
        assert operations == ["post", "delete"]
    assert sorted(gateway.closed()) == sorted(listeners)
    # When API Gateway delivers the closed listeners' $disconnects
    deliver_disconnects(gateway.closed())
    # Then their rows are removed and the count is exactly 0; the session stays ended
    item = tables.session(session_id)
    assert item["listenerCount"] == 0
    assert item["isActive"] is False
    for listener in listeners:
        assert tables.connection(listener) is None


def test_end_session_by_explicit_session_id(tables, gateway):
    # Given a session with a listener, when its speaker ends it naming its id
    session_id, speaker, [listener] = session_with_listeners("es")
    response = send(dict(END, sessionId=session_id), speaker)
    # Then it ends and the listener is told
    assert response["statusCode"] == 200
    assert tables.session(session_id)["isActive"] is False
    assert gateway.types_to(listener) == ["sessionEnded"]


def test_a_vanished_listener_does_not_stop_the_others_from_being_dismissed(tables, gateway, clock):
    # Given a session with listeners, one of which vanished (410, after its handshake) and one whose post
    # fails otherwise
    session_id, speaker, [first, vanished, failing, last] = session_with_listeners("es", "de", "fr", "it")
    gateway.gone.add(vanished)
    gateway.failing[failing] = "LimitExceededException"
    clock.advance(limits.HANDSHAKE_WINDOW_SECONDS + 1)
    # When the speaker ends the session
    response = send(END, speaker)
    # Then the end succeeds and the reachable listeners are told and closed
    assert response["statusCode"] == 200
    assert tables.session(session_id)["isActive"] is False
    for listener in (first, last):
        assert gateway.types_to(listener) == ["sessionEnded"]
    # (the one whose message failed is closed all the same: it must not stay attached to an ended session)
    assert sorted(gateway.closed()) == sorted([first, failing, last])
    # And the vanished one was counted out and forgotten at once (no $disconnect will come for it)
    assert tables.connection(vanished) is None
    # And once the closed ones' $disconnects arrive, the count equals the listener rows left
    deliver_disconnects(gateway.closed())
    for listener in (first, failing, last):
        assert tables.connection(listener) is None
    rows = [item for item in tables.connections_items() if item.get("role") == "listener"]
    assert tables.session(session_id)["listenerCount"] == len(rows)


def test_an_ended_session_refuses_later_joins_with_410(tables, gateway):
    # Given a session its speaker ended, whose listener has gone
    session_id, speaker, _ = session_with_listeners("es")
    send(END, speaker)
    deliver_disconnects(gateway.closed())
    # When a listener joins by query or by message
    by_query, query_response = connect_with({"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"})
    by_message = plain()
    message_response = send({"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}, by_message)
    # Then both are refused 410 SESSION_ENDED and nothing is counted
    assert error_of(query_response) == (410, "SESSION_ENDED")
    assert error_of(message_response) == (410, "SESSION_ENDED")
    assert tables.connection(by_query) is None
    assert "sessionId" not in tables.connection(by_message)
    assert tables.session(session_id)["listenerCount"] == 0


def test_an_ended_session_cannot_be_resumed_and_ending_it_again_is_idempotent(tables, gateway):
    # Given a session its speaker ended
    session_id, speaker = create_session()
    send(END, speaker)
    ended = tables.session(session_id)
    # When its speaker ends it again (a retry), a listener tries to, and the owner tries to resume it
    again = body_of(send(END, speaker))
    _new, resumed = resume(session_id)
    # Then the repeat is answered like the first end, the resume is 410, and the session is unchanged
    assert (again["type"], again["sessionId"], again["reason"]) == ("sessionEnded", session_id, "endedBySpeaker")
    assert error_of(resumed) == (410, "SESSION_ENDED")
    assert tables.session(session_id) == ended


def test_the_speakers_close_after_ending_does_not_open_a_window(tables, gateway):
    # Given a session its speaker ended
    session_id, speaker = create_session()
    send(END, speaker)
    ended = tables.session(session_id)
    # When the speaker's connection closes
    assert drop(speaker)["statusCode"] == 200
    # Then the session stays ended exactly as it was
    assert tables.session(session_id) == ended
    assert tables.connection(speaker) is None


@pytest.mark.parametrize("who", ["listener", "plain", "other-speaker"])
def test_only_the_speaker_may_end_the_session(tables, gateway, who):
    # Given a session with a listener, a plain connection and the speaker of another session
    session_id, _speaker, [listener] = session_with_listeners("es")
    _other, other_speaker = create_session("user-2")
    actor = {"listener": listener, "plain": plain(), "other-speaker": other_speaker}[who]
    before = tables.session(session_id)
    # When it tries to end this session
    response = send(dict(END, sessionId=session_id), actor)
    # Then it is FORBIDDEN, the session lives on and nobody is told or closed
    assert error_of(response) == (403, "FORBIDDEN")
    assert tables.session(session_id) == before
    assert gateway.calls == []


def test_a_listener_ending_without_session_id_is_forbidden(tables, gateway):
    # Given a session with two listeners, when one sends endSession without a sessionId
    session_id, _speaker, [listener, other] = session_with_listeners("es", "de")
    response = send(END, listener)
    # Then it is FORBIDDEN, the session lives on with both listeners, nobody is told
    assert error_of(response) == (403, "FORBIDDEN")
    assert tables.session(session_id)["isActive"] is True
    assert tables.session(session_id)["listenerCount"] == 2
    assert gateway.calls == []


# --- the sweeper -------------------------------------------------------------------------------------


def test_sweeper_ends_a_session_whose_speaker_did_not_resume_in_time(tables, gateway, clock):
    # Given a session whose speaker dropped, with two listeners
    session_id, speaker, listeners = session_with_listeners("es", "de")
    drop(speaker)
    gateway.clear()
    # When the sweeper runs after the window closed
    clock.advance(DEFAULT_GRACE + 1)
    result = run_sweeper()
    # Then the session ended with reason speakerTimeout
    assert result == {"ended": 1}
    item = tables.session(session_id)
    assert item["isActive"] is False
    assert item["endReason"] == "speakerTimeout"
    assert item["sweepAt"] == clock.now_s + limits.SWEEP_INTERVAL_SECONDS  # one more pass, for any listener left
    assert "speakerGraceEndsAt" not in item
    # And every listener was told and closed; their $disconnects remove their rows
    for listener in listeners:
        assert gateway.messages_to(listener) == [
            {
                "type": "sessionEnded",
                "sessionId": session_id,
                "reason": "speakerTimeout",
                "timestamp": clock.now_ms,
            }
        ]
    assert sorted(gateway.closed()) == sorted(listeners)
    deliver_disconnects(gateway.closed())
    assert tables.session(session_id)["listenerCount"] == 0
    for listener in listeners:
        assert tables.connection(listener) is None
    # And the owner can no longer resume it
    _new, response = resume(session_id)
    assert error_of(response) == (410, "SESSION_ENDED")


def test_sweeper_leaves_a_session_in_its_window_alone(tables, gateway, clock):
    # Given a session whose speaker dropped a minute ago
    session_id, speaker, [listener] = session_with_listeners("es")
    drop(speaker)
    before = tables.session(session_id)
    gateway.clear()
    clock.advance(DEFAULT_GRACE - 1)
    # When the sweeper runs before the window closes
    result = run_sweeper()
    # Then nothing changes, and nobody is told anything (its listeners may be probed, never posted to)
    assert result == {"ended": 0}
    assert tables.session(session_id) == before
    assert gateway.posts() == [] and gateway.closed() == []


def test_sweeper_ends_an_expired_session_and_tells_its_connected_speaker(tables, gateway, clock):
    # Given a live session with a connected speaker and a listener
    session_id, speaker, [listener] = session_with_listeners("es")
    expires_at = int(tables.session(session_id)["expiresAt"])
    # When the sweeper runs after its lifetime is over
    clock.now_ms = (expires_at + 1) * 1000
    result = run_sweeper()
    # Then the session ended with reason expired, and the listener and the speaker were told
    assert result == {"ended": 1}
    item = tables.session(session_id)
    assert (item["isActive"], item["endReason"]) == (False, "expired")
    expected = {"type": "sessionEnded", "sessionId": session_id, "reason": "expired", "timestamp": clock.now_ms}
    assert gateway.messages_to(listener) == [expected]
    assert gateway.messages_to(speaker) == [expected]
    assert gateway.closed() == [listener]
    # And the listener's $disconnect counts it out
    deliver_disconnects(gateway.closed())
    assert tables.session(session_id)["listenerCount"] == 0
    assert tables.connection(listener) is None


def test_sweeper_ends_only_the_sessions_that_are_due(tables, gateway, clock):
    # Given: a session expired, one whose window closed, one in its window, one live, and one already ended
    now_s = clock.now_s
    tables.put_session(sessionId="happy-otter-111", expiresAt=now_s - 1, sweepAt=now_s - 1)
    tables.put_session(sessionId="brave-lynx-222", speakerGraceEndsAt=now_s - 5, sweepAt=now_s - 5)
    tables.put_session(sessionId="calm-heron-333", speakerGraceEndsAt=now_s + 60, sweepAt=now_s + 60)
    tables.put_session(sessionId="keen-raven-444", sweepAt=now_s + 3600)
    tables.put_session(sessionId="swift-crane-555", isActive=False, endReason="endedBySpeaker")
    untouched = {sid: tables.session(sid) for sid in ("calm-heron-333", "keen-raven-444", "swift-crane-555")}
    # When the sweeper runs
    result = run_sweeper()
    # Then exactly the two due sessions ended, each with its reason
    assert result == {"ended": 2}
    assert tables.session("happy-otter-111")["endReason"] == "expired"
    assert tables.session("happy-otter-111")["isActive"] is False
    assert tables.session("brave-lynx-222")["endReason"] == "speakerTimeout"
    assert tables.session("brave-lynx-222")["isActive"] is False
    # And the others are exactly as they were
    for session_id, item in untouched.items():
        assert tables.session(session_id) == item


def _resume_inside(monkeypatch, method: str, resume_once) -> None:
    """Run ``resume_once`` just before the sweeper's ``method`` does its work (after it read the index)."""
    original = getattr(SessionsRepository, method)

    def index_then_resume(self):
        indexed = list(original(self))
        resume_once()
        yield from indexed

    def resume_then_call(self, *args, **kwargs):
        resume_once()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SessionsRepository, method, index_then_resume if method == "sweep_index" else resume_then_call)


@pytest.mark.parametrize(
    "moment", ["sweep_index", "end_if_due"], ids=["after-the-index-was-read", "after-the-session-was-read"]
)
def test_sweeper_does_not_end_a_session_whose_speaker_resumed_meanwhile(tables, gateway, clock, monkeypatch, moment):
    # Given a session whose speaker's window has closed, with a listener
    session_id, speaker, [listener] = session_with_listeners("es")
    drop(speaker)
    clock.advance(DEFAULT_GRACE + 1)
    resumed: list[str] = []

    def resume_once():
        if not resumed:
            new, response = resume(session_id)
            assert response["statusCode"] == 200
            resumed.append(new)

    _resume_inside(monkeypatch, moment, resume_once)
    gateway.clear()
    # When the speaker resumes while the sweeper is between reading and ending
    result = run_sweeper()
    # Then the sweeper leaves the session alone: active, with the resumed speaker, listener kept
    assert resumed, "the resume did not run"
    assert result == {"ended": 0}
    item = tables.session(session_id)
    assert item["isActive"] is True
    assert "endReason" not in item
    assert item["speakerConnectionId"] == resumed[0]
    assert item["listenerCount"] == 1
    assert tables.connection(listener) is not None
    assert gateway.types_to(listener) == ["speakerReconnected"]
    assert gateway.closed() == []


def test_end_session_dismisses_a_larger_audience_and_the_count_returns_to_zero(tables, gateway, monkeypatch):
    # Given a session with 33 listeners
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", "40")
    runtime.reset()
    session_id, speaker, listeners = session_with_listeners(*(["es", "de", "fr"] * 11))
    assert tables.session(session_id)["listenerCount"] == 33
    # When the speaker ends it
    assert send(END, speaker)["statusCode"] == 200
    # Then every listener was told and closed
    told = [connection for connection, message in gateway.posts() if message["type"] == "sessionEnded"]
    assert sorted(told) == sorted(listeners)
    assert sorted(gateway.closed()) == sorted(listeners)
    # And after their $disconnects no listener row is left and the count is exactly 0
    deliver_disconnects(gateway.closed())
    assert [item for item in tables.connections_items() if item.get("role") == "listener"] == []
    assert tables.session(session_id)["listenerCount"] == 0


def test_an_ended_sessions_connection_cannot_create_another_session(tables, gateway):
    # (docs/decisions/0007-a-connection-belongs-to-one-session.md; the contract's "one session at a time per
    # connection" could also be read as allowing a new one after the end; see the helper's report.)
    # Given a speaker that created a session by message and ended it
    speaker = plain(OWNER)
    created = send({"action": "createSession", "sourceLanguage": "en"}, speaker, user_id=OWNER)
    first = body_of(created)["sessionId"]
    assert send(END, speaker)["statusCode"] == 200
    # When it creates another session on the same connection
    response = send({"action": "createSession", "sourceLanguage": "en"}, speaker, user_id=OWNER)
    # Then it is refused and no second session is written
    assert error_of(response) == (403, "FORBIDDEN")
    assert [item["sessionId"] for item in tables.sessions_items()] == [first]


def test_a_refresh_landing_inside_the_old_connections_disconnect_is_not_a_drop(tables, gateway, clock, monkeypatch):
    # Given a speaker whose refresh completes right after its old connection's $disconnect read its row
    session_id, old, [listener] = session_with_listeners("es")
    new_ids: list[str] = []
    original_get = ConnectionsRepository.get

    def get_then_refresh(self, connection_id):
        result = original_get(self, connection_id)
        if connection_id == old and not new_ids:
            new, response = refresh_speaker(session_id, previous=old)
            assert response["statusCode"] == 200
            new_ids.append(new)
        return result

    monkeypatch.setattr(ConnectionsRepository, "get", get_then_refresh)
    # When the old connection's $disconnect completes
    assert drop(old)["statusCode"] == 200
    # Then the session has the new speaker, no window opened and listeners heard nothing
    assert new_ids
    item = tables.session(session_id)
    assert item["speakerConnectionId"] == new_ids[0]
    assert item["isActive"] is True and "speakerGraceEndsAt" not in item
    assert gateway.messages_to(listener) == []
    assert tables.connection(old) is None


def test_one_sessions_failure_does_not_keep_the_sweeper_from_the_others(tables, gateway, clock, monkeypatch):
    # Given two expired sessions, the first of which cannot be dismissed (its listener index read fails)
    now_s = clock.now_s
    tables.put_session(sessionId="happy-otter-111", expiresAt=now_s - 1, sweepAt=now_s - 1)
    tables.put_session(sessionId="brave-lynx-222", expiresAt=now_s - 1, sweepAt=now_s - 1)
    pages = ConnectionsRepository.listener_pages

    def failing_pages(self, session_id):
        if session_id == "happy-otter-111":
            raise RuntimeError("index read failed")
        return pages(self, session_id)

    monkeypatch.setattr(ConnectionsRepository, "listener_pages", failing_pages)
    # When the sweeper runs
    result = run_sweeper()
    # Then the other session still ended (the failing one was marked ended before its listeners were read)
    assert result == {"ended": 1}
    assert tables.session("brave-lynx-222")["isActive"] is False
