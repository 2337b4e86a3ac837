"""The speaker rule, applied once for every action the action tables mark as a speaker's: the request is
validated first, then a caller without a speaker identity is refused (401) before any DynamoDB request."""

from __future__ import annotations

import pytest

from lambda_src.contract.routes import CREATE_SESSION, REFRESH_CONNECTION, RESUME_SESSION
from lambda_src.handlers import connect, message
from tests.support.helpers import DynamoDBRequests, body_of, connect_event, message_event, new_connection_id

UNKNOWN_SESSION = "quiet-otter-123"
SPEAKER_REQUESTS = {
    CREATE_SESSION: {"action": CREATE_SESSION, "sourceLanguage": "en"},
    REFRESH_CONNECTION: {"action": REFRESH_CONNECTION, "sessionId": UNKNOWN_SESSION, "role": "speaker"},
    RESUME_SESSION: {"action": RESUME_SESSION, "sessionId": UNKNOWN_SESSION},
}
# The same requests, each with one field that validation refuses.
INVALID_SPEAKER_REQUESTS = {
    CREATE_SESSION: ({**SPEAKER_REQUESTS[CREATE_SESSION], "sourceLanguage": "xx"}, "sourceLanguage"),
    REFRESH_CONNECTION: ({**SPEAKER_REQUESTS[REFRESH_CONNECTION], "sessionId": "nope"}, "sessionId"),
    RESUME_SESSION: ({**SPEAKER_REQUESTS[RESUME_SESSION], "sessionId": "nope"}, "sessionId"),
}


@pytest.mark.parametrize("action", sorted(SPEAKER_REQUESTS))
def test_a_speaker_action_on_connect_without_a_token_is_refused_before_any_request(tables, action) -> None:
    with DynamoDBRequests() as requests:
        response = connect.handler(connect_event(SPEAKER_REQUESTS[action]), None)
    assert (response["statusCode"], body_of(response)["code"]) == (401, "UNAUTHORIZED")
    assert requests.total == 0
    assert tables.raw_sessions() == []


@pytest.mark.parametrize("action", sorted(INVALID_SPEAKER_REQUESTS))
def test_a_speaker_action_on_connect_is_validated_before_the_token_is_asked_for(tables, action) -> None:
    query, field = INVALID_SPEAKER_REQUESTS[action]
    response = connect.handler(connect_event(query), None)
    assert response["statusCode"] == 400
    assert body_of(response)["field"] == field


def test_a_create_session_message_is_validated_before_the_token_is_asked_for(tables) -> None:
    query, field = INVALID_SPEAKER_REQUESTS[CREATE_SESSION]
    response = message.handler(message_event(query, connection_id=new_connection_id()), None)
    assert response["statusCode"] == 400
    assert body_of(response)["field"] == field


def test_a_listener_refresh_needs_no_token(tables) -> None:
    query = {"action": REFRESH_CONNECTION, "sessionId": UNKNOWN_SESSION, "role": "listener", "targetLanguage": "es"}
    response = connect.handler(connect_event(query), None)
    assert (response["statusCode"], body_of(response)["code"]) == (404, "SESSION_NOT_FOUND")
