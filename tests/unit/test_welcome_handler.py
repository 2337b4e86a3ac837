"""The welcome function: a connection's first message, posted once its handshake completes."""

from __future__ import annotations

import time

import pytest

from lambda_src.adapters import connections_api
from lambda_src.adapters.repositories.connections import stream_changes
from lambda_src.app.welcome import HANDSHAKE_RETRY_DELAYS, pending_welcomes
from lambda_src.handlers import welcome


def record(event_name: str, connection_id: str, message: str | None = None) -> dict:
    image = {"connectionId": {"S": connection_id}, "role": {"S": "speaker"}, "connectedAt": {"N": "1"}}
    if message is not None:
        image["welcome"] = {"S": message}
    body = {"Keys": {"connectionId": {"S": connection_id}}, "StreamViewType": "NEW_IMAGE"}
    if event_name != "REMOVE":
        body["NewImage"] = image
    return {"eventID": connection_id, "eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": body}


@pytest.fixture
def no_sleep(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def test_pending_welcomes_picks_only_inserts_with_a_welcome():
    # Given a stream batch of inserts with and without a first message, modifies and removes
    event = {
        "Records": [
            record("INSERT", "a", '{"type":"sessionCreated"}'),
            record("INSERT", "b"),
            record("MODIFY", "c", '{"type":"sessionJoined"}'),
            record("REMOVE", "d"),
            record("INSERT", "e", '{"type":"sessionJoined"}'),
        ]
    }
    # Then only the inserts carrying a welcome are picked, with their messages
    assert pending_welcomes(stream_changes(event)) == [
        ("a", ('{"type":"sessionCreated"}',)),
        ("e", ('{"type":"sessionJoined"}',)),
    ]


def test_pending_welcomes_of_an_empty_event():
    assert pending_welcomes(stream_changes({})) == []
    assert pending_welcomes(stream_changes({"Records": []})) == []


def test_handler_posts_the_message_to_its_connection(monkeypatch, no_sleep):
    calls = []

    def post(connection_id, data):
        calls.append((connection_id, data))
        return True

    monkeypatch.setattr(connections_api, "post", post)
    result = welcome.handler({"Records": [record("INSERT", "conn-1", '{"type":"sessionCreated"}')]}, None)
    assert calls == [("conn-1", '{"type":"sessionCreated"}')]
    assert no_sleep == []
    assert result == {"delivered": 1}


def test_a_410_before_the_handshake_completes_is_retried(monkeypatch, no_sleep):
    # Given a connection that answers 410 twice before its handshake completes
    answers = iter([False, False, True])
    calls = []

    def post(connection_id, data):
        calls.append(connection_id)
        return next(answers)

    monkeypatch.setattr(connections_api, "post", post)
    # When its welcome is delivered
    welcome.handler({"Records": [record("INSERT", "conn-1", "{}")]}, None)
    # Then it is posted three times, waiting the first two delays in between
    assert calls == ["conn-1"] * 3
    assert no_sleep == list(HANDSHAKE_RETRY_DELAYS[:2])


def test_a_connection_that_never_completes_is_given_up_after_bounded_retries(monkeypatch, no_sleep):
    calls = []

    def post(connection_id, data):
        calls.append(connection_id)
        return False

    monkeypatch.setattr(connections_api, "post", post)
    welcome.handler({"Records": [record("INSERT", "conn-1", "{}")]}, None)
    assert len(calls) == len(HANDSHAKE_RETRY_DELAYS) + 1
    assert no_sleep == list(HANDSHAKE_RETRY_DELAYS)
    assert sum(HANDSHAKE_RETRY_DELAYS) < 10  # well inside a Lambda timeout


def test_one_failing_post_does_not_stop_the_others(monkeypatch, no_sleep):
    delivered = []

    def post(connection_id, data):
        if connection_id == "bad":
            raise RuntimeError("management API down")
        delivered.append((connection_id, data))
        return True

    monkeypatch.setattr(connections_api, "post", post)
    event = {
        "Records": [record("INSERT", "bad", "x"), record("INSERT", "good-1", "y"), record("INSERT", "good-2", "z")]
    }
    welcome.handler(event, None)  # no exception escapes
    assert sorted(delivered) == [("good-1", "y"), ("good-2", "z")]


def test_nothing_is_posted_for_records_without_a_welcome(monkeypatch, no_sleep):
    calls = []

    def post(*args):
        calls.append(args)
        return True

    monkeypatch.setattr(connections_api, "post", post)
    result = welcome.handler({"Records": [record("INSERT", "a"), record("MODIFY", "b", "m")]}, None)
    assert calls == []
    assert result == {"delivered": 0}
