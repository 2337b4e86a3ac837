"""Synthesis and template navigation shared by the infrastructure tests.

The stack is synthesized as ``npx cdk synth -c env=NAME`` does it, with the feature flags of ``cdk.json``,
except that the Lambda asset is not bundled (bundling runs ``pip install``): an empty
``aws:cdk:bundling-stacks`` list skips it, so a synth takes well under a second once jsii has started.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from app import build_app
from cdk_app.stack import SessionServiceStack
from lambda_src.contract import routes, schema

REPO_ROOT = Path(__file__).resolve().parents[2]
HANDLERS_DIR = REPO_ROOT / "lambda_src" / "handlers"
HANDLER_PREFIX = "lambda_src.handlers."

ALL_ROUTES = frozenset({routes.CONNECT, routes.DISCONNECT, routes.DEFAULT, *routes.MESSAGE_ROUTES})
# Routes whose handler's return value is sent back to the client (a route response).
RESPONDING_ROUTES = frozenset({routes.DEFAULT, *routes.MESSAGE_ROUTES})
# The handler module behind each route.
ROUTE_MODULE = {
    routes.CONNECT: "connect",
    routes.DISCONNECT: "disconnect",
    **{route_key: "message" for route_key in RESPONDING_ROUTES},
}
ROUTE_MODULES = frozenset(ROUTE_MODULE.values())
WELCOME_MODULE = "welcome"
SWEEPER_MODULE = "sweeper"
AUTHORIZER_MODULE = "authorizer"
STATUS_MODULE = "status"
TRANSCRIBER_MODULE = "transcriber"
FANOUT_MODULE = "fanout"
# The function behind every route of the HTTP session API.
HTTP_API_MODULE = "http_api"
# Every function of the stack, by the handler module it runs.
ALL_MODULES = ROUTE_MODULES | {
    WELCOME_MODULE,
    SWEEPER_MODULE,
    AUTHORIZER_MODULE,
    STATUS_MODULE,
    TRANSCRIBER_MODULE,
    FANOUT_MODULE,
    HTTP_API_MODULE,
}
# The functions that work on the tables (and so are told their names and the session limits).
TABLE_MODULES = ROUTE_MODULES | {
    WELCOME_MODULE,
    SWEEPER_MODULE,
    STATUS_MODULE,
    TRANSCRIBER_MODULE,
    FANOUT_MODULE,
    HTTP_API_MODULE,
}
# The functions that write session state: they read and write both tables.
WRITER_MODULES = ROUTE_MODULES | {SWEEPER_MODULE, HTTP_API_MODULE}
# The functions that post to connections through this stage's @connections API (written out: the authorizer
# must never be among them).
POSTING_MODULES = frozenset(
    {"connect", "disconnect", "message", "sweeper", "welcome", "status", "transcriber", "fanout", "http_api"}
)

TABLE_TYPE = "AWS::DynamoDB::Table"
FUNCTION_TYPE = "AWS::Lambda::Function"
PERMISSION_TYPE = "AWS::Lambda::Permission"
API_TYPE = "AWS::ApiGatewayV2::Api"
AUTHORIZER_TYPE = "AWS::ApiGatewayV2::Authorizer"
ROUTE_TYPE = "AWS::ApiGatewayV2::Route"
ROUTE_RESPONSE_TYPE = "AWS::ApiGatewayV2::RouteResponse"
INTEGRATION_TYPE = "AWS::ApiGatewayV2::Integration"
STAGE_TYPE = "AWS::ApiGatewayV2::Stage"
LOG_GROUP_TYPE = "AWS::Logs::LogGroup"
POLICY_TYPE = "AWS::IAM::Policy"
ROLE_TYPE = "AWS::IAM::Role"
EVENT_SOURCE_MAPPING_TYPE = "AWS::Lambda::EventSourceMapping"
RULE_TYPE = "AWS::Events::Rule"
ALARM_TYPE = "AWS::CloudWatch::Alarm"
TOPIC_TYPE = "AWS::SNS::Topic"
TOPIC_POLICY_TYPE = "AWS::SNS::TopicPolicy"
SUBSCRIPTION_TYPE = "AWS::SNS::Subscription"
KEY_TYPE = "AWS::KMS::Key"
BUCKET_TYPE = "AWS::S3::Bucket"
BUCKET_POLICY_TYPE = "AWS::S3::BucketPolicy"
QUEUE_TYPE = "AWS::SQS::Queue"
QUEUE_POLICY_TYPE = "AWS::SQS::QueuePolicy"
EVENT_INVOKE_CONFIG_TYPE = "AWS::Lambda::EventInvokeConfig"
ACCOUNT_TYPE = "AWS::ApiGateway::Account"

EVENTS_PRINCIPAL = "events.amazonaws.com"

# Concrete values for rendering template values the way CloudFormation resolves them (``Synthesized.rendered``).
ACCOUNT = "123456789012"
REGION = "eu-west-1"
API_ID = "a1b2c3d4e5"


@dataclass(frozen=True)
class Expected:
    """What an environment must deploy, written out here rather than read back from ``cdk_app.config``."""

    point_in_time_recovery: bool
    deletion_protection: bool
    removal_policy: str  # the resources' DeletionPolicy and UpdateReplacePolicy
    log_retention_days: int
    customer_managed_keys: bool  # the tables and log groups encrypted with the stack's own keys
    reserved_concurrency: dict[str, int]  # handler module -> ReservedConcurrentExecutions (absent: none)


EXPECTED = {
    "dev": Expected(
        point_in_time_recovery=False,
        deletion_protection=False,
        removal_policy="Delete",
        log_retention_days=7,
        customer_managed_keys=False,
        reserved_concurrency={},
    ),
    "staging": Expected(
        point_in_time_recovery=True,
        deletion_protection=False,
        removal_policy="Delete",
        log_retention_days=30,
        customer_managed_keys=False,
        reserved_concurrency={
            "connect": 30,
            "disconnect": 20,
            "message": 30,
            "authorizer": 20,
            "welcome": 5,
            "sweeper": 2,
            "status": 3,
            "transcriber": 10,
            "fanout": 10,
            "http_api": 5,
        },
    ),
    "prod": Expected(
        point_in_time_recovery=True,
        deletion_protection=True,
        removal_policy="Retain",
        log_retention_days=90,
        customer_managed_keys=True,
        reserved_concurrency={
            "connect": 200,
            "disconnect": 100,
            "message": 200,
            "authorizer": 100,
            "welcome": 20,
            "sweeper": 2,
            "status": 10,
            "transcriber": 100,
            "fanout": 100,
            "http_api": 20,
        },
    ),
}


def feature_flags() -> dict[str, Any]:
    """The context of ``cdk.json`` (feature flags) without its default environment."""
    context = dict(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])
    context.pop("env", None)
    return context


# --- intrinsic functions ---------------------------------------------------------------------------


def ref(logical_id: str) -> dict[str, str]:
    return {"Ref": logical_id}


def get_att(logical_id: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def table_arn(logical_id: str) -> str:
    """A table's ARN as IAM statements name it, canonical (for ``allowed_pairs``)."""
    return canonical(get_att(logical_id, "Arn"))


def index_arn(logical_id: str, index_name: str = "*") -> str:
    """A table's index (default: every index), as IAM statements name it, canonical (for ``allowed_pairs``)."""
    return canonical({"Fn::Join": ["", [get_att(logical_id, "Arn"), f"/index/{index_name}"]]})


def execute_api_arn_parts(api_logical_id: str, path: str) -> list[Any]:
    """The ``Fn::Join`` parts of an ``execute-api`` ARN of this API, followed by ``path``."""
    return [
        "arn:",
        ref("AWS::Partition"),
        ":execute-api:",
        ref("AWS::Region"),
        ":",
        ref("AWS::AccountId"),
        ":",
        ref(api_logical_id),
        path,
    ]


def join_parts(value: Any) -> list[Any]:
    """The parts of an ``Fn::Join`` with an empty separator (fails on anything else)."""
    assert isinstance(value, dict) and list(value) == ["Fn::Join"], f"expected an Fn::Join, got {value!r}"
    separator, parts = value["Fn::Join"]
    assert separator == "", f"expected an empty Fn::Join separator, got {separator!r}"
    return list(parts)


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def canonical(value: Any) -> str:
    """A hashable, order-independent spelling of a template value (for sets of resources)."""
    return json.dumps(value, sort_keys=True)


def render(value: Any, names: Mapping[str, str]) -> str:
    """A template value as the string CloudFormation would produce, given concrete values for every
    ``Ref`` (keyed by name) and ``Fn::GetAtt`` (keyed by ``"LogicalId.Attribute"``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and list(value) == ["Ref"]:
        return names[value["Ref"]]
    if isinstance(value, dict) and list(value) == ["Fn::GetAtt"]:
        logical_id, attribute = value["Fn::GetAtt"]
        return names[f"{logical_id}.{attribute}"]
    if isinstance(value, dict) and list(value) == ["Fn::Join"]:
        separator, parts = value["Fn::Join"]
        return separator.join(render(part, names) for part in parts)
    raise AssertionError(f"cannot render {value!r}")


def arn_like(pattern: str, arn: str) -> bool:
    """IAM's ``ArnLike``: ``*`` matches any run of characters (``/`` included), ``?`` any one character."""
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, arn, flags=re.DOTALL) is not None


# --- the synthesized stack -------------------------------------------------------------------------


class Synthesized:
    """One synthesized stack: the CDK objects, the ``Template`` and the raw template, with lookups."""

    def __init__(self, app: cdk.App, stack: SessionServiceStack, template: Template) -> None:
        self.app = app
        self.stack = stack
        self.config = stack.config
        self.name = stack.config.name
        self.template = template
        self.json: Mapping[str, Any] = template.to_json()

    def __repr__(self) -> str:
        return f"Synthesized({self.name!r})"

    # Resources in general.

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.json.get("Resources", {}).items()
            if resource["Type"] == resource_type
        }

    def resource(self, logical_id: str) -> dict[str, Any]:
        assert logical_id in self.json["Resources"], f"no resource {logical_id!r} in the template"
        return self.json["Resources"][logical_id]

    def only(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        found = self.resources(resource_type)
        assert len(found) == 1, f"expected exactly one {resource_type}, found {sorted(found)}"
        return next(iter(found.items()))

    @cached_property
    def sample_names(self) -> dict[str, str]:
        """Concrete values of the pseudo parameters and the API's id, for ``render``."""
        return {
            "AWS::Partition": "aws",
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
            self.api_id: API_ID,
        }

    def rendered(self, value: Any) -> str:
        """A template value as CloudFormation would resolve it with ``sample_names``."""
        return render(value, self.sample_names)

    # Tables.

    def table_id(self, partition_key: str, sort_key: str | None = None) -> str:
        """The one table keyed by ``partition_key`` and ``sort_key`` (None: by the partition key alone)."""
        wanted = [(partition_key, "HASH")] + ([(sort_key, "RANGE")] if sort_key else [])
        found = [
            logical_id
            for logical_id, table in self.resources(TABLE_TYPE).items()
            if [(k["AttributeName"], k["KeyType"]) for k in table["Properties"].get("KeySchema", [])] == wanted
        ]
        assert len(found) == 1, f"expected one table keyed by {wanted!r}, found {found}"
        return found[0]

    @cached_property
    def sessions_table_id(self) -> str:
        return self.table_id(schema.SESSIONS_PARTITION_KEY)

    @cached_property
    def connections_table_id(self) -> str:
        return self.table_id(schema.CONNECTIONS_PARTITION_KEY)

    @cached_property
    def rate_limits_table_id(self) -> str:
        return self.table_id(schema.RATE_LIMITS_PARTITION_KEY)

    @cached_property
    def audio_chunks_table_id(self) -> str:
        return self.table_id(schema.AUDIO_CHUNKS_PARTITION_KEY, schema.AUDIO_CHUNKS_SORT_KEY)

    @cached_property
    def transcripts_table_id(self) -> str:
        return self.table_id(schema.TRANSCRIPTS_PARTITION_KEY, schema.TRANSCRIPTS_SORT_KEY)

    # Keys.

    def key_id(self, described_as: str) -> str | None:
        """The one KMS key whose description contains ``described_as`` (``"tables"``, ``"log groups"``,
        ``"alarm topic"``), or None when the stack has none."""
        found = [
            logical_id
            for logical_id, key in self.resources(KEY_TYPE).items()
            if described_as in key["Properties"].get("Description", "")
        ]
        assert len(found) <= 1, f"more than one key described as {described_as!r}: {found}"
        return found[0] if found else None

    @cached_property
    def tables_key_id(self) -> str | None:
        return self.key_id("tables")

    @cached_property
    def logs_key_id(self) -> str | None:
        return self.key_id("log groups")

    @cached_property
    def audio_key_id(self) -> str | None:
        return self.key_id("audio bucket")

    # The API.

    def api_of_protocol(self, protocol: str) -> str:
        """The one API of ``protocol`` (``WEBSOCKET`` or ``HTTP``)."""
        found = [
            logical_id
            for logical_id, api in self.resources(API_TYPE).items()
            if api["Properties"].get("ProtocolType") == protocol
        ]
        assert len(found) == 1, f"expected one {protocol} API, found {found}"
        return found[0]

    @cached_property
    def api_id(self) -> str:
        """The WebSocket API."""
        return self.api_of_protocol("WEBSOCKET")

    @cached_property
    def http_api_id(self) -> str:
        return self.api_of_protocol("HTTP")

    def of_api(self, resource_type: str, api_id: str) -> dict[str, dict[str, Any]]:
        """The resources of ``resource_type`` (routes, integrations, stages, authorizers) of one API."""
        return {
            logical_id: resource
            for logical_id, resource in self.resources(resource_type).items()
            if resource["Properties"].get("ApiId") == ref(api_id)
        }

    def only_of_api(self, resource_type: str, api_id: str) -> tuple[str, dict[str, Any]]:
        found = self.of_api(resource_type, api_id)
        assert len(found) == 1, f"expected exactly one {resource_type} of {api_id}, found {sorted(found)}"
        return next(iter(found.items()))

    @cached_property
    def routes(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """The WebSocket API's routes: route key -> (logical id, resource); fails on a duplicated route key."""
        return self.routes_of(self.api_id)

    @cached_property
    def http_routes(self) -> dict[str, tuple[str, dict[str, Any]]]:
        return self.routes_of(self.http_api_id)

    def routes_of(self, api_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
        by_key: dict[str, tuple[str, dict[str, Any]]] = {}
        for logical_id, route in self.of_api(ROUTE_TYPE, api_id).items():
            key = route["Properties"]["RouteKey"]
            assert key not in by_key, f"route {key!r} is defined twice ({by_key[key][0]}, {logical_id})"
            by_key[key] = (logical_id, route)
        return by_key

    def route_integration_id(
        self, route_key: str, routes: Mapping[str, tuple[str, dict[str, Any]]] | None = None
    ) -> str:
        """The integration a route targets (``Target: integrations/<Ref>``), of the WebSocket API's ``routes``
        unless others are given."""
        target = (self.routes if routes is None else routes)[route_key][1]["Properties"].get("Target")
        parts = join_parts(target)
        assert len(parts) == 2 and parts[0] == "integrations/", f"unexpected Target of {route_key!r}: {target!r}"
        assert isinstance(parts[1], dict) and list(parts[1]) == ["Ref"], f"unexpected Target of {route_key!r}"
        return parts[1]["Ref"]

    def integration_function_id(self, integration_id: str) -> str:
        """The function an AWS_PROXY Lambda integration invokes (the ``GetAtt Arn`` in its URI)."""
        uri = self.resource(integration_id)["Properties"]["IntegrationUri"]
        functions = [
            part["Fn::GetAtt"][0]
            for part in join_parts(uri)
            if isinstance(part, dict) and "Fn::GetAtt" in part and part["Fn::GetAtt"][1] == "Arn"
        ]
        assert len(functions) == 1, f"integration {integration_id} names {functions} in {uri!r}"
        return functions[0]

    def route_function_id(self, route_key: str) -> str:
        return self.integration_function_id(self.route_integration_id(route_key))

    # Functions.

    @cached_property
    def functions(self) -> dict[str, dict[str, Any]]:
        return self.resources(FUNCTION_TYPE)

    def function_module(self, function_id: str) -> str | None:
        """The module of ``lambda_src.handlers`` a function runs (None for a handler from elsewhere)."""
        handler = self.functions[function_id]["Properties"]["Handler"]
        if not (handler.startswith(HANDLER_PREFIX) and handler.endswith(".handler")):
            return None
        return handler[len(HANDLER_PREFIX) : -len(".handler")]

    def function_id(self, module: str) -> str:
        found = [logical_id for logical_id in self.functions if self.function_module(logical_id) == module]
        assert len(found) == 1, f"expected one function running lambda_src.handlers.{module}, found {found}"
        return found[0]

    def functions_running(self, modules: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The functions whose handler lives in one of ``modules``."""
        wanted = set(modules)
        return {
            logical_id: function
            for logical_id, function in self.functions.items()
            if self.function_module(logical_id) in wanted
        }

    def function_role_id(self, function_id: str) -> str:
        role = self.resource(function_id)["Properties"]["Role"]
        assert isinstance(role, dict) and list(role) == ["Fn::GetAtt"] and role["Fn::GetAtt"][1] == "Arn", role
        return role["Fn::GetAtt"][0]

    # IAM.

    def policies_of_role(self, role_id: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: policy
            for logical_id, policy in self.resources(POLICY_TYPE).items()
            if ref(role_id) in policy["Properties"].get("Roles", [])
        }

    def statements_of_role(self, role_id: str) -> list[dict[str, Any]]:
        """Every statement granted to a role: its attached AWS::IAM::Policy resources and inline policies."""
        statements = [
            statement
            for policy in self.policies_of_role(role_id).values()
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
        for inline in self.resource(role_id)["Properties"].get("Policies", []):
            statements.extend(inline["PolicyDocument"]["Statement"])
        return statements

    def statements_of_function(self, function_id: str) -> list[dict[str, Any]]:
        return self.statements_of_role(self.function_role_id(function_id))

    # Policy checks.

    @cached_property
    def acknowledgments(self) -> dict[str, dict[str, str]]:
        """Construct path -> {acknowledged finding id: reason}, over the whole app (cdk-nag's exceptions)."""
        found: dict[str, dict[str, str]] = {}
        for construct in self.app.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                    found.setdefault(construct.node.path, {}).update(entry.data)
        return found


def allowed_pairs(statements: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    """(action, canonical resource) for every Allow statement, lists expanded (so merged or split
    statements, e.g. with ``@aws-cdk/aws-iam:minimizePolicies``, compare equal)."""
    return {
        (action, canonical(resource))
        for statement in statements
        if statement.get("Effect") == "Allow"
        for action in as_list(statement.get("Action", []))
        for resource in as_list(statement.get("Resource", []))
    }


def allowed_actions(statements: Iterable[dict[str, Any]]) -> set[str]:
    return {action for action, _ in allowed_pairs(statements)}


# --- synthesis -------------------------------------------------------------------------------------


def synthesize(
    context: Mapping[str, Any], customize: Callable[[SessionServiceStack], None] | None = None
) -> Synthesized:
    """Build the app with ``context`` (e.g. ``{"env": "prod"}``), let ``customize`` add to the stack, synthesize."""
    app = cdk.App(context={**feature_flags(), "aws:cdk:bundling-stacks": [], **context})
    build_app(app)
    stacks = [child for child in app.node.children if isinstance(child, cdk.Stack)]
    assert len(stacks) == 1, f"expected the app to hold one stack, found {[s.node.id for s in stacks]}"
    stack = stacks[0]
    assert isinstance(stack, SessionServiceStack)
    assert stack.node.id == f"SessionService-{stack.config.name}"
    if customize is not None:
        customize(stack)
    return Synthesized(app, stack, Template.from_stack(stack))
