"""``$connect`` authorizer: a speaker proves who they are with ``token``; a listener sends no token at all.

No token means anonymous (listeners are anonymous by design). A token that is present but does not verify
is refused with 401, never downgraded to anonymous: a client that meant to be a speaker must learn at once
that its token is bad. Raising ``Exception("Unauthorized")`` is how a Lambda authorizer makes API Gateway
answer 401. The token itself is never logged, only the reason it was refused; every refusal is
counted as a ``Rejections`` metric with ``errorCode`` ``UNAUTHORIZED``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from lambda_src.adapters import auth
from lambda_src.contract.errors import ErrorCode
from lambda_src.handlers import finish_loading
from lambda_src.handlers.common import Event, entry_point, logger, query_parameters
from lambda_src.platform import metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

TOKEN_PARAMETER: Final = "token"
ANONYMOUS: Final = "anonymous"
SPEAKER: Final = "speaker"
UNAUTHORIZED: Final = "Unauthorized"

Policy = dict[str, Any]


def allow(method_arn: str, principal_id: str, context: dict[str, str]) -> Policy:
    """An IAM policy letting this one ``$connect`` through, with the context every later route receives."""
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn}],
        },
        "context": context,
    }


def _refuse(reason: str) -> Exception:
    logger.info("connection refused", extra={"reason": reason})
    return Exception(UNAUTHORIZED)


@entry_point(route="$authorizer")
def handler(event: Event, context: LambdaContext | None) -> Policy:
    try:
        return _authorize(event)
    except Exception:
        metrics.rejected(ErrorCode.UNAUTHORIZED.name)  # every way out but a policy is a 401 refusal
        raise


def _authorize(event: Event) -> Policy:
    method_arn = str(event.get("methodArn", ""))
    token = query_parameters(event).get(TOKEN_PARAMETER)
    if token is None or token == "":
        logger.info("anonymous connection allowed")
        return allow(method_arn, ANONYMOUS, {"role": ANONYMOUS})
    if not isinstance(token, str):
        raise _refuse("token is not a string")
    if len(token) > auth.MAX_TOKEN_LENGTH:
        raise _refuse(f"token longer than {auth.MAX_TOKEN_LENGTH} characters")
    try:
        user = auth.verifier_from_environment().verify(token)
    except auth.KeysUnavailable as error:
        # Our fault, not the client's: worth an operator's attention, and still a refusal.
        logger.error("token could not be verified", extra={"reason": error.reason})
        raise Exception(UNAUTHORIZED) from None
    except auth.InvalidToken as error:
        raise _refuse(error.reason) from None
    except Exception:
        # A bug or a misconfiguration must never let a token through; the traceback cannot hold the token
        # because it is only ever passed to the verifier, never formatted into a message.
        logger.exception("authorizer failed")
        raise Exception(UNAUTHORIZED) from None
    logger.info("speaker connection allowed", extra={"user_id": user.user_id})
    return allow(
        method_arn,
        user.user_id,
        {"userId": user.user_id, "username": user.username or "", "role": SPEAKER},
    )


finish_loading()  # the last statement: see lambda_src/handlers/__init__.py
