"""The error catalogue against the contract's table of codes and statuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambda_src.contract.errors import ErrorCode, ServiceError

# The contract's "Error codes" table: code -> status (the handshake status on connect).
CONTRACT_STATUSES = {
    "INVALID_CONFIGURATION": 400,
    "INVALID_PARAMETERS": 400,
    "INVALID_MESSAGE": 400,
    # The speaker app's code for a sendAudio chunk whose audio is not what it must be.
    "INVALID_AUDIO_FORMAT": 400,
    "UNKNOWN_ACTION": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "SESSION_NOT_FOUND": 404,
    "SESSION_ENDED": 410,
    # The service's addition: a speaker at its limit of active sessions (resume one instead).
    "ACTIVE_SESSION_LIMIT": 409,
    "RATE_LIMIT_EXCEEDED": 429,
    "SESSION_FULL": 503,
    "SERVICE_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
}


def test_catalogue_is_exactly_the_contracts():
    assert {code.name: code.status for code in ErrorCode} == CONTRACT_STATUSES


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda code: code.name)
def test_error_message_shape(code):
    message = ServiceError(code, "something is wrong").to_message(1_700_000_000_000)
    assert message == {
        "type": "error",
        "code": code.name,
        "message": "something is wrong",
        "timestamp": 1_700_000_000_000,
    }


def test_field_and_retry_after_appear_only_when_set():
    message = ServiceError(ErrorCode.SERVICE_UNAVAILABLE, "busy", field="sessionId", retry_after=2).to_message(1)
    assert message["field"] == "sessionId"
    assert message["retryAfter"] == 2
    bare = ServiceError(ErrorCode.SERVICE_UNAVAILABLE, "busy").to_message(1)
    assert "field" not in bare and "retryAfter" not in bare


SESSION_REFUSAL_WORDINGS = ("no session {", "only the speaker of session", "} has ended", "belongs to another speaker")


def test_each_session_refusal_is_worded_once_in_the_catalogue_module() -> None:
    lambda_src = Path(__file__).resolve().parents[2] / "lambda_src"
    where = {
        wording: sorted(
            str(path.relative_to(lambda_src))
            for path in lambda_src.rglob("*.py")
            if wording in path.read_text(encoding="utf-8")
        )
        for wording in SESSION_REFUSAL_WORDINGS
    }
    assert where == dict.fromkeys(SESSION_REFUSAL_WORDINGS, ["contract/errors.py"])
