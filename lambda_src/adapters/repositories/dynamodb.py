"""The shared DynamoDB plumbing of the repositories: one low-level client, (de)serialization, and the
translation of DynamoDB failures into catalogue errors."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from lambda_src.adapters.repositories.attribute_values import from_attribute, to_attribute
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.platform import aws

# botocore does not retry: the one policy below does, for every request, with one time budget.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1, read_timeout=2)
# Refusals worth repeating: throttling, server errors, and collisions with a concurrent transaction on the
# same item (every join touches its session's item). A cancelled transaction wrote nothing, so repeating it
# is safe; once an attempt may have been applied (5xx, timeout, token in progress), every later attempt of
# that request keeps its idempotency token.
_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ProvisionedThroughputExceeded",
        "ThrottlingException",
        "ThrottlingError",
        "RequestLimitExceeded",
    }
)
_SERVER_ERROR_CODES = frozenset({"InternalServerError", "ServiceUnavailable"})
# DynamoDB's answer while the first use of a ClientRequestToken is still being processed: repeat it, same token.
_IN_PROGRESS_CODE = "TransactionInProgressException"
_CONFLICT_CODES = frozenset({"TransactionConflict", "TransactionConflictException", _IN_PROGRESS_CODE})
_RETRYABLE_CODES = _THROTTLING_CODES | _SERVER_ERROR_CODES | _CONFLICT_CODES
_AMBIGUOUS_ERRORS = (ConnectionError, HTTPClientError)  # the request may or may not have been applied
# Full-jitter exponential backoff, at most RETRY_BUDGET_SECONDS of waiting per request: a route makes at
# most a few requests, so it answers (SERVICE_UNAVAILABLE at worst) well inside its 10 s timeout.
_FIRST_PAUSE_SECONDS = 0.02
_MAX_PAUSE_SECONDS = 0.5
RETRY_BUDGET_SECONDS = 1.5
# A conflict means another request on the same item is being applied at that moment, so waiting is progress
# (an audience joining on cue queues on its session's item this way: ``make bench``, section 7). Conflicts
# may wait this long, still within the invocation's budget below.
CONFLICT_RETRY_BUDGET_SECONDS = 6.0
RETRY_AFTER_SECONDS = 1
# And all the requests of one invocation together stop waiting this long before the function's timeout
# (or after INVOCATION_BUDGET_SECONDS when there is no Lambda context, e.g. in tests and tools).
REPLY_MARGIN_SECONDS = 2.0
INVOCATION_BUDGET_SECONDS = 6.0
# Waiting left to this invocation (seconds); counted in the pauses asked for, so it is exact whatever the
# clock does.
_invocation_wait_left: float = INVOCATION_BUDGET_SECONDS


def start_invocation(context: Any) -> None:
    """Bound the waiting of every request in this invocation by the function's remaining time."""
    global _invocation_wait_left
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    budget = remaining() / 1000 - REPLY_MARGIN_SECONDS if callable(remaining) else INVOCATION_BUDGET_SECONDS
    _invocation_wait_left = max(0.0, budget)


def _take_wait(waited: float, pause: float, budget: float) -> bool:
    """Whether this request may wait ``pause`` more within ``budget`` (and, if so, charge it to the invocation)."""
    global _invocation_wait_left
    if waited + pause > budget or pause > _invocation_wait_left:
        return False
    _invocation_wait_left -= pause
    return True


TransactItem = dict[str, Any]
# A transaction item and what to raise when its condition fails (given the item's old image, if returned).
Guarded = tuple[TransactItem, Callable[[dict[str, Any] | None], Exception]]


@cache
def client() -> Any:
    """The process's DynamoDB client (created once, reused across invocations)."""
    return aws.create_client("dynamodb", config=_CLIENT_CONFIG)


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: to_attribute(value) for key, value in item.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: from_attribute(value) for key, value in item.items()}


def values(**named: Any) -> dict[str, Any]:
    """ExpressionAttributeValues from keyword arguments: ``values(now=1)`` -> ``{":now": {"N": "1"}}``."""
    return {f":{name}": to_attribute(value) for name, value in named.items()}


def cancellation_reasons(error: ClientError) -> list[str]:
    """The per-item codes of a cancelled transaction (``"None"`` for items that were not at fault)."""
    return [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def old_image(error: ClientError) -> dict[str, Any] | None:
    """The item a failed condition returned (``ReturnValuesOnConditionCheckFailure``), or None."""
    item: Any = error.response.get("Item")
    return item if isinstance(item, dict) else None


def _retryable(error: Exception) -> bool:
    if isinstance(error, _AMBIGUOUS_ERRORS):
        return True
    if not isinstance(error, ClientError):
        return False
    code = error_code(error)
    if code == "TransactionCanceledException":
        reasons = cancellation_reasons(error)
        return any(r in _RETRYABLE_CODES for r in reasons) and "ConditionalCheckFailed" not in reasons
    return code in _RETRYABLE_CODES


def _maybe_applied(error: Exception) -> bool:
    """The request may have been applied though it failed: no answer (timeout), a server error, or a
    transaction whose token DynamoDB is still processing (an earlier attempt is being applied)."""
    if isinstance(error, _AMBIGUOUS_ERRORS):
        return True
    return isinstance(error, ClientError) and error_code(error) in _SERVER_ERROR_CODES | {_IN_PROGRESS_CODE}


def _conflict(error: Exception) -> bool:
    """Refused only because a concurrent transaction held one of the items (nothing was written)."""
    if not isinstance(error, ClientError):
        return False
    code = error_code(error)
    if code == "TransactionCanceledException":
        reasons = set(cancellation_reasons(error)) - {"None"}
        return bool(reasons) and reasons <= _CONFLICT_CODES
    return code in _CONFLICT_CODES


def unavailable() -> ServiceError:
    """The refusal of a request the store did not take in time (throttled or failing past the retries)."""
    return ServiceError(
        ErrorCode.SERVICE_UNAVAILABLE, "the session store is busy; retry shortly", retry_after=RETRY_AFTER_SECONDS
    )


# Given the arguments of a transaction refused only for a conflict (nothing applied), changes them for the next
# attempt: a join's next seat shard (decision record 0040).
OnConflict = Callable[[dict[str, Any]], None]


def request(operation: str, /, *, on_conflict: OnConflict | None = None, **arguments: Any) -> Any:
    """One DynamoDB request, repeated with full jitter while it fails for a reason worth repeating, for at
    most RETRY_BUDGET_SECONDS of waiting (CONFLICT_RETRY_BUDGET_SECONDS while it meets conflicts); then
    SERVICE_UNAVAILABLE. Other refusals (a failed condition) are raised as they came.

    ``on_conflict`` (transactions only): when an attempt was refused for a conflict alone and no earlier attempt
    can have been applied, it may change the next attempt's items (another seat shard instead of the one held),
    under the same pauses and budget; an attempt that may have been applied is always repeated as it was."""
    call = getattr(client(), operation)
    waited = 0.0
    pause = _FIRST_PAUSE_SECONDS
    maybe_applied = False
    while True:
        try:
            return call(**arguments)
        except (ClientError, *_AMBIGUOUS_ERRORS) as error:
            if not _retryable(error):
                raise
            sleep = random.uniform(0, pause)
            budget = CONFLICT_RETRY_BUDGET_SECONDS if _conflict(error) else RETRY_BUDGET_SECONDS
            if not _take_wait(waited, sleep, budget):
                raise unavailable() from error
            maybe_applied = maybe_applied or _maybe_applied(error)
            if operation == "transact_write_items" and not maybe_applied:
                # Refused whole (conflict, throttling) and no earlier attempt can have been applied: the next
                # attempt is a new request. Once one may have been, every repeat keeps its token, so DynamoDB
                # answers it as the transaction it already applied instead of applying it again.
                arguments["ClientRequestToken"] = _token()
                if on_conflict is not None and _conflict(error):
                    on_conflict(arguments)
        time.sleep(sleep)
        waited += sleep
        pause = min(pause * 2, _MAX_PAUSE_SECONDS)


def _token() -> str:
    return uuid.uuid4().hex


def pages(operation: str, **arguments: Any) -> Iterator[dict[str, Any]]:
    """Query / Scan results page by page, each page one :func:`request`."""
    while True:
        page = request(operation, **arguments)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def transact(items: Sequence[TransactItem], on_conflict: OnConflict | None = None) -> None:
    """Write ``items`` atomically (one TransactWriteItems request; idempotent across its repeats)."""
    request("transact_write_items", TransactItems=list(items), ClientRequestToken=_token(), on_conflict=on_conflict)


def transact_guarded(guarded: Sequence[Guarded], on_conflict: Callable[[], Sequence[Guarded]] | None = None) -> None:
    """Write the items atomically; when one's condition fails, raise that item's refusal (the first one).
    ``on_conflict``: the items (and refusals) of the next attempt after one refused for a conflict alone
    (:func:`request`)."""
    current = list(guarded)

    def next_items(arguments: dict[str, Any]) -> None:
        assert on_conflict is not None
        current[:] = on_conflict()
        arguments["TransactItems"] = [item for item, _refusal in current]

    try:
        if on_conflict is None:
            transact([item for item, _refusal in current])
        else:
            transact([item for item, _refusal in current], next_items)
    except ClientError as error:
        reasons: list[Any] = list(error.response.get("CancellationReasons", []))
        for (_item, refusal), reason in zip(current, reasons, strict=False):  # one reason per item, when given
            if reason.get("Code") == "ConditionalCheckFailed":
                raise refusal(reason.get("Item")) from error
        raise
