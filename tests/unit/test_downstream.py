"""The typed API downstream processors use: ``read_partial_result_config``, ``listeners_by_language`` and
``broadcast``."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from lambda_src.contract import limits
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.downstream import broadcast, listeners_by_language, read_partial_result_config
from lambda_src.handlers import connect
from lambda_src.model.partial_results import PartialResultConfig
from tests.support.helpers import ABSENT, connect_event
from tests.unit.flows import handshake_done_ms, join


def test_returns_the_stored_configuration(tables):
    tables.put_session(
        sessionId="golden-eagle-427",
        partialResultsEnabled=False,
        minStabilityThreshold=Decimal("0.72"),
        maxBufferTimeout=Decimal("9.5"),
    )
    assert read_partial_result_config("golden-eagle-427") == PartialResultConfig(False, Decimal("0.72"), Decimal("9.5"))


def test_returns_what_create_session_stored(tables):
    query = {
        "action": "createSession",
        "sourceLanguage": "en",
        "partialResults": "false",
        "minStability": "0.9",
        "maxBufferTimeout": "3.5",
    }
    assert connect.handler(connect_event(query, user_id="u"), None)["statusCode"] == 200
    session_id = tables.sessions_items()[0]["sessionId"]
    config = read_partial_result_config(session_id)
    assert config == PartialResultConfig(False, Decimal("0.9"), Decimal("3.5"))
    assert isinstance(config.min_stability_threshold, Decimal)


def test_item_without_the_fields_reads_back_with_defaults(tables):
    # Given an item written before the partial-result fields existed
    tables.put_session(
        sessionId="golden-eagle-427",
        partialResultsEnabled=ABSENT,
        minStabilityThreshold=ABSENT,
        maxBufferTimeout=ABSENT,
    )
    assert "minStabilityThreshold" not in tables.session("golden-eagle-427")
    # Then the reader gives the defaults
    assert read_partial_result_config("golden-eagle-427") == PartialResultConfig(True, Decimal("0.85"), Decimal("5.0"))


def test_corrupt_stored_values_read_back_as_defaults(tables):
    tables.put_session(sessionId="golden-eagle-427", minStabilityThreshold="abc", partialResultsEnabled="yes")
    assert read_partial_result_config("golden-eagle-427") == PartialResultConfig()


def test_missing_session_is_none(tables):
    assert read_partial_result_config("brave-otter-321") is None


def test_expired_session_is_none(tables):
    # Given a session whose expiresAt has passed but that TTL has not deleted yet
    tables.put_session(sessionId="golden-eagle-427", expiresAt=int(time.time()) - 1)
    assert tables.session("golden-eagle-427") is not None
    assert read_partial_result_config("golden-eagle-427") is None


def test_session_expiring_now_is_none(tables):
    tables.put_session(sessionId="golden-eagle-427", expiresAt=int(time.time()))
    assert read_partial_result_config("golden-eagle-427") is None


def test_an_ended_session_has_no_configuration_to_follow(tables):
    tables.put_session(sessionId="golden-eagle-427", isActive=False, endReason="endedBySpeaker")
    assert read_partial_result_config("golden-eagle-427") is None


# -- listeners by language and broadcast: what translation and synthesis stages use to reach listeners -----------


def _audience(tables) -> dict[str, list[str]]:
    tables.put_session(sessionId="golden-eagle-427")
    return {language: [join(language=language) for _ in range(count)] for language, count in [("es", 2), ("de", 1)]}


def test_listeners_by_language_lists_each_languages_connections(tables) -> None:
    audience = _audience(tables)
    assert {language: sorted(ids) for language, ids in listeners_by_language("golden-eagle-427").items()} == {
        language: sorted(ids) for language, ids in audience.items()
    }
    assert listeners_by_language("brave-otter-321") == {}


def test_broadcast_reaches_the_listeners_of_its_language_only(tables, gateway) -> None:
    audience = _audience(tables)
    message = {"type": "audioSegment", "sessionId": "golden-eagle-427", "url": "https://example.com/1.ogg"}
    report = broadcast("golden-eagle-427", "es", message)
    assert sorted(target for target, _message in gateway.posts()) == sorted(audience["es"])
    assert all(posted == message for _target, posted in gateway.posts())
    assert (report.target_language, report.listeners, report.delivered, report.gone, report.failed) == (
        "es",
        2,
        2,
        0,
        0,
    )


def test_broadcast_counts_a_vanished_listener_out_once_like_its_disconnect(tables, gateway) -> None:
    audience = _audience(tables)
    vanished = join(language="es", connected_at_ms=handshake_done_ms())
    gateway.gone.add(vanished)
    message = {"type": "audioSegment", "sessionId": "golden-eagle-427"}
    first = broadcast("golden-eagle-427", "es", message)
    again = broadcast("golden-eagle-427", "es", message, listeners=[*audience["es"], vanished])
    assert (first.gone, first.gone_listeners, first.delivered) == (1, (vanished,), 2)
    assert (again.gone, again.delivered) == (1, 2)  # (its row is gone already: nothing more is counted)
    assert tables.connection(vanished) is None
    assert tables.session("golden-eagle-427")["listenerCount"] == 3


@pytest.mark.parametrize(
    ("session_id", "language", "message", "field"),
    [
        ("not a session id", "es", {"type": "x"}, "sessionId"),
        ("golden-eagle-427", "xx", {"type": "x"}, "targetLanguage"),
        ("golden-eagle-427", None, {"type": "x"}, "targetLanguage"),
        ("golden-eagle-427", "es", {"text": "no type"}, "message"),
        ("golden-eagle-427", "es", {"type": ""}, "message"),
        ("golden-eagle-427", "es", ["type", "x"], "message"),
        ("golden-eagle-427", "es", {"type": "x", "when": object()}, "message"),
        ("golden-eagle-427", "es", {"type": "x", "text": "a" * limits.MAX_FRAME_BYTES}, "message"),
    ],
    ids=["session-id", "language", "no-language", "no-type", "empty-type", "not-an-object", "not-json", "too-large"],
)
def test_broadcast_refuses_bad_input_with_a_catalogue_error_and_posts_nothing(
    tables, gateway, session_id, language, message, field
) -> None:
    _audience(tables)
    with pytest.raises(ServiceError) as refused:
        broadcast(session_id, language, message)
    assert (refused.value.code, refused.value.field) == (ErrorCode.INVALID_PARAMETERS, field)
    assert gateway.posts() == []
