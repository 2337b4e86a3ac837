"""Speaker authentication: the token verifier, the ``$connect`` authorizer and the local dev issuer.

Real keys, real signatures and a real JWKS served over loopback HTTP: nothing of PyJWT is mocked, so these
tests fail if the verification path would accept a token that Cognito's keys did not sign.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from lambda_src.adapters import auth
from lambda_src.contract import function_settings
from lambda_src.handlers import authorizer
from lambda_src.handlers.common import logger
from local_run.dev_issuer import KEY_FILE_NAME, DevIssuer
from tests.support.fakes import JwksServer, serve_jwks

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_UnitTest"
CLIENT_ID = "unit-test-client"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/dev/$connect"
REPO_ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer(tmp_path_factory.mktemp("issuer"), ISSUER, CLIENT_ID)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    """A key the issuer never published: what a forger signs with."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_server(issuer: DevIssuer) -> Iterator[JwksServer]:
    with serve_jwks(issuer.jwks()) as server:
        yield server


@pytest.fixture
def fetches(jwks_server: JwksServer) -> list[str]:
    """The JWKS requests made during this test only."""
    jwks_server.requests.clear()
    return jwks_server.requests


@pytest.fixture
def verifier(jwks_server: JwksServer) -> auth.TokenVerifier:
    """A fresh verifier per test, so its key cache starts empty."""
    return auth.TokenVerifier(jwks_server.url, ISSUER, CLIENT_ID)


@pytest.fixture
def unreachable_url() -> str:
    """A loopback port nobody listens on: connection refused at once, no timeout to wait for."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_port
    server.server_close()
    return f"http://127.0.0.1:{port}/.well-known/jwks.json"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, jwks_server: JwksServer) -> Iterator[None]:
    """The variables the stack sets on the authorizer, and a verifier factory with nothing cached."""
    monkeypatch.setenv(function_settings.ENV_JWKS_URL, jwks_server.url)
    monkeypatch.setenv(function_settings.ENV_ISSUER, ISSUER)
    monkeypatch.setenv(function_settings.ENV_CLIENT_ID, CLIENT_ID)
    auth.verifier_from_environment.cache_clear()
    yield
    auth.verifier_from_environment.cache_clear()


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the Powertools logger writes during this test, formatted exactly as in Lambda.

    Powertools' handler keeps the stdout it found at import time, which capsys cannot see, so a second
    handler with the same formatter writes to a buffer for the test to read.
    """
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_handler.formatter)
    logging.getLogger(logger.name).addHandler(handler)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]

    try:
        yield read
    finally:
        logging.getLogger(logger.name).removeHandler(handler)


def connect_event(token: str | None = None, *, query: dict[str, str] | None = None) -> dict[str, Any]:
    """A ``$connect`` REQUEST authorizer event as API Gateway sends it (no query string: ``None``)."""
    params = dict(query or {})
    if token is not None:
        params["token"] = token
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": {"Host": "abcdef123.execute-api.us-east-1.amazonaws.com"},
        "queryStringParameters": params or None,
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "connectionId": "conn-auth-1",
            "requestId": "req-auth-1",
        },
    }


def unsigned_token(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A token with an empty signature, built by hand because no library should help anyone make one."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def valid_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "user-1",
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "token_use": "id",
        "iat": now,
        "exp": now + 600,
        "cognito:username": "alice",
    }
    claims.update(overrides)
    return claims


def assert_allow_policy(policy: dict[str, Any], principal_id: str) -> None:
    assert policy["principalId"] == principal_id
    assert policy["policyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": METHOD_ARN}],
    }
    assert all(isinstance(value, str) for value in policy["context"].values())


# Tokens that must never prove a speaker; each builder gets the issuer and a key the issuer never published.
TokenBuilder = Callable[[DevIssuer, rsa.RSAPrivateKey], str]
BAD_TOKENS: dict[str, TokenBuilder] = {
    "forged (other key, same kid)": lambda issuer, other: jwt.encode(
        valid_claims(), other, algorithm="RS256", headers={"kid": issuer.kid}
    ),
    "unknown kid": lambda issuer, other: jwt.encode(
        valid_claims(), other, algorithm="RS256", headers={"kid": "not-a-published-kid"}
    ),
    "no kid": lambda issuer, other: jwt.encode(valid_claims(), issuer.private_key, algorithm="RS256"),
    "expired beyond the leeway": lambda issuer, other: issuer.mint(expires_in=-(auth.LEEWAY_SECONDS + 60)),
    "no exp": lambda issuer, other: issuer.mint(exp=None),
    "no sub": lambda issuer, other: issuer.mint(sub=None),
    "empty sub": lambda issuer, other: issuer.mint(sub=""),
    "wrong issuer": lambda issuer, other: issuer.mint(iss="https://cognito-idp.us-east-1.amazonaws.com/other"),
    "issuer prefix": lambda issuer, other: issuer.mint(iss=ISSUER[:-3]),
    "wrong audience": lambda issuer, other: issuer.mint(aud="another-client"),
    "audience list": lambda issuer, other: issuer.mint(aud=[CLIENT_ID, "another-client"]),
    "no audience": lambda issuer, other: issuer.mint(aud=None),
    "access token, wrong client_id": lambda issuer, other: issuer.mint(token_use="access", client_id="other"),
    "access token, aud but no client_id": lambda issuer, other: issuer.mint(
        token_use="access", client_id=None, aud=CLIENT_ID
    ),
    "token_use refresh": lambda issuer, other: issuer.mint(token_use="refresh"),
    "no token_use": lambda issuer, other: issuer.mint(token_use=None),
    "alg none": lambda issuer, other: unsigned_token({"alg": "none", "typ": "JWT", "kid": issuer.kid}, valid_claims()),
    "alg RS256, empty signature": lambda issuer, other: unsigned_token(
        {"alg": "RS256", "typ": "JWT", "kid": issuer.kid}, valid_claims()
    ),
    "HS256": lambda issuer, other: jwt.encode(
        valid_claims(), "a-shared-secret-of-32-bytes-long!", algorithm="HS256", headers={"kid": issuer.kid}
    ),
    "tampered payload": lambda issuer, other: _tamper(issuer.mint()),
    "garbage": lambda issuer, other: "not-a-jwt",
    "three garbage parts": lambda issuer, other: "abc.def.ghi",
    "too long": lambda issuer, other: issuer.mint(padding="x" * auth.MAX_TOKEN_LENGTH),
}


def _tamper(token: str) -> str:
    """The issuer's own signature on a payload someone edited (``sub`` swapped)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{edited}.{signature}"


# ------------------------------------------------------------------------------------------- verifier


def test_a_valid_id_token_names_its_user(issuer: DevIssuer, verifier: auth.TokenVerifier) -> None:
    # Given an ID token the issuer signed for our client
    token = issuer.mint("user-42")

    # When it is verified
    user = verifier.verify(token)

    # Then the user is its sub, with the Cognito username
    assert user == auth.VerifiedUser(user_id="user-42", username="user-42")


def test_a_valid_access_token_for_our_client_is_accepted(issuer: DevIssuer, verifier: auth.TokenVerifier) -> None:
    # Given an access token: no aud, the app client in client_id, the username in username
    token = issuer.mint("user-7", token_use="access")
    assert "aud" not in jwt.decode(token, options={"verify_signature": False})

    # When it is verified
    user = verifier.verify(token)

    # Then it proves the same user an ID token would
    assert user == auth.VerifiedUser(user_id="user-7", username="user-7")


# Minting without ``cognito:username`` (an override of None removes a claim; the name is no Python identifier).
NO_USERNAME: dict[str, Any] = {"cognito:username": None}


def test_a_token_without_username_still_names_its_user(issuer: DevIssuer, verifier: auth.TokenVerifier) -> None:
    # Given an ID token without cognito:username
    token = issuer.mint("user-9", **NO_USERNAME)

    # When it is verified / Then the sub is enough
    assert verifier.verify(token) == auth.VerifiedUser(user_id="user-9", username=None)


def test_a_token_expired_within_the_leeway_is_accepted(issuer: DevIssuer, verifier: auth.TokenVerifier) -> None:
    # Given a token whose exp passed a few seconds ago (clock skew between issuer and Lambda)
    token = issuer.mint(expires_in=-5)

    # When it is verified / Then the leeway lets it through
    assert verifier.verify(token).user_id == "local-speaker"


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_a_bad_token_is_refused(
    kind: str, issuer: DevIssuer, other_key: rsa.RSAPrivateKey, verifier: auth.TokenVerifier
) -> None:
    # Given a token that is wrong in one way
    token = BAD_TOKENS[kind](issuer, other_key)

    # When it is verified
    with pytest.raises(auth.InvalidToken) as refused:
        verifier.verify(token)

    # Then it is refused with a reason that does not repeat the token
    assert refused.value.reason
    assert token not in refused.value.reason


def test_an_empty_token_is_refused(verifier: auth.TokenVerifier) -> None:
    # Given / When / Then: the verifier never treats an empty string as a user
    with pytest.raises(auth.InvalidToken):
        verifier.verify("")


def test_the_key_set_is_fetched_once_for_many_verifications(
    issuer: DevIssuer, verifier: auth.TokenVerifier, fetches: list[str]
) -> None:
    # Given one verifier (one warm Lambda) and many tokens
    tokens = [issuer.mint(f"user-{n}") for n in range(20)]

    # When all are verified
    users = [verifier.verify(token) for token in tokens]

    # Then all pass and the JWKS was fetched once
    assert [user.user_id for user in users] == [f"user-{n}" for n in range(20)]
    assert fetches == ["/.well-known/jwks.json"]


def test_an_unknown_kid_flood_does_not_refetch_the_key_set(
    issuer: DevIssuer, other_key: rsa.RSAPrivateKey, verifier: auth.TokenVerifier, fetches: list[str]
) -> None:
    # Given a warm verifier
    verifier.verify(issuer.mint())

    # When many tokens name kids the issuer never published
    for n in range(10):
        with pytest.raises(auth.InvalidToken):
            verifier.verify(jwt.encode(valid_claims(), other_key, algorithm="RS256", headers={"kid": f"kid-{n}"}))

    # Then the key set was not fetched again for each of them (PyJWT's refetch cooldown)
    assert len(fetches) == 1


def test_junk_tokens_never_reach_the_key_endpoint(
    issuer: DevIssuer, other_key: rsa.RSAPrivateKey, verifier: auth.TokenVerifier, fetches: list[str]
) -> None:
    # Given tokens refused by their header alone
    junk = [BAD_TOKENS[kind](issuer, other_key) for kind in ("alg none", "HS256", "garbage", "too long", "no kid")]

    # When they are verified
    for token in junk:
        with pytest.raises(auth.InvalidToken):
            verifier.verify(token)

    # Then no request went to the JWKS endpoint
    assert fetches == []


def test_unreachable_keys_refuse_the_token(issuer: DevIssuer, unreachable_url: str) -> None:
    # Given a verifier whose JWKS endpoint is down
    verifier = auth.TokenVerifier(unreachable_url, ISSUER, CLIENT_ID)

    # When a valid token is verified
    with pytest.raises(auth.InvalidToken) as refused:
        verifier.verify(issuer.mint())

    # Then it is refused, and the refusal says the fault is the key endpoint's
    assert isinstance(refused.value, auth.KeysUnavailable)


def test_the_environment_verifier_is_built_once(environment: None) -> None:
    # Given the variables the stack sets
    # When the verifier is asked for twice
    first, second = auth.verifier_from_environment(), auth.verifier_from_environment()

    # Then it is the same object (its key cache survives across invocations)
    assert first is second
    assert (first.issuer, first.client_id) == (ISSUER, CLIENT_ID)


def test_a_missing_variable_is_a_loud_configuration_error(environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a deployment that forgot the client id
    monkeypatch.delenv(function_settings.ENV_CLIENT_ID)
    auth.verifier_from_environment.cache_clear()

    # When the verifier is built / Then the missing name is reported
    with pytest.raises(RuntimeError, match=function_settings.ENV_CLIENT_ID):
        auth.verifier_from_environment()


# ----------------------------------------------------------------------------------------- authorizer


@pytest.mark.parametrize(
    "event",
    [
        connect_event(),
        connect_event(""),
        connect_event(query={"action": "joinSession", "sessionId": "abc", "targetLanguage": "fr"}),
    ],
    ids=["no query string", "empty token", "listener join without token"],
)
def test_no_token_connects_as_anonymous(event: dict[str, Any], environment: None, fetches: list[str]) -> None:
    # Given a listener's $connect without a token
    # When the authorizer runs
    policy = authorizer.handler(event, None)

    # Then the connection is allowed as anonymous, without a look at the key set
    assert_allow_policy(policy, "anonymous")
    assert policy["context"] == {"role": "anonymous"}
    assert fetches == []


def test_a_valid_token_connects_as_its_speaker(issuer: DevIssuer, environment: None) -> None:
    # Given a speaker's $connect with a valid ID token
    event = connect_event(issuer.mint("speaker-sub-1"), query={"action": "createSession", "sourceLanguage": "en"})

    # When the authorizer runs
    policy = authorizer.handler(event, None)

    # Then the connection is allowed as that speaker, and every route will see the user id
    assert_allow_policy(policy, "speaker-sub-1")
    assert policy["context"] == {"userId": "speaker-sub-1", "username": "speaker-sub-1", "role": "speaker"}


def test_a_token_without_username_gets_an_empty_string_context(issuer: DevIssuer, environment: None) -> None:
    # Given a valid token without a username
    event = connect_event(issuer.mint("speaker-sub-2", **NO_USERNAME))

    # When the authorizer runs
    policy = authorizer.handler(event, None)

    # Then the context still holds strings only (API Gateway refuses null context values)
    assert policy["context"] == {"userId": "speaker-sub-2", "username": "", "role": "speaker"}


@pytest.mark.parametrize(
    "kind", ["forged (other key, same kid)", "expired beyond the leeway", "wrong audience", "alg none", "garbage"]
)
def test_a_bad_token_is_unauthorized_never_anonymous(
    kind: str, issuer: DevIssuer, other_key: rsa.RSAPrivateKey, environment: None
) -> None:
    # Given a $connect whose token does not verify
    event = connect_event(BAD_TOKENS[kind](issuer, other_key))

    # When the authorizer runs / Then API Gateway is told Unauthorized (401), not given an anonymous policy
    with pytest.raises(Exception) as refused:
        authorizer.handler(event, None)
    assert str(refused.value) == "Unauthorized"


@pytest.mark.parametrize("token", [" ", "a" * (auth.MAX_TOKEN_LENGTH + 1)], ids=["blank", "over 4096"])
def test_a_blank_or_huge_token_is_unauthorized_without_a_key_fetch(
    token: str, environment: None, fetches: list[str]
) -> None:
    # Given a token that is present but cannot be a JWT
    # When the authorizer runs / Then it is refused before anything is fetched
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.handler(connect_event(token), None)
    assert fetches == []


def test_a_down_key_endpoint_is_unauthorized_and_logged(
    issuer: DevIssuer,
    environment: None,
    monkeypatch: pytest.MonkeyPatch,
    unreachable_url: str,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given an authorizer whose JWKS endpoint is down
    monkeypatch.setenv(function_settings.ENV_JWKS_URL, unreachable_url)
    auth.verifier_from_environment.cache_clear()
    token = issuer.mint()

    # When a valid token arrives
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.handler(connect_event(token), None)

    # Then the refusal is logged as an error naming the cause, without the token
    records = log_lines()
    assert any(r["level"] == "ERROR" and r.get("reason") == "signing keys unreachable" for r in records)
    assert token not in json.dumps(records)


def test_a_misconfigured_authorizer_refuses_every_token(
    issuer: DevIssuer, environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an authorizer deployed without its issuer
    monkeypatch.delenv(function_settings.ENV_ISSUER)
    auth.verifier_from_environment.cache_clear()

    # When a token arrives / Then it is refused, never let through
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.handler(connect_event(issuer.mint()), None)


def test_tokens_never_appear_in_logs(
    issuer: DevIssuer,
    other_key: rsa.RSAPrivateKey,
    environment: None,
    log_lines: Callable[[], list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a good token and several bad ones
    good = issuer.mint("logged-user")
    kinds = ("forged (other key, same kid)", "expired beyond the leeway", "garbage", "too long")
    bad = [BAD_TOKENS[kind](issuer, other_key) for kind in kinds]
    caplog.set_level(logging.DEBUG)

    # When the authorizer handles each
    authorizer.handler(connect_event(good), None)
    for token in bad:
        with pytest.raises(Exception, match="^Unauthorized$"):
            authorizer.handler(connect_event(token), None)

    # Then the logs say what happened (with the reason), but hold no token, nor any token's signature
    records = log_lines()
    assert [r["message"] for r in records] == ["speaker connection allowed"] + ["connection refused"] * len(bad)
    assert all(r["reason"] for r in records[1:])
    logged = json.dumps(records) + capsys.readouterr().out + caplog.text + repr([vars(r) for r in caplog.records])
    for token in [good, *bad]:
        assert token not in logged
        signature = token.split(".")[-1]
        assert len(signature) < 16 or signature not in logged


# ---------------------------------------------------------------------------------------------- dev issuer


def test_the_dev_issuer_key_is_private_and_reused(tmp_path: Path) -> None:
    # Given a dev issuer created in an empty directory
    first = DevIssuer(tmp_path, ISSUER, CLIENT_ID)

    # When another one is created on the same directory
    second = DevIssuer(tmp_path, ISSUER, CLIENT_ID)

    # Then the key file is owner-only, and both use the same key (stable kid, tokens stay valid)
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE_NAME).st_mode) == 0o600
    assert first.kid == second.kid and len(first.kid) == 16
    assert first.jwks() == second.jwks()
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE_NAME]


def test_the_dev_issuer_publishes_a_cognito_shaped_key_set(issuer: DevIssuer) -> None:
    # Given / When the key set is read
    (key,) = issuer.jwks()["keys"]

    # Then it has exactly the fields Cognito publishes, and PyJWT can use it
    assert set(key) == {"kty", "kid", "use", "alg", "n", "e"}
    assert (key["kty"], key["kid"], key["use"], key["alg"]) == ("RSA", issuer.kid, "sig", "RS256")
    assert jwt.PyJWK(key).algorithm_name == "RS256"


def test_the_dev_issuer_mints_cognito_shaped_id_tokens(issuer: DevIssuer) -> None:
    # Given / When a token is minted with the defaults
    token = issuer.mint()

    # Then its header and claims look like a Cognito ID token
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": issuer.kid}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"sub", "iss", "aud", "token_use", "iat", "exp", "auth_time", "cognito:username"} <= set(claims)
    assert (claims["sub"], claims["iss"], claims["aud"], claims["token_use"]) == (
        "local-speaker",
        ISSUER,
        CLIENT_ID,
        "id",
    )
    assert claims["exp"] - claims["iat"] == 3600


def test_the_dev_issuer_cli_prints_the_token_last(tmp_path: Path, jwks_server: JwksServer) -> None:
    # Given the CLI run as documented
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "local_run.dev_issuer",
            "--issuer",
            ISSUER,
            "--client-id",
            CLIENT_ID,
            "--user-id",
            "cli-user",
            "--expires-in",
            "120",
            "--key-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    # When its last stdout line is verified against the key set of the same key directory
    token = result.stdout.strip().splitlines()[-1]
    jwks = jwt.PyJWKSet.from_dict(DevIssuer(tmp_path, ISSUER, CLIENT_ID).jwks())
    claims = jwt.decode(token, jwks[jwt.get_unverified_header(token)["kid"]], algorithms=["RS256"], audience=CLIENT_ID)

    # Then it is the user's token, and the explanation went to stderr
    assert claims["sub"] == "cli-user"
    assert claims["exp"] - claims["iat"] == 120
    assert result.stderr.strip()
