"""The one retry policy (``lambda_src.adapters.repositories.dynamodb.request``) on its own: how long it may wait for
each kind of refusal, and that what it charges is the waiting it asked for."""

from __future__ import annotations

import functools
import random
import time
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from lambda_src.adapters.repositories import dynamodb
from lambda_src.contract.errors import ErrorCode, ServiceError


def _cancelled(*reasons: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": reason} for reason in reasons],
        },
        "TransactWriteItems",
    )


def _throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "TransactWriteItems")


class _AlwaysRefusing:
    def __init__(self, error: ClientError) -> None:
        self.error = error
        self.attempts = 0

    def transact_write_items(self, **_: Any) -> None:
        self.attempts += 1
        raise self.error


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # every jitter at its maximum
    dynamodb.start_invocation(None)
    return recorded


def _give_up(monkeypatch: pytest.MonkeyPatch, error: ClientError) -> _AlwaysRefusing:
    refusing = _AlwaysRefusing(error)
    monkeypatch.setattr(dynamodb, "client", functools.cache(lambda: refusing))  # cached, as the real one is
    with pytest.raises(ServiceError) as raised:
        dynamodb.transact([{"Put": {}}])
    assert raised.value.code is ErrorCode.SERVICE_UNAVAILABLE
    return refusing


def test_throttling_waits_at_most_the_retry_budget(monkeypatch, sleeps) -> None:
    _give_up(monkeypatch, _throttled())
    assert 1.0 < sum(sleeps) <= dynamodb.RETRY_BUDGET_SECONDS


def test_a_conflict_waits_longer_since_another_request_is_making_progress(monkeypatch, sleeps) -> None:
    _give_up(monkeypatch, _cancelled("None", "TransactionConflict"))
    assert dynamodb.RETRY_BUDGET_SECONDS < sum(sleeps) <= dynamodb.CONFLICT_RETRY_BUDGET_SECONDS


def test_a_cancellation_that_is_not_only_conflicts_keeps_the_shorter_budget(monkeypatch, sleeps) -> None:
    _give_up(monkeypatch, _cancelled("TransactionConflict", "ThrottlingError"))
    assert sum(sleeps) <= dynamodb.RETRY_BUDGET_SECONDS


def test_conflicts_stay_within_what_the_invocation_has_left(monkeypatch, sleeps) -> None:
    dynamodb.start_invocation(SimpleNamespace(get_remaining_time_in_millis=lambda: 3_000))
    _give_up(monkeypatch, _cancelled("TransactionConflict"))
    assert sum(sleeps) <= 3.0 - dynamodb.REPLY_MARGIN_SECONDS


def test_the_budget_is_charged_the_waiting_asked_for_not_the_longest_it_could_have_been(monkeypatch, sleeps) -> None:
    at_most = _give_up(monkeypatch, _throttled()).attempts
    sleeps.clear()
    dynamodb.start_invocation(None)
    monkeypatch.setattr(random, "uniform", lambda low, high: high / 4)  # shorter jitters: more attempts
    shorter = _give_up(monkeypatch, _throttled())
    assert shorter.attempts > at_most
    assert sum(sleeps) <= dynamodb.RETRY_BUDGET_SECONDS < sum(sleeps) + dynamodb._MAX_PAUSE_SECONDS / 4 + 1e-9


class _Scripted:
    """Answers each attempt with the next error (None: success), recording the token each one carried."""

    def __init__(self, *errors: Exception | None) -> None:
        self.errors = list(errors)
        self.tokens: list[str] = []

    def transact_write_items(self, **arguments: Any) -> dict[str, Any]:
        self.tokens.append(arguments["ClientRequestToken"])
        error = self.errors.pop(0)
        if error is not None:
            raise error
        return {}


def _in_progress() -> ClientError:
    return ClientError(
        {"Error": {"Code": "TransactionInProgressException", "Message": "in progress"}}, "TransactWriteItems"
    )


def _run(monkeypatch: pytest.MonkeyPatch, *errors: Exception | None) -> list[str]:
    scripted = _Scripted(*errors)
    monkeypatch.setattr(dynamodb, "client", functools.cache(lambda: scripted))
    dynamodb.transact([{"Put": {}}])
    return scripted.tokens


@pytest.mark.parametrize(
    "then",
    [_throttled, _in_progress, lambda: _cancelled("TransactionConflict")],
    ids=["throttled", "in progress", "conflict"],
)
def test_once_an_attempt_may_have_been_applied_every_repeat_keeps_its_token(monkeypatch, sleeps, then) -> None:
    # Given a transaction whose first attempt timed out (maybe applied), whose repeats are refused whole
    tokens = _run(monkeypatch, ReadTimeoutError(endpoint_url="https://dynamodb"), then(), then(), None)
    # Then every attempt carried the first attempt's token (DynamoDB answers a repeat of an applied one as done)
    assert len(tokens) == 4 and len(set(tokens)) == 1


def test_a_server_error_makes_every_later_repeat_keep_the_token(monkeypatch, sleeps) -> None:
    server_error = ClientError({"Error": {"Code": "InternalServerError", "Message": "oops"}}, "TransactWriteItems")
    tokens = _run(monkeypatch, _throttled(), server_error, _throttled(), None)
    assert len(tokens) == 4 and tokens[0] != tokens[1] and len(set(tokens[1:])) == 1


def test_a_transaction_refused_before_any_attempt_could_apply_is_repeated_as_a_new_request(monkeypatch, sleeps) -> None:
    tokens = _run(monkeypatch, _throttled(), _cancelled("TransactionConflict"), None)
    assert len(set(tokens)) == 3


class _ScriptedItems(_Scripted):
    """As :class:`_Scripted`, recording the items each attempt carried."""

    def __init__(self, *errors: Exception | None) -> None:
        super().__init__(*errors)
        self.items: list[Any] = []

    def transact_write_items(self, **arguments: Any) -> dict[str, Any]:
        self.items.append(arguments["TransactItems"])
        return super().transact_write_items(**arguments)


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        # A conflict alone (nothing applied): the next attempt goes elsewhere, and again after another conflict
        ((_cancelled("TransactionConflict", "None"), _cancelled("None", "TransactionConflict"), None), [0, 1, 2]),
        # Throttled: the same items again (it met no held item)
        ((_throttled(), None), [0, 0]),
        # Once an attempt may have been applied (a timeout), every repeat is that attempt, conflicts or not
        ((ReadTimeoutError(endpoint_url="https://dynamodb"), _cancelled("TransactionConflict"), None), [0, 0, 0]),
    ],
    ids=["conflicts", "throttled", "maybe applied"],
)
def test_a_conflict_alone_lets_the_caller_move_the_next_attempt(monkeypatch, sleeps, errors, expected) -> None:
    scripted = _ScriptedItems(*errors)
    monkeypatch.setattr(dynamodb, "client", functools.cache(lambda: scripted))
    moves = iter(range(1, 10))
    dynamodb.transact_guarded(
        [({"Put": {"n": 0}}, Exception)], on_conflict=lambda: [({"Put": {"n": next(moves)}}, Exception)]
    )
    # Then each attempt carried the items expected, under the one policy's pauses
    assert [items[0]["Put"]["n"] for items in scripted.items] == expected
    assert len(sleeps) == len(expected) - 1
