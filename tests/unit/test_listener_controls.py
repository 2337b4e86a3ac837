"""A listener's own controls: ``changeLanguage`` (and the listener app's ``switchLanguage``) moves its row to another
target language with the count unchanged; ``pausePlayback`` / ``resumePlayback`` are acknowledged to it alone."""

from __future__ import annotations

import pytest

from tests.support.helpers import DynamoDBRequests, body_of
from tests.unit.flows import create_session, error_of, join, plain, send

LANGUAGE_ACTIONS = ("changeLanguage", "switchLanguage")


def status(speaker: str) -> dict:
    return body_of(send({"action": "getSessionStatus"}, speaker))


@pytest.mark.parametrize("action", LANGUAGE_ACTIONS)
def test_a_listener_changes_language_and_the_counts_follow_without_the_total_moving(tables, gateway, action) -> None:
    # Given a session with listeners in Spanish and French
    session_id, speaker = create_session()
    moving = join(session_id, "es")
    join(session_id, "fr")
    # When the Spanish listener switches to German
    with DynamoDBRequests() as requests:
        answer = body_of(send({"action": action, "targetLanguage": "de"}, moving))
    # Then it is told, in one request, and the session's counts follow
    assert (answer["type"], answer["sessionId"], answer["targetLanguage"]) == ("languageChanged", session_id, "de")
    assert requests.by_operation == {"UpdateItem": 1}
    assert tables.connection(moving)["targetLanguage"] == "de"
    after = status(speaker)
    assert after["listenerCount"] == 2
    assert after["listenersByLanguage"] == {"de": 1, "fr": 1}
    assert gateway.posts() == []  # nobody else is told


def test_changing_to_the_same_language_changes_nothing(tables, gateway) -> None:
    session_id, speaker = create_session()
    listener = join(session_id, "es")
    answer = body_of(send({"action": "changeLanguage", "targetLanguage": "es"}, listener))
    assert (answer["type"], answer["targetLanguage"]) == ("languageChanged", "es")
    assert status(speaker)["listenersByLanguage"] == {"es": 1}
    assert tables.session(session_id)["listenerCount"] == 1


@pytest.mark.parametrize("language", [None, "", "xx", "EN", 7, ["es"], "e" * 300])
def test_an_unsupported_language_is_refused_and_changes_nothing(tables, language) -> None:
    session_id, _speaker = create_session()
    listener = join(session_id, "es")
    body = (
        {"action": "changeLanguage"} if language is None else {"action": "changeLanguage", "targetLanguage": language}
    )
    response = send(body, listener)
    assert error_of(response) == (400, "INVALID_PARAMETERS")
    assert body_of(response)["field"] == "targetLanguage"
    assert tables.connection(listener)["targetLanguage"] == "es"


@pytest.mark.parametrize("action", LANGUAGE_ACTIONS)
def test_a_speaker_cannot_change_language(tables, action) -> None:
    session_id, speaker = create_session()
    assert error_of(send({"action": action, "targetLanguage": "de"}, speaker)) == (403, "FORBIDDEN")
    row = tables.connection(speaker)
    assert (row["role"], row.get("targetLanguage")) == ("speaker", None)
    assert status(speaker)["listenersByLanguage"] == {}


@pytest.mark.parametrize("action", LANGUAGE_ACTIONS)
def test_a_connection_in_no_session_cannot_change_language(tables, action) -> None:
    connection = plain()
    assert error_of(send({"action": action, "targetLanguage": "de"}, connection)) == (404, "SESSION_NOT_FOUND")
    assert error_of(send({"action": action, "targetLanguage": "de"}, "never-connected")) == (404, "SESSION_NOT_FOUND")
    assert "targetLanguage" not in tables.connection(connection)
    assert tables.connection("never-connected") is None


def test_a_listener_that_left_cannot_change_language(tables) -> None:
    session_id, _speaker = create_session()
    listener = join(session_id, "es")
    assert body_of(send({"action": "leaveSession"}, listener))["type"] == "sessionLeft"
    assert error_of(send({"action": "changeLanguage", "targetLanguage": "de"}, listener)) == (404, "SESSION_NOT_FOUND")
    assert "targetLanguage" not in tables.connection(listener)


@pytest.mark.parametrize(
    ("action", "acknowledgement"), [("pausePlayback", "playbackPaused"), ("resumePlayback", "playbackResumed")]
)
def test_playback_controls_are_acknowledged_to_that_listener_only(tables, gateway, action, acknowledgement) -> None:
    session_id, speaker = create_session()
    listener = join(session_id, "es")
    other = join(session_id, "es")
    before = tables.session(session_id)
    with DynamoDBRequests() as requests:
        answer = body_of(send({"action": action}, listener))
    assert (answer["type"], answer["sessionId"]) == (acknowledgement, session_id)
    # One conditional update of its own row (the pause is recorded there: speech skips a paused listener)
    assert requests.by_operation == {"UpdateItem": 1}
    assert tables.connection(listener).get("playbackPaused") is (True if action == "pausePlayback" else None)
    # Nobody else hears of it, and neither the session nor the speaker's state moves
    assert gateway.posts() == []
    assert tables.session(session_id) == before
    assert status(speaker)["broadcastState"]["isPaused"] is False
    assert tables.connection(other)["targetLanguage"] == "es"


@pytest.mark.parametrize("action", ["pausePlayback", "resumePlayback"])
def test_playback_controls_are_refused_to_what_is_not_a_listener_of_a_session(tables, action) -> None:
    _session_id, speaker = create_session()
    assert error_of(send({"action": action}, speaker)) == (403, "FORBIDDEN")
    assert error_of(send({"action": action}, plain())) == (404, "SESSION_NOT_FOUND")


@pytest.mark.parametrize("action", ["pausePlayback", "resumePlayback", "changeLanguage"])
def test_listener_controls_refuse_an_oversized_field(tables, action) -> None:
    listener = join(create_session()[0], "es")
    response = send({"action": action, "targetLanguage": "es", "note": "x" * 300}, listener)
    assert error_of(response) == (400, "INVALID_PARAMETERS")
    assert body_of(response)["field"] == "note"
