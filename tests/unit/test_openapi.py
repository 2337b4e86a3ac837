"""docs/openapi.yaml matches the code, in both directions: its operations are the contract's routes (the token on
every one but ``/health``), its bodies' fields the ones the handler takes and answers, its enums and bounds the
contract's, and the handler's real answers validate against its schemas, its error samples being those answers.
(`make lint` validates the document against the OpenAPI 3.1 specification itself.)"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS31Validator

from lambda_src.contract import http_api, limits, partial_result_fields, wire
from lambda_src.contract.errors import ErrorCode
from lambda_src.handlers import http_api as handler_module
from lambda_src.protocol import validation
from tests.support.helpers import http_event
from tests.unit.flows import OWNER, Clock

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
COMPONENTS = DOCUMENT["components"]
SCHEMAS = COMPONENTS["schemas"]
METHODS = ("get", "put", "post", "patch", "delete")


def resolve(node: Any) -> Any:
    """``node``, or what its local ``$ref`` points to (followed until it is not a reference)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(schema: dict[str, Any]) -> Any:
    """An OpenAPI 3.1 schema validator (JSON Schema 2020-12 and OpenAPI's vocabulary) of ``schema``, whose
    ``#/components/...`` references resolve in the document."""
    return OAS31Validator({**schema, "components": COMPONENTS})


def assert_valid(instance: Any, schema: dict[str, Any]) -> None:
    errors = sorted(validator(schema).iter_errors(instance), key=str)
    assert not errors, [error.message for error in errors]


def operations() -> dict[str, dict[str, Any]]:
    """Route key (``POST /sessions``) -> its operation."""
    return {
        f"{method.upper()} {path}": operation
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def response_schema(route: http_api.HttpRoute, status: int) -> dict[str, Any]:
    response = resolve(operations()[route.key]["responses"][str(status)])
    return response["content"]["application/json"]["schema"]


def examples_of(node: Any) -> list[Any]:
    """Every example value under ``node`` (inline or by reference), for validating against their schemas."""
    node = resolve(node)
    found: list[Any] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "examples" and isinstance(value, dict):
                found.extend(resolve(example)["value"] for example in value.values())
            else:
                found.extend(examples_of(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(examples_of(value))
    return found


def plain(value: Any) -> Any:
    """An answer's body as a client parses it (numbers as JSON numbers)."""
    return json.loads(json.dumps(value, default=float))


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock.install(monkeypatch)


def call(route: http_api.HttpRoute, body: Any = None, *, user_id: str | None = OWNER, session_id: str | None = None):
    response = handler_module.handler(http_event(route.key, body, user_id=user_id, session_id=session_id), None)
    return response["statusCode"], (json.loads(response["body"]) if "body" in response else None)


# --- the document and the contract ------------------------------------------------------------------


def test_the_operations_are_exactly_the_contracts_routes() -> None:
    assert sorted(operations()) == sorted(http_api.ROUTE_KEYS)


def test_every_route_but_health_needs_the_bearer_token() -> None:
    scheme = COMPONENTS["securitySchemes"]["speakerToken"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert DOCUMENT["security"] == [{"speakerToken": []}]
    for route in http_api.ROUTES:
        operation = operations()[route.key]
        security = operation.get("security", DOCUMENT["security"])
        assert (security == [{"speakerToken": []}]) is route.authorized, route.key
        if route.authorized:
            assert "401" in operation["responses"], route.key


def test_the_bodies_take_exactly_the_fields_the_handler_takes() -> None:
    create, update = SCHEMAS["CreateSessionRequest"], SCHEMAS["UpdateSessionRequest"]
    assert list(create["properties"]) == list(http_api.CREATE_FIELDS)
    assert create["required"] == [wire.SOURCE_LANGUAGE]
    assert list(update["properties"]) == list(http_api.UPDATE_FIELDS)
    assert create["additionalProperties"] is False and update["additionalProperties"] is False
    assert update["minProperties"] == 1


def test_the_enums_bounds_and_defaults_are_the_contracts() -> None:
    assert SCHEMAS["QualityTier"]["enum"] == list(limits.QUALITY_TIERS)
    assert SCHEMAS["QualityTier"]["default"] == limits.DEFAULT_QUALITY_TIER
    assert SCHEMAS["SessionMetadata"]["properties"][http_api.STATUS]["enum"] == list(http_api.STATUSES)
    assert SCHEMAS["Error"]["properties"]["code"]["enum"] == [code.name for code in ErrorCode]
    session_id = resolve(COMPONENTS["parameters"]["SessionId"])
    assert session_id["schema"]["pattern"] == validation.SESSION_ID_PATTERN.pattern
    assert SCHEMAS["SessionMetadata"]["properties"][wire.SESSION_ID]["pattern"] == validation.SESSION_ID_PATTERN.pattern
    for field in partial_result_fields.FIELDS:
        schema = resolve(SCHEMAS["CreateSessionRequest"]["properties"][field.request])
        assert resolve(SCHEMAS["SessionMetadata"]["properties"][field.stored]) == schema
        assert resolve(SCHEMAS["UpdateSessionRequest"]["properties"][field.request]) == schema
        if isinstance(field.default, bool):
            assert (schema["type"], schema["default"]) == ("boolean", field.default), field.request
        else:
            assert Decimal(str(schema["default"])) == field.default, field.request
        if field.lower is not None:
            assert (Decimal(str(schema["minimum"])), Decimal(str(schema["maximum"]))) == (field.lower, field.upper)


def test_every_example_validates_against_its_schema() -> None:
    for operation in operations().values():
        for media in [resolve(operation.get("requestBody", {})).get("content", {}).get("application/json")]:
            if media:
                for example in examples_of(media.get("examples", {})):
                    assert_valid(example, media["schema"])
        for response in operation["responses"].values():
            media = resolve(response).get("content", {}).get("application/json")
            if media:
                for example in examples_of(media.get("examples", {})):
                    assert_valid(example, media["schema"])


# --- the document and the handler's real answers ----------------------------------------------------


def test_the_handlers_answers_validate_against_the_documented_schemas(tables, gateway, clock) -> None:
    # Create, read, update, end and health: each success answer is what the document says
    status, created = call(http_api.CREATE_SESSION, {"sourceLanguage": "en", "qualityTier": "standard"})
    assert status == 201
    assert_valid(plain(created), response_schema(http_api.CREATE_SESSION, 201))
    assert set(created) == set(SCHEMAS["SessionMetadata"]["required"])
    session_id = created["sessionId"]
    status, read = call(http_api.GET_SESSION, session_id=session_id)
    assert status == 200
    assert_valid(plain(read), response_schema(http_api.GET_SESSION, 200))
    status, updated = call(http_api.UPDATE_SESSION, {"minStability": 0.9}, session_id=session_id)
    assert status == 200
    assert_valid(plain(updated), response_schema(http_api.UPDATE_SESSION, 200))
    status, health = call(http_api.HEALTH, user_id=None)
    assert status == 200
    assert_valid(health, response_schema(http_api.HEALTH, 200))
    # And each refusal is a documented status of its route, in the error schema
    refusals = [
        (http_api.CREATE_SESSION, {"sourceLanguage": "en", "targetLanguage": "es"}, None, OWNER),
        (http_api.CREATE_SESSION, {"sourceLanguage": "en"}, None, None),
        (http_api.GET_SESSION, None, "golden-eagle-427", OWNER),
        (http_api.UPDATE_SESSION, {"minStability": 0.8}, session_id, "user-2"),
        (http_api.DELETE_SESSION, None, session_id, "user-2"),
    ]
    for route, body, target, user_id in refusals:
        status, error = call(route, body, user_id=user_id, session_id=target)
        assert str(status) in operations()[route.key]["responses"], (route.key, status)
        assert_valid(error, response_schema(route, status))
    assert call(http_api.DELETE_SESSION, session_id=session_id) == (204, None)
    status, ended = call(http_api.UPDATE_SESSION, {"minStability": 0.8}, session_id=session_id)
    assert status == 410
    assert_valid(ended, response_schema(http_api.UPDATE_SESSION, 410))
    status, after = call(http_api.GET_SESSION, session_id=session_id)
    assert after["status"] == "ended"
    assert_valid(plain(after), response_schema(http_api.GET_SESSION, 200))


@pytest.mark.parametrize(
    ("example", "route", "body", "user_id"),
    [
        ("UnknownField", http_api.CREATE_SESSION, {"sourceLanguage": "en", "targetLanguage": "es"}, OWNER),
        ("NotFound", http_api.GET_SESSION, None, OWNER),
        ("AnotherSpeakers", http_api.UPDATE_SESSION, {"minStability": 0.8}, "user-2"),
    ],
)
def test_the_error_samples_are_the_handlers_answers(tables, gateway, clock, example, route, body, user_id) -> None:
    # Given the session the samples name, owned by the speaker (none for the not-found sample)
    if example != "NotFound":
        tables.put_session(speakerUserId=OWNER)

    # When the request the sample illustrates is made
    _status, answer = call(route, body, user_id=user_id, session_id="golden-eagle-427")

    # Then the answer is the sample, word for word
    assert answer == COMPONENTS["examples"][example]["value"]
