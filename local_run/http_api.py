"""A local stand-in for API Gateway's HTTP APIs, read from the cloud assembly like the WebSocket API.

What it does as API Gateway does (for the parts a client or a function can tell apart):

- Routes: ``METHOD /path/{name}`` keys (``ANY`` for every method, ``{name+}`` for the rest of a path, ``$default``
  for what no route takes), matched on the request's path under the stage (``$default``: no prefix). No route:
  404 ``{"message":"Not Found"}``.
- Lambda proxy integrations, payload format 2.0: the event's ``routeKey``, ``rawPath``, ``rawQueryString``,
  ``headers`` (lower-case names), ``queryStringParameters``, ``pathParameters``, ``requestContext`` (``http``,
  ``authorizer.jwt``, ``requestId``, ``timeEpoch``, ...), ``body`` (base64 when it is not UTF-8 text); the answer's
  ``statusCode``, ``headers``, ``cookies`` and ``body`` (a result without ``statusCode`` is a 200 JSON body). A
  function that fails: 500 ``{"message":"Internal Server Error"}``.
- JWT authorizers: the identity source's token (``Bearer`` prefix or not) verified with PyJWT against the issuer's
  JWKS (the run's dev issuer of that user pool), its ``iss`` equal to that issuer, ``aud`` or ``client_id`` one of
  the audience, ``exp``/``nbf`` held; refused: 401 ``{"message":"Unauthorized"}`` before any function runs. The
  claims reach the function as ``requestContext.authorizer.jwt.claims`` (strings, as API Gateway passes them).
- CORS: a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered by the gateway
  (204, with the allowed methods, headers and max age for an allowed origin; without them otherwise); every answer
  to an allowed origin carries ``Access-Control-Allow-Origin`` (and the exposed headers). Allowed: the API's own
  ``AllowOrigins`` and, locally, any loopback origin (``http://127.0.0.1:PORT``, ``http://localhost:PORT``), so
  apps served from another local port work: a template cannot name "any port".

Not emulated: throttling, payload format 1.0, Lambda (request) authorizers on HTTP APIs, mutual TLS, custom domains.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

import jwt

DEFAULT_STAGE: Final = "$default"
DEFAULT_ROUTE: Final = "$default"
# API Gateway's own answers (their bodies, as the service writes them).
NOT_FOUND: Final = (404, {"message": "Not Found"})
UNAUTHORIZED: Final = (401, {"message": "Unauthorized"})
INTERNAL_ERROR: Final = (500, {"message": "Internal Server Error"})
PAYLOAD_TOO_LARGE: Final = (413, {"message": "Request Entity Too Large"})
# HTTP APIs take request bodies of up to 10 MB.
MAX_BODY_BYTES: Final = 10 * 1024 * 1024
_LOOPBACK_ORIGIN: Final = re.compile(r"http://(127\.0\.0\.1|localhost)(:\d{1,5})?")


@dataclass(frozen=True)
class JwtAuthorizerDefinition:
    issuer: str
    audience: tuple[str, ...]
    identity_source: str = "$request.header.Authorization"

    @property
    def header(self) -> str:
        """The request header the token comes from (lower case)."""
        return self.identity_source.removeprefix("$request.header.").lower()


@dataclass(frozen=True)
class CorsDefinition:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    def allows(self, origin: str) -> bool:
        """Whether answers may be read by a page of ``origin``: the API's own origins, and any loopback origin."""
        return "*" in self.allow_origins or origin in self.allow_origins or bool(_LOOPBACK_ORIGIN.fullmatch(origin))


@dataclass(frozen=True)
class HttpRouteDefinition:
    key: str  # "POST /sessions", "$default"
    function: str  # logical id
    authorizer: JwtAuthorizerDefinition | None = None

    @property
    def method(self) -> str:
        return "ANY" if self.key == DEFAULT_ROUTE else self.key.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return "" if self.key == DEFAULT_ROUTE else self.key.split(" ", 1)[1]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route takes ``method`` ``path``, else None."""
        if self.key == DEFAULT_ROUTE or self.method not in ("ANY", method):
            return None
        names: list[str] = []
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                greedy = name.endswith("+")
                names.append(name.removesuffix("+"))
                pattern += "(.+)" if greedy else "([^/]+)"
            else:
                pattern += re.escape(part)
        found = re.fullmatch(pattern, path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in zip(names, found.groups(), strict=True)}


@dataclass(frozen=True)
class HttpApiDefinition:
    name: str
    stage: str
    routes: tuple[HttpRouteDefinition, ...]
    cors: CorsDefinition | None = None

    def route(self, method: str, path: str) -> tuple[HttpRouteDefinition, dict[str, str]] | None:
        """The route that takes ``method`` ``path`` (the path under the stage), as API Gateway chooses: the most
        specific (a route of the method before ``ANY``, fewer path parameters first), else ``$default``."""
        candidates = []
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                candidates.append((route.method == "ANY", route.path.count("{"), route, parameters))
        if candidates:
            _any, _count, route, parameters = min(candidates, key=lambda c: (c[0], c[1]))
            return route, parameters
        default = next((route for route in self.routes if route.key == DEFAULT_ROUTE), None)
        return (default, {}) if default is not None else None

    def path_under_stage(self, path: str) -> str | None:
        """The request path without the stage's prefix (None: not under this API's stage)."""
        if self.stage == DEFAULT_STAGE:
            return path
        prefix = f"/{self.stage}"
        if path == prefix or path.startswith(prefix + "/"):
            return path.removeprefix(prefix) or "/"
        return None


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def answer(status: int, body: Mapping[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> HttpAnswer:
    """One of API Gateway's own JSON answers."""
    return HttpAnswer(status, (("Content-Type", "application/json"), *headers), json.dumps(body).encode())


def preflight(cors: CorsDefinition | None, headers: Mapping[str, str]) -> HttpAnswer | None:
    """API Gateway's answer to a CORS preflight (None: not a preflight, or the API has no CORS configuration)."""
    origin = headers.get("origin")
    if cors is None or origin is None or "access-control-request-method" not in headers:
        return None
    if not cors.allows(origin):
        return HttpAnswer(204, (), b"")
    allowed = [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", ",".join(cors.allow_methods) or headers["access-control-request-method"]),
        ("Access-Control-Allow-Headers", ",".join(cors.allow_headers)),
        ("Vary", "Origin"),
    ]
    if cors.max_age is not None:
        allowed.append(("Access-Control-Max-Age", str(cors.max_age)))
    if cors.allow_credentials:
        allowed.append(("Access-Control-Allow-Credentials", "true"))
    return HttpAnswer(204, tuple(allowed), b"")


def with_cors(cors: CorsDefinition | None, headers: Mapping[str, str], reply: HttpAnswer) -> HttpAnswer:
    """``reply`` readable by the requesting page when its origin is allowed."""
    origin = headers.get("origin")
    if cors is None or origin is None or not cors.allows(origin):
        return reply
    extra = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    if cors.expose_headers:
        extra.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    if cors.allow_credentials:
        extra.append(("Access-Control-Allow-Credentials", "true"))
    return HttpAnswer(reply.status, (*reply.headers, *extra), reply.body)


class JwtVerifier:
    """Verifies tokens for one JWT authorizer as API Gateway does; ``jwks(issuer)`` is the issuer's key set (None:
    an issuer the run does not know, whose every token is refused)."""

    def __init__(self, jwks: Callable[[str], Mapping[str, Any] | None]) -> None:
        self._jwks = jwks

    def claims(self, authorizer: JwtAuthorizerDefinition, headers: Mapping[str, str]) -> dict[str, Any] | None:
        """The token's claims, or None when it is missing or not valid for ``authorizer``."""
        token = headers.get(authorizer.header, "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        key_set = self._jwks(authorizer.issuer)
        if not token or key_set is None:
            return None
        try:
            key_id = jwt.get_unverified_header(token).get("kid")
            keys = [key for key in key_set.get("keys", []) if key.get("kid") == key_id]
            if len(keys) != 1:
                return None
            key = jwt.PyJWK.from_dict(keys[0])
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                issuer=authorizer.issuer,
                options={"verify_aud": False, "require": ["exp", "iss"]},
            )
        except jwt.PyJWTError:
            return None
        audience = claims.get("aud", claims.get("client_id"))
        audiences = audience if isinstance(audience, list) else [audience]
        if authorizer.audience and not any(value in authorizer.audience for value in audiences):
            return None
        return claims


def claim_strings(claims: Mapping[str, Any]) -> dict[str, str]:
    """Claims as an HTTP API passes them to a function: every value a string (a list as ``[a b]``)."""
    shown = {}
    for name, value in claims.items():
        if isinstance(value, list):
            shown[name] = "[" + " ".join(str(item) for item in value) + "]"
        elif isinstance(value, bool):
            shown[name] = str(value).lower()
        else:
            shown[name] = str(value)
    return shown


def event(
    route: HttpRouteDefinition,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    path_parameters: Mapping[str, str],
    claims: Mapping[str, Any] | None,
    stage: str,
    api_id: str,
    account_id: str,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The payload format 2.0 event of one request."""
    now = time.time()
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    text: str | None = None
    encoded = False
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
    context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": headers.get("host", "127.0.0.1"),
        "domainPrefix": api_id,
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": route.key,
        "stage": stage,
        "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claim_strings(claims), "scopes": None}}
    built: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": dict(headers),
        "requestContext": context,
        "isBase64Encoded": encoded,
    }
    if "cookie" in headers:
        built["cookies"] = [cookie.strip() for cookie in headers["cookie"].split(";")]
    if query:
        built["queryStringParameters"] = query
    if path_parameters:
        built["pathParameters"] = dict(path_parameters)
    if text is not None:
        built["body"] = text
    return built


def from_result(result: Any) -> HttpAnswer:
    """The HTTP answer a function's result stands for (payload format 2.0)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return HttpAnswer(200, (("Content-Type", "application/json"),), json.dumps(result).encode())
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    if not any(name.lower() == "content-type" for name, _ in headers) and payload:
        headers.append(("Content-Type", "application/json"))
    return HttpAnswer(int(result["statusCode"]), tuple(headers), payload)


def read_http_apis(reader: Any) -> list[HttpApiDefinition]:
    """Every HTTP API of the template (``reader``: the assembly's template reader, for its intrinsic functions)."""
    apis = []
    for api_id, api in reader.of_type("AWS::ApiGatewayV2::Api").items():
        props = api["Properties"]
        if props.get("ProtocolType") != "HTTP":
            continue
        stages = [
            r["Properties"]["StageName"]
            for r in reader.of_type("AWS::ApiGatewayV2::Stage").values()
            if r["Properties"].get("ApiId") == {"Ref": api_id}
        ]
        routes = []
        for resource in reader.of_type("AWS::ApiGatewayV2::Route").values():
            route = resource["Properties"]
            if route.get("ApiId") != {"Ref": api_id}:
                continue
            integration = reader.referenced(route.get("Target"), "AWS::ApiGatewayV2::Integration")
            if integration is None:
                continue
            integration_props = reader.resources[integration]["Properties"]
            function = reader.referenced(integration_props.get("IntegrationUri"), "AWS::Lambda::Function")
            if function is None or str(integration_props.get("PayloadFormatVersion", "1.0")) != "2.0":
                raise RuntimeError(f"route {route['RouteKey']}: only payload format 2.0 Lambda proxies run locally")
            authorizer = None
            if route.get("AuthorizationType") == "JWT":
                definition = reader.resources[route["AuthorizerId"]["Ref"]]["Properties"]
                jwt_config = definition.get("JwtConfiguration", {})
                authorizer = JwtAuthorizerDefinition(
                    issuer=reader.localize(str(reader.resolve(jwt_config.get("Issuer")))),
                    audience=tuple(str(value) for value in reader.resolve(jwt_config.get("Audience", []))),
                    identity_source=(definition.get("IdentitySource") or ["$request.header.Authorization"])[0],
                )
            elif route.get("AuthorizationType", "NONE") != "NONE":
                raise RuntimeError(f"route {route['RouteKey']}: {route['AuthorizationType']} is not run locally")
            routes.append(HttpRouteDefinition(route["RouteKey"], function, authorizer))
        cors_config = props.get("CorsConfiguration")
        cors = None
        if cors_config is not None:
            cors = CorsDefinition(
                allow_origins=tuple(reader.resolve(cors_config.get("AllowOrigins", []))),
                allow_methods=tuple(cors_config.get("AllowMethods", [])),
                allow_headers=tuple(cors_config.get("AllowHeaders", [])),
                expose_headers=tuple(cors_config.get("ExposeHeaders", [])),
                max_age=cors_config.get("MaxAge"),
                allow_credentials=bool(cors_config.get("AllowCredentials", False)),
            )
        name = str(props.get("Name", api_id))
        apis.append(HttpApiDefinition(name, stages[0] if stages else DEFAULT_STAGE, tuple(routes), cors))
    return apis
