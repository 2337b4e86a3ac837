"""Who a speaker is: a Cognito-style JWT checked against the issuer's published keys.

PyJWT does the cryptography; this module only decides what a speaker token must look like. Every refusal
is one exception, ``InvalidToken``, whose reason is a short fixed phrase safe to log (never the token, never
a library message that could echo it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import jwt

from lambda_src.contract import limits
from lambda_src.contract.function_settings import ENV_CLIENT_ID, ENV_ISSUER, ENV_JWKS_URL

# Environment variable names: the stack (or the local run) sets them, the authorizer reads them.

ALGORITHM: Final = "RS256"
TOKEN_USES: Final = frozenset({"id", "access"})
MAX_TOKEN_LENGTH: Final = limits.MAX_TOKEN_LENGTH
LEEWAY_SECONDS: Final = 30
JWKS_LIFESPAN_SECONDS: Final = 3600
JWKS_TIMEOUT_SECONDS: Final = 3.0


@dataclass(frozen=True)
class VerifiedUser:
    """The speaker a valid token names: the stable ``sub`` and, when the token carries one, the username."""

    user_id: str
    username: str | None


class InvalidToken(Exception):
    """A token that does not prove a speaker; ``reason`` is loggable and never contains the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(InvalidToken):
    """The issuer's keys could not be fetched: the token is refused, but the fault is ours, not the client's."""


class TokenVerifier:
    """Verifies tokens of one issuer and one app client; the key set is fetched once and cached for an hour."""

    def __init__(self, jwks_url: str, issuer: str, client_id: str) -> None:
        self.issuer = issuer
        self.client_id = client_id
        # One client per verifier, so a warm Lambda reuses the key set instead of fetching it per request;
        # an unknown ``kid`` triggers at most one refetch per PyJWT cooldown (key rotation without redeploy).
        self._keys = jwt.PyJWKClient(
            jwks_url,
            cache_keys=True,
            cache_jwk_set=True,
            lifespan=JWKS_LIFESPAN_SECONDS,
            timeout=JWKS_TIMEOUT_SECONDS,
        )

    def verify(self, token: str) -> VerifiedUser:
        """The user the token proves, or ``InvalidToken`` saying (without the token) why it proves nothing."""
        if not isinstance(token, str) or not token:
            raise InvalidToken("empty token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken(f"token longer than {MAX_TOKEN_LENGTH} characters")
        key = self._signing_key(token)
        claims = self._decode(token, key)
        return self._user(claims)

    def _signing_key(self, token: str) -> jwt.PyJWK:
        """The issuer's key named by the header; the header is checked first so junk never causes a fetch."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm must be {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("no key id in the token header")
        try:
            return self._keys.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise KeysUnavailable("signing keys unreachable") from None
        except jwt.PyJWKClientError as error:
            if "Unable to find a signing key" in str(error):
                raise InvalidToken("unknown signing key") from None
            raise KeysUnavailable("signing keys unusable") from None
        except jwt.PyJWTError:
            raise KeysUnavailable("signing keys unusable") from None

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        """Signature, issuer and lifetime through PyJWT; the audience depends on ``token_use``, checked after."""
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"missing claim {error.claim}") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("not valid yet") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken(f"algorithm must be {ALGORITHM}") from None
        except jwt.PyJWTError as error:
            raise InvalidToken(f"invalid token ({type(error).__name__})") from None

    def _user(self, claims: dict[str, Any]) -> VerifiedUser:
        """Cognito ID tokens name the app client in ``aud``, access tokens in ``client_id``."""
        token_use = claims.get("token_use")
        if token_use not in TOKEN_USES:
            raise InvalidToken("token_use must be id or access")
        audience = claims.get("aud") if token_use == "id" else claims.get("client_id")
        if audience != self.client_id:
            raise InvalidToken("wrong audience" if token_use == "id" else "wrong client_id")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("sub must be a non-empty string")
        username = claims.get("cognito:username") if token_use == "id" else claims.get("username")
        return VerifiedUser(user_id=subject, username=username if isinstance(username, str) and username else None)


@cache
def verifier_from_environment() -> TokenVerifier:
    """The verifier of this process, built once so its key cache survives across warm invocations.

    A missing variable is a deployment bug: it raises, and the authorizer refuses every token.
    """
    missing = [name for name in (ENV_JWKS_URL, ENV_ISSUER, ENV_CLIENT_ID) if not os.environ.get(name)]
    if missing:
        raise RuntimeError(f"token verification is not configured: {', '.join(missing)} not set")
    return TokenVerifier(
        jwks_url=os.environ[ENV_JWKS_URL],
        issuer=os.environ[ENV_ISSUER],
        client_id=os.environ[ENV_CLIENT_ID],
    )
