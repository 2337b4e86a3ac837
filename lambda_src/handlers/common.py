"""What every entry point shares: one invocation wrapper (:func:`entry_point`) for every function, and, for the
WebSocket routes and the HTTP API's, reading the event and turning any outcome into a reply.

No exception leaves a WebSocket or HTTP handler: catalogue errors become ``error`` replies with their status,
anything else is logged with the request id and becomes ``INTERNAL_ERROR`` without a stack trace.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from lambda_src.adapters.repositories import dynamodb
from lambda_src.contract import limits
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.model.caller import Caller
from lambda_src.platform import metrics
from lambda_src.platform.log import CONNECTION_ID_KEY, REQUEST_ID_KEY, ROUTE_KEY, clear_correlation_keys, logger
from lambda_src.protocol import http_bodies, messages

if TYPE_CHECKING:  # for annotations only: nothing more is imported when a function loads
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambda_src.adapters.repositories.dynamodb import Guarded

Event = dict[str, Any]
Response = dict[str, Any]
_Result = TypeVar("_Result")


def request_context(event: Event) -> dict[str, Any]:
    context = event.get("requestContext")
    return context if isinstance(context, dict) else {}


def connection_id(event: Event) -> str:
    return str(request_context(event).get("connectionId", ""))


def connected_at_ms(event: Event) -> int:
    value = request_context(event).get("connectedAt")
    return int(value) if isinstance(value, (int, float)) else messages.now_ms()


def source_ip(event: Event) -> str | None:
    """The client's address as API Gateway saw it (used for rate limiting only, and only as a hash)."""
    identity = request_context(event).get("identity")
    address = identity.get("sourceIp") if isinstance(identity, dict) else None
    return address if isinstance(address, str) and address else None


def authorized_user_id(event: Event) -> str | None:
    """The speaker's user id the authorizer returned on ``$connect`` (API Gateway repeats it on every route)."""
    authorizer = request_context(event).get("authorizer")
    user_id = authorizer.get("userId") if isinstance(authorizer, dict) else None
    return user_id if isinstance(user_id, str) and user_id else None


def request_time_ms(event: Event) -> int | None:
    """When API Gateway received the request (``requestTimeEpoch``, epoch ms), when the event says."""
    value = request_context(event).get("requestTimeEpoch")
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def caller(event: Event, now_ms: int, guards: tuple[Guarded, ...] = ()) -> Caller:
    """Who sent this request (read once per event), at ``now_ms``."""
    request_id = request_context(event).get("requestId")
    return Caller(
        connection_id(event),
        connected_at_ms(event),
        authorized_user_id(event),
        now_ms,
        guards,
        request_time_ms=request_time_ms(event),
        request_id=request_id if isinstance(request_id, str) else "",
    )


def query_parameters(event: Event) -> dict[str, str]:
    params = event.get("queryStringParameters")
    return dict(params) if isinstance(params, dict) else {}


def _refuse_constant(name: str) -> Any:
    raise ServiceError(ErrorCode.INVALID_MESSAGE, f"the message must be JSON without {name}")


def _without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: a frame naming ``action`` twice is ambiguous (API Gateway may
    have routed it on either), so it is refused rather than read one way."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ServiceError(ErrorCode.INVALID_MESSAGE, "the message must not repeat a key")
    return obj


def message_body(event: Event) -> dict[str, Any]:
    """The frame as a JSON object, numbers as exact Decimals; refused before parsing when too large."""
    body = event.get("body")
    if not isinstance(body, str) or not body:
        raise ServiceError(ErrorCode.INVALID_MESSAGE, "the message must be a JSON object, got an empty frame")
    if len(body) > limits.MAX_FRAME_BYTES or len(body.encode("utf-8")) > limits.MAX_FRAME_BYTES:
        raise ServiceError(ErrorCode.INVALID_MESSAGE, f"the message must be at most {limits.MAX_FRAME_BYTES} bytes")
    try:
        parsed = json.loads(
            body, parse_float=Decimal, parse_constant=_refuse_constant, object_pairs_hook=_without_duplicates
        )
    except (ValueError, RecursionError):
        raise ServiceError(ErrorCode.INVALID_MESSAGE, "the message must be a JSON object, got invalid JSON") from None
    if not isinstance(parsed, dict):
        raise ServiceError(
            ErrorCode.INVALID_MESSAGE, f"the message must be a JSON object, got a JSON {type(parsed).__name__}"
        )
    return parsed


def reply(message: Mapping[str, Any], status: int = 200) -> Response:
    return {"statusCode": status, "body": messages.encode(dict(message))}


def refused_action(event: Event) -> str | None:
    """The action a refusal answers: the message route's key (the frame's ``action``, as API Gateway routed it);
    None for a handshake, a disconnect or ``$default`` (a frame naming no action the service routes)."""
    route_key = request_context(event).get("routeKey")
    return route_key if isinstance(route_key, str) and not route_key.startswith("$") else None


def error_reply(error: ServiceError, action: str | None = None) -> Response:
    """The ``error`` message of ``error``, naming ``action`` when it answers a message."""
    return reply(error.to_message(messages.now_ms(), action), error.code.status)


def invocation_request_id(event: Event, context: LambdaContext | None) -> str | None:
    """API Gateway's request id when the event has one, else Lambda's."""
    return request_context(event).get("requestId") or getattr(context, "aws_request_id", None)


def entry_point(
    route: str | None = None,
) -> Callable[[Callable[[Event, LambdaContext | None], _Result]], Callable[[Event, LambdaContext | None], _Result]]:
    """The one invocation wrapper of every function: bound the invocation's DynamoDB waits by its remaining time,
    append the correlation keys (``request_id``; ``connection_id`` and ``route`` when the event has them, or
    ``route`` as given), and whatever the outcome, publish the invocation's metrics once and forget the keys so
    that a warm instance's next invocation starts clean. What the body raises is raised on."""

    def decorate(
        body: Callable[[Event, LambdaContext | None], _Result],
    ) -> Callable[[Event, LambdaContext | None], _Result]:
        @functools.wraps(body)
        def handler(event: Event, context: LambdaContext | None) -> _Result:
            ctx = request_context(event)
            dynamodb.start_invocation(context)
            keys = {
                CONNECTION_ID_KEY: ctx.get("connectionId"),
                REQUEST_ID_KEY: invocation_request_id(event, context),
                ROUTE_KEY: route or ctx.get("routeKey"),
            }
            logger.append_keys(**{key: value for key, value in keys.items() if value is not None})
            try:
                return body(event, context)
            finally:
                metrics.flush()  # once per invocation, whatever its outcome
                clear_correlation_keys()

        return handler

    return decorate


def websocket_handler(route: Callable[[Event], Response]) -> Callable[[Event, LambdaContext | None], Response]:
    """An :func:`entry_point` whose every outcome is a reply and whose every error reply is counted
    (``Rejections``)."""
    return _answering(route, lambda error, event: error_reply(error, refused_action(event)))


def http_response(status: int, body: Mapping[str, Any] | None = None) -> Response:
    """An HTTP API answer (payload format 2.0): JSON, or no body (204). API Gateway adds the CORS headers."""
    response: Response = {"statusCode": status, "headers": {"content-type": "application/json"}}
    if body is not None:
        response["body"] = messages.encode(dict(body))
    return response


def http_error_response(error: ServiceError) -> Response:
    """The one error shape of the HTTP API (``http_bodies.error_body``), with the code's status."""
    return http_response(error.code.status, http_bodies.error_body(error))


def http_handler(route: Callable[[Event], Response]) -> Callable[[Event, LambdaContext | None], Response]:
    """:func:`websocket_handler` for the HTTP API's routes: the same outcomes, errors in the HTTP error shape."""
    return _answering(route, lambda error, _event: http_error_response(error))


def _answering(
    route: Callable[[Event], Response], refusal: Callable[[ServiceError, Event], Response]
) -> Callable[[Event, LambdaContext | None], Response]:
    """An :func:`entry_point` around ``route``: catalogue errors answered by ``refusal`` and counted, anything
    else logged with the request id and answered ``INTERNAL_ERROR`` without a stack trace."""

    @entry_point()
    @functools.wraps(route)
    def handler(event: Event, context: LambdaContext | None) -> Response:
        try:
            response = route(event)
            # One outcome line per invocation (this, "request refused" or "unhandled error"), with the ids.
            logger.info("request handled", extra={"status": response.get("statusCode")})
            return response
        except ServiceError as error:
            logger.info("request refused", extra={"error_code": error.code.name, "field": error.field})
            metrics.rejected(error.code.name)
            return refusal(error, event)
        except Exception:
            correlation_id = invocation_request_id(event, context) or "unknown"
            logger.exception("unhandled error", extra={"correlation_id": correlation_id})
            metrics.rejected(ErrorCode.INTERNAL_ERROR.name)
            return refusal(
                ServiceError(
                    ErrorCode.INTERNAL_ERROR,
                    f"internal error; quote correlation id {correlation_id} when reporting it",
                ),
                event,
            )

    return handler
