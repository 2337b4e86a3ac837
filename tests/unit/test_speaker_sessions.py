"""A speaker's sessions over time: each refresh or resume extends the session's life up to a ceiling counted
from its creation, and a speaker may have only so many sessions active at once (exact under concurrency,
never locked out by a session that is gone)."""

from __future__ import annotations

import pytest

from lambda_src import runtime
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.connections import ROW_LIFETIME_SECONDS
from lambda_src.contract import function_settings, limits
from lambda_src.handlers import sweeper
from tests.support.helpers import RATE_LIMITS_TABLE, DynamoDBRequests, body_of
from tests.unit.flows import OWNER, Clock, connect_with, create_session, drop, join, plain, send

HOUR = 3600
LIFETIME = limits.DEFAULT_SESSION_LIFETIME_HOURS * HOUR
LIMIT = limits.DEFAULT_MAX_ACTIVE_SESSIONS_PER_SPEAKER


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock.install(monkeypatch)


def refresh_speaker(session_id: str, user_id: str = OWNER) -> dict:
    query = {"action": "refreshConnection", "sessionId": session_id, "role": "speaker"}
    return connect_with(query, user_id=user_id)[1]


def resume(session_id: str, user_id: str = OWNER) -> dict:
    return connect_with({"action": "resumeSession", "sessionId": session_id}, user_id=user_id)[1]


def create_on_connect(user_id: str = OWNER) -> dict:
    """createSession on ``$connect``; the handler's response."""
    return connect_with({"action": "createSession", "sourceLanguage": "en"}, user_id=user_id)[1]


def create_refused(user_id: str = OWNER) -> dict:
    """A createSession message from a speaker's open connection that is refused; the error message."""
    connection_id = plain(user_id=user_id)
    response = send({"action": "createSession", "sourceLanguage": "en"}, connection_id, user_id=user_id)
    assert response["statusCode"] == 409, response
    return body_of(response)


def listed_active_sessions(tables, user_id: str = OWNER) -> set[str]:
    item = tables.client.get_item(
        TableName=RATE_LIMITS_TABLE, Key={"limitKey": {"S": f"activeSessions#{user_id}"}}, ConsistentRead=True
    ).get("Item", {})
    return set(item.get("sessionIds", {}).get("SS", []))


def run_sweeper() -> None:
    sweeper.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)


# --- lifetime ------------------------------------------------------------------------------------------


def test_a_speaker_refresh_extends_the_session_to_now_plus_its_lifetime(tables, gateway, clock) -> None:
    # Given a session two hours old
    session_id, _speaker = create_session()
    created_s = clock.now_s
    assert tables.session(session_id)["expiresAt"] == created_s + LIFETIME
    clock.advance(2 * HOUR)
    # When its speaker refreshes its connection
    assert refresh_speaker(session_id)["statusCode"] == 200
    # Then the session lives the lifetime again from now, and is due for the sweeper then
    item = tables.session(session_id)
    assert item["expiresAt"] == item["sweepAt"] == clock.now_s + LIFETIME
    # And sessionStatus shows the new expiry
    new_speaker = item["speakerConnectionId"]
    status = body_of(send({"action": "getSessionStatus"}, new_speaker, user_id=OWNER))
    assert status["expiresAt"] == (clock.now_s + LIFETIME) * 1000  # messages speak in milliseconds


def test_a_resumed_session_lives_the_lifetime_again_from_the_resume(tables, gateway, clock) -> None:
    session_id, speaker = create_session()
    clock.advance(HOUR)
    drop(speaker)
    clock.advance(30)
    assert resume(session_id)["statusCode"] == 200
    item = tables.session(session_id)
    assert item["expiresAt"] == item["sweepAt"] == clock.now_s + LIFETIME
    assert "speakerGraceEndsAt" not in item


def test_a_session_whose_speaker_keeps_refreshing_outlives_the_default_lifetime(tables, gateway, clock) -> None:
    # Given a session whose speaker refreshes every 100 minutes (as API Gateway's 2-hour limit asks)
    session_id, _speaker = create_session()
    listener = join(session_id)
    for _ in range(4):
        clock.advance(limits.REFRESH_REQUIRED_AT_MINUTES * 60)
        assert refresh_speaker(session_id)["statusCode"] == 200
        run_sweeper()
    # Then, past the default lifetime (6 h 40 min > 3 h), the session is still live, its listener still in it
    assert clock.now_s - tables.session(session_id)["createdAt"] // 1000 > LIFETIME
    item = tables.session(session_id)
    assert item["isActive"] is True and item["listenerCount"] == 1
    assert "sessionEnded" not in gateway.types_to(listener)


def test_refreshes_never_extend_a_session_past_its_lifetime_ceiling(
    tables, gateway, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a ceiling of 4 hours from creation
    monkeypatch.setenv(function_settings.ENV_MAX_SESSION_LIFETIME_HOURS, "4")
    runtime.reset()
    session_id, _speaker = create_session()
    ceiling_s = clock.now_s + 4 * HOUR
    # When its speaker refreshes at 2 h and again at 3 h 50 min
    clock.advance(2 * HOUR)
    assert refresh_speaker(session_id)["statusCode"] == 200
    assert tables.session(session_id)["expiresAt"] == ceiling_s
    clock.advance(110 * 60)
    assert refresh_speaker(session_id)["statusCode"] == 200
    # Then it still expires at the ceiling, and the sweeper ends it there
    assert tables.session(session_id)["expiresAt"] == ceiling_s
    clock.advance(11 * 60)
    run_sweeper()
    item = tables.session(session_id)
    assert (item["isActive"], item["endReason"]) == (False, "expired")


def test_a_listener_refresh_does_not_extend_the_session(tables, gateway, clock) -> None:
    session_id, _speaker = create_session()
    listener = join(session_id)
    expires_at = tables.session(session_id)["expiresAt"]
    clock.advance(HOUR)
    query = {
        "action": "refreshConnection",
        "sessionId": session_id,
        "role": "listener",
        "targetLanguage": "es",
        "previousConnectionId": listener,
    }
    assert connect_with(query)[1]["statusCode"] == 200
    assert tables.session(session_id)["expiresAt"] == expires_at


def test_listener_rows_expire_with_their_own_connection_when_the_session_is_extended(tables, gateway, clock) -> None:
    session_id, _speaker = create_session()
    listener = join(session_id)
    connected_at_s = tables.connection(listener)["connectedAt"] // 1000
    clock.advance(2 * HOUR)
    assert refresh_speaker(session_id)["statusCode"] == 200
    assert tables.connection(listener)["expiresAt"] == connected_at_s + ROW_LIFETIME_SECONDS


def test_a_speaker_refresh_costs_a_read_and_one_transaction_with_the_extension_in_it(tables, gateway, clock) -> None:
    session_id, _speaker = create_session()
    clock.advance(HOUR)
    with DynamoDBRequests() as requests:
        assert refresh_speaker(session_id)["statusCode"] == 200
    assert requests.by_operation == {"GetItem": 1, "TransactWriteItems": 1}
    assert tables.session(session_id)["expiresAt"] == clock.now_s + LIFETIME


# --- active sessions per speaker --------------------------------------------------------------------------


def test_a_speaker_at_its_active_session_limit_is_refused_with_its_active_session_ids(tables, gateway) -> None:
    # Given a speaker with as many active sessions as the limit allows
    active = sorted(create_session()[0] for _ in range(LIMIT))
    before = tables.sessions_items()
    # When it creates another, on $connect and by message
    connection_id, response = connect_with({"action": "createSession", "sourceLanguage": "en"}, user_id=OWNER)
    error = create_refused()
    # Then both are refused (409), the message naming the active sessions, and nothing was written
    assert response["statusCode"] == 409
    assert tables.connection(connection_id) is None
    assert error["code"] == "ACTIVE_SESSION_LIMIT"
    assert error["activeSessions"] == active
    assert tables.sessions_items() == before
    assert listed_active_sessions(tables) == set(active)
    # While another speaker is not held back by them
    create_session("user-2")


def test_the_limit_is_the_environments(tables, gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(function_settings.ENV_MAX_ACTIVE_SESSIONS_PER_SPEAKER, "1")
    runtime.reset()
    only, _speaker = create_session()
    assert create_refused()["activeSessions"] == [only]


def test_ending_a_session_frees_its_place_under_the_limit(tables, gateway) -> None:
    sessions = [create_session() for _ in range(LIMIT)]
    (ended, speaker), *_rest = sessions
    assert ended in listed_active_sessions(tables)
    assert body_of(send({"action": "endSession"}, speaker, user_id=OWNER))["type"] == "sessionEnded"
    assert ended not in listed_active_sessions(tables)
    with DynamoDBRequests() as requests:
        assert create_on_connect()["statusCode"] == 200
    assert requests.by_operation == {"TransactWriteItems": 1}


@pytest.mark.parametrize("how", ["speakerTimeout", "expired"])
def test_a_session_the_sweeper_ends_frees_its_place_under_the_limit(tables, gateway, clock, how: str) -> None:
    sessions = [create_session() for _ in range(LIMIT)]
    (ended, speaker), *_rest = sessions
    assert ended in listed_active_sessions(tables)
    if how == "speakerTimeout":
        drop(speaker)
        clock.advance(limits.DEFAULT_SPEAKER_GRACE_SECONDS + 1)
    else:
        for session_id, _speaker in sessions[1:]:  # the others' speakers stay: refreshed, they live on
            clock.advance(1)
            assert refresh_speaker(session_id)["statusCode"] == 200
        clock.advance(LIFETIME)
    run_sweeper()
    assert tables.session(ended)["endReason"] == how
    assert ended not in listed_active_sessions(tables)
    with DynamoDBRequests() as requests:
        assert create_on_connect()["statusCode"] == 200
    assert requests.by_operation == {"TransactWriteItems": 1}


def test_a_session_deleted_before_the_sweeper_saw_it_does_not_lock_its_speaker_out(tables, gateway) -> None:
    # Given a speaker at its limit, one of whose sessions DynamoDB's TTL deleted before the sweeper ended it
    active = [create_session()[0] for _ in range(LIMIT)]
    tables.client.delete_item(TableName=tables.sessions, Key={"sessionId": {"S": active[0]}})
    # When it creates a session
    with DynamoDBRequests() as requests:
        assert create_on_connect()["statusCode"] == 200
    # Then the listed sessions were checked, the gone one forgotten, and the creation tried again
    assert requests.by_operation == {"TransactWriteItems": 2, "BatchGetItem": 1, "UpdateItem": 1}
    listed = listed_active_sessions(tables)
    assert len(listed) == LIMIT and active[0] not in listed and set(active[1:]) <= listed


def test_an_expired_session_still_listed_does_not_lock_its_speaker_out(tables, gateway, clock) -> None:
    # Given a speaker at its limit whose sessions all expired, not yet swept
    create_session()
    for _ in range(LIMIT - 1):
        create_session()
    clock.advance(LIFETIME + 1)
    # Then it can create a session: the expired ones are forgotten
    new, _speaker = create_session()
    assert listed_active_sessions(tables) == {new}


def test_a_refusal_at_the_limit_reads_the_listed_sessions_once(tables, gateway) -> None:
    for _ in range(LIMIT):
        create_session()
    connection_id = plain(user_id=OWNER)
    with DynamoDBRequests() as requests:
        response = send({"action": "createSession", "sourceLanguage": "en"}, connection_id, user_id=OWNER)
    assert response["statusCode"] == 409
    assert requests.by_operation == {"TransactWriteItems": 1, "BatchGetItem": 1}


def test_two_creations_at_the_limit_cannot_both_pass(tables, gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a speaker one session short of its limit
    for _ in range(LIMIT - 1):
        create_session()
    # When a second creation commits between the first one's start and its write (nothing is read first)
    transact = dynamodb.transact
    other: list[dict] = []
    interleaving: list[bool] = []

    def interleaved(items):
        if not interleaving:
            interleaving.append(True)
            other.append(create_on_connect())
        transact(items)

    monkeypatch.setattr(dynamodb, "transact", interleaved)
    first = create_on_connect()
    # Then exactly one of them was admitted, and the speaker has exactly the limit of active sessions
    assert sorted([first["statusCode"], other[0]["statusCode"]]) == [200, 409]
    assert len(listed_active_sessions(tables)) == LIMIT
    assert sum(1 for item in tables.sessions_items() if item["isActive"]) == LIMIT
