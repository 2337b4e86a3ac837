"""The typed reader downstream processors use: ``read_partial_result_config``."""

from __future__ import annotations

import time
from decimal import Decimal

from lambda_src.downstream import read_partial_result_config
from lambda_src.handlers import connect
from lambda_src.partial_results import PartialResultConfig
from tests.unit.helpers import ABSENT, connect_event


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
