"""Reads a synthesized cloud assembly (``cdk.out``) into what the local run needs: the WebSocket API's
routes and authorizer, the HTTP APIs (``local_run.http_api``), each function's handler, code and environment,
the tables, the S3 buckets, the stream triggers and the scheduled rules. Nothing here knows this project's names: any
CloudFormation WebSocket API whose integrations are Python Lambda functions from local assets can be run this way.

Scheduled rules: every ``AWS::Events::Rule`` with a ``ScheduleExpression`` whose ``State`` is not
``DISABLED`` becomes one :class:`ScheduledTrigger` per target that is a function of the assembly (other
targets are not run locally; the rule's ``AWS::Lambda::Permission`` needs no local counterpart, as no IAM
is evaluated). ``rate(N minute|minutes|hour|hours|day|days)`` expressions are supported; ``cron(...)``
expressions (and any other expression) are skipped with a warning on stderr. A target's ``Input`` (a JSON
string) is the event the function receives; without one the function receives EventBridge's
"Scheduled Event". ``InputPath`` and ``InputTransformer`` are not applied (a warning says so).
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_run.http_api import HttpApiDefinition, read_http_apis

LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT = "000000000000"
LOCAL_API_ID = "localapi"


@dataclass(frozen=True)
class TableDefinition:
    logical_id: str
    name: str
    properties: dict[str, Any]

    @property
    def ttl_attribute(self) -> str | None:
        spec = self.properties.get("TimeToLiveSpecification") or {}
        return spec.get("AttributeName") if spec.get("Enabled") else None

    def create_table_request(self) -> dict[str, Any]:
        """CreateTable arguments equal to the template's keys, indexes, billing and stream."""
        props = self.properties
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        throughput = props.get("ProvisionedThroughput")
        if request["BillingMode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = throughput or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                request[key] = [
                    {
                        k: v
                        for k, v in index.items()
                        if k in ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
                    }
                    for index in props[key]
                ]
        stream = props.get("StreamSpecification")
        if stream:
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        return request


@dataclass(frozen=True)
class BucketDefinition:
    """An S3 bucket of the template: its local name and its CORS rules as S3's ``PutBucketCors`` takes them."""

    logical_id: str
    name: str
    properties: dict[str, Any]

    @property
    def cors_rules(self) -> list[dict[str, Any]]:
        """The template's ``CorsConfiguration`` rules in the S3 API's spelling (``ID``, ``ExposeHeaders``,
        ``MaxAgeSeconds``)."""
        rules = (self.properties.get("CorsConfiguration") or {}).get("CorsRules", [])
        renamed = {"Id": "ID", "MaxAge": "MaxAgeSeconds", "ExposedHeaders": "ExposeHeaders"}
        return [{renamed.get(key, key): value for key, value in rule.items()} for rule in rules]


@dataclass(frozen=True)
class FunctionDefinition:
    logical_id: str
    name: str
    handler: str
    code_dir: Path
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int


@dataclass(frozen=True)
class AuthorizerDefinition:
    function: str  # logical id
    identity_sources: tuple[str, ...]


@dataclass(frozen=True)
class RouteDefinition:
    key: str
    function: str  # logical id
    returns_response: bool
    authorizer: AuthorizerDefinition | None = None


@dataclass(frozen=True)
class StreamTrigger:
    table: str  # logical id
    function: str  # logical id
    patterns: tuple[dict[str, Any], ...]
    batch_size: int
    starting_position: str
    # Lambda gathers records for up to this long (or until a batch is full) before invoking.
    batching_window_seconds: float = 0.0


@dataclass(frozen=True)
class ScheduledTrigger:
    """One target of a scheduled EventBridge rule that is a function of the assembly."""

    function: str  # logical id
    interval_seconds: float
    input: Any | None  # the target's constant ``Input``, parsed; None: EventBridge's "Scheduled Event"
    rule_arn: str = ""
    expression: str = ""

    def event(self, now: datetime | None = None) -> Any:
        """What EventBridge delivers to the function at one firing of the rule."""
        if self.input is not None:
            return self.input
        now = now or datetime.now(UTC)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": LOCAL_ACCOUNT,
            "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": LOCAL_REGION,
            "resources": [self.rule_arn] if self.rule_arn else [],
            "detail": {},
        }


_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_RATE_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """The interval of a ``rate(...)`` schedule expression in seconds; None for anything else (``cron``)."""
    match = _RATE.fullmatch(expression.strip())
    if match is None or int(match.group(1)) <= 0:
        return None
    return float(int(match.group(1)) * _RATE_UNIT_SECONDS[match.group(2).rstrip("s")])


@dataclass
class Assembly:
    stack_name: str
    stage: str
    route_selection_expression: str
    routes: dict[str, RouteDefinition]
    functions: dict[str, FunctionDefinition]
    tables: dict[str, TableDefinition]
    triggers: list[StreamTrigger]
    user_pools: dict[str, str] = field(default_factory=dict)  # local pool id -> its first app client id
    schedules: list[ScheduledTrigger] = field(default_factory=list)
    # The template's HTTP APIs (local_run.http_api), served on the WebSocket API's port.
    http_apis: list[HttpApiDefinition] = field(default_factory=list)
    # The template's S3 buckets (created in the local run's S3-API server), by logical id.
    buckets: dict[str, BucketDefinition] = field(default_factory=dict)

    def user_pools_with_clients(self) -> dict[str, str]:
        return dict(self.user_pools)


@dataclass(frozen=True)
class LocalAddresses:
    """Where the local run serves what API Gateway and Cognito serve in the cloud."""

    websocket_port: int
    http_port: int  # @connections management API and user-pool JWKS

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def find_template(cdk_out: Path, stack_name: str | None = None) -> Path:
    templates = sorted(cdk_out.glob("*.template.json"))
    if stack_name:
        templates = [t for t in templates if t.name == f"{stack_name}.template.json"]
    if len(templates) != 1:
        raise RuntimeError(f"expected one stack template in {cdk_out}, found {[t.name for t in templates]}")
    return templates[0]


def load(cdk_out: Path, addresses: LocalAddresses, stack_name: str | None = None) -> Assembly:
    template_path = find_template(cdk_out, stack_name)
    stack = template_path.name.removesuffix(".template.json")
    template = json.loads(template_path.read_text())
    assets = json.loads((cdk_out / f"{stack}.assets.json").read_text()).get("files", {})
    return _Reader(stack, template["Resources"], assets, cdk_out, addresses).assembly()


class _Reader:
    def __init__(
        self, stack: str, resources: dict[str, Any], assets: dict[str, Any], cdk_out: Path, addresses: LocalAddresses
    ) -> None:
        self.stack = stack
        self.resources = resources
        self.assets = assets
        self.cdk_out = cdk_out
        self.addresses = addresses

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r.get("Type") == kind}

    # -- intrinsic functions ------------------------------------------------------------------------
    def physical_name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::DynamoDB::Table":
            return props.get("TableName") or f"{self.stack}-{logical_id}"
        if kind == "AWS::Lambda::Function":
            return props.get("FunctionName") or f"{self.stack}-{logical_id}"
        if kind == "AWS::ApiGatewayV2::Api":
            return LOCAL_API_ID
        if kind == "AWS::Cognito::UserPool":
            return f"{LOCAL_REGION}_{logical_id}"
        if kind == "AWS::Cognito::UserPoolClient":
            return f"local-client-{logical_id}"
        if kind == "AWS::Events::Rule":
            return props.get("Name") or f"{self.stack}-{logical_id}"
        if kind == "AWS::S3::Bucket":  # S3's names are lower case, 63 characters at most
            return props.get("BucketName") or f"{self.stack}-{logical_id}".lower()[:63]
        return logical_id

    def attribute(self, logical_id: str, name: str) -> str:
        kind = self.resources[logical_id]["Type"]
        physical = self.physical_name(logical_id)
        if kind == "AWS::DynamoDB::Table" and name == "Arn":
            return f"arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT}:table/{physical}"
        if kind == "AWS::DynamoDB::Table" and name == "StreamArn":
            return f"arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT}:table/{physical}/stream/local"
        if kind == "AWS::Lambda::Function" and name == "Arn":
            return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{physical}"
        if kind == "AWS::Cognito::UserPool" and name == "ProviderURL":
            return f"127.0.0.1:{self.addresses.http_port}/{physical}"
        if kind == "AWS::Cognito::UserPool" and name == "Arn":
            return f"arn:aws:cognito-idp:{LOCAL_REGION}:{LOCAL_ACCOUNT}:userpool/{physical}"
        if kind == "AWS::S3::Bucket" and name == "Arn":
            return f"arn:aws:s3:::{physical}"
        if kind == "AWS::Events::Rule" and name == "Arn":
            return f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT}:rule/{physical}"
        if kind == "AWS::ApiGatewayV2::Api" and name == "ApiEndpoint":
            return f"wss://{LOCAL_API_ID}.execute-api.{LOCAL_REGION}.amazonaws.com"
        return f"{physical}.{name}"

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                return _PSEUDO.get(arg) or (self.physical_name(arg) if arg in self.resources else arg)
            if fn == "Fn::GetAtt":
                logical_id, name = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attribute(logical_id, name)
            if fn == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self.resolve(p)) for p in parts)
            if fn == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(index)]
            if fn == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if fn == "Fn::Sub":
                text, names = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._sub(m.group(1), names)), text)
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, name: str, names: dict[str, Any]) -> Any:
        if name in names:
            return self.resolve(names[name])
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return self.attribute(logical_id, attribute)
        return self.resolve({"Ref": name})

    def localize(self, text: str) -> str:
        """Point the cloud's endpoints of this API and its user pools at the local run."""
        api_host = f"{LOCAL_API_ID}.execute-api.{LOCAL_REGION}.amazonaws.com"
        text = text.replace(f"https://{api_host}", self.addresses.http_base)
        text = text.replace(f"wss://{api_host}", f"ws://127.0.0.1:{self.addresses.websocket_port}")
        # A user pool's issuer, as Cognito names it, is the local pool's issuer (its JWKS served on the HTTP port).
        text = text.replace(f"https://cognito-idp.{LOCAL_REGION}.amazonaws.com/", f"{self.addresses.http_base}/")
        return text.replace(f"https://127.0.0.1:{self.addresses.http_port}", self.addresses.http_base)

    def referenced(self, value: Any, kind: str) -> str | None:
        """The logical id of the first resource of ``kind`` that ``value`` refers to (Ref or GetAtt)."""
        if isinstance(value, dict):
            for fn, arg in value.items():
                if fn == "Ref" and isinstance(arg, str) and self.resources.get(arg, {}).get("Type") == kind:
                    return arg
                if fn == "Fn::GetAtt":
                    logical_id = arg[0] if isinstance(arg, list) else arg.split(".", 1)[0]
                    if self.resources.get(logical_id, {}).get("Type") == kind:
                        return logical_id
                found = self.referenced(arg, kind)
                if found:
                    return found
        elif isinstance(value, list):
            for item in value:
                found = self.referenced(item, kind)
                if found:
                    return found
        return None

    # -- the assembly ------------------------------------------------------------------------------
    def assembly(self) -> Assembly:
        apis = {
            lid: r
            for lid, r in self.of_type("AWS::ApiGatewayV2::Api").items()
            if r["Properties"].get("ProtocolType") == "WEBSOCKET"
        }
        if len(apis) != 1:
            raise RuntimeError(f"expected one WebSocket API in {self.stack}, found {len(apis)}")
        api_id, api = next(iter(apis.items()))
        stages = [
            r["Properties"]["StageName"]
            for r in self.of_type("AWS::ApiGatewayV2::Stage").values()
            if r["Properties"].get("ApiId") == {"Ref": api_id}
        ]
        functions = self.functions()
        return Assembly(
            stack_name=self.stack,
            stage=stages[0] if stages else "$default",
            route_selection_expression=api["Properties"]["RouteSelectionExpression"],
            routes=self.routes(api_id),
            functions=functions,
            tables={
                lid: TableDefinition(lid, self.physical_name(lid), r["Properties"])
                for lid, r in self.of_type("AWS::DynamoDB::Table").items()
            },
            triggers=self.triggers(),
            user_pools=self.user_pools(),
            schedules=self.schedules(functions),
            http_apis=read_http_apis(self),
            buckets={
                lid: BucketDefinition(lid, self.physical_name(lid), self.resolve(r.get("Properties", {})))
                for lid, r in self.of_type("AWS::S3::Bucket").items()
            },
        )

    def user_pools(self) -> dict[str, str]:
        clients = self.of_type("AWS::Cognito::UserPoolClient")
        pools = {}
        for lid in self.of_type("AWS::Cognito::UserPool"):
            client = next((c for c, r in clients.items() if r["Properties"].get("UserPoolId") == {"Ref": lid}), None)
            pools[self.physical_name(lid)] = self.physical_name(client) if client else ""
        return pools

    def routes(self, api_id: str) -> dict[str, RouteDefinition]:
        responding = {
            r["Properties"]["RouteId"]["Ref"] for r in self.of_type("AWS::ApiGatewayV2::RouteResponse").values()
        }
        routes = {}
        for lid, resource in self.of_type("AWS::ApiGatewayV2::Route").items():
            props = resource["Properties"]
            if props.get("ApiId") != {"Ref": api_id}:
                continue
            integration_id = self.referenced(props["Target"], "AWS::ApiGatewayV2::Integration")
            if integration_id is None:
                continue
            function = self.referenced(
                self.resources[integration_id]["Properties"]["IntegrationUri"], "AWS::Lambda::Function"
            )
            if function is None:
                raise RuntimeError(f"route {props['RouteKey']}: only Lambda proxy integrations run locally")
            authorizer = None
            if props.get("AuthorizationType") == "CUSTOM":
                auth_props = self.resources[props["AuthorizerId"]["Ref"]]["Properties"]
                authorizer = AuthorizerDefinition(
                    function=self.referenced(auth_props["AuthorizerUri"], "AWS::Lambda::Function") or "",
                    identity_sources=tuple(auth_props.get("IdentitySource", [])),
                )
            routes[props["RouteKey"]] = RouteDefinition(props["RouteKey"], function, lid in responding, authorizer)
        return routes

    def functions(self) -> dict[str, FunctionDefinition]:
        functions = {}
        for lid, resource in self.of_type("AWS::Lambda::Function").items():
            props = resource["Properties"]
            if not str(props.get("Runtime", "")).startswith("python"):
                continue
            key = str(props["Code"].get("S3Key", "")).removesuffix(".zip")
            asset = self.assets.get(key)
            if asset is None:
                continue  # inline or external code: not runnable locally
            variables = (props.get("Environment") or {}).get("Variables", {})
            functions[lid] = FunctionDefinition(
                logical_id=lid,
                name=self.physical_name(lid),
                handler=props["Handler"],
                code_dir=self.cdk_out / asset["source"]["path"],
                environment={k: self.localize(str(self.resolve(v))) for k, v in variables.items()},
                timeout_seconds=int(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
            )
        return functions

    def triggers(self) -> list[StreamTrigger]:
        triggers = []
        for resource in self.of_type("AWS::Lambda::EventSourceMapping").values():
            props = resource["Properties"]
            table = self.referenced(props.get("EventSourceArn"), "AWS::DynamoDB::Table")
            function = self.referenced(props.get("FunctionName"), "AWS::Lambda::Function")
            if table is None or function is None:
                continue
            filters = (props.get("FilterCriteria") or {}).get("Filters", [])
            triggers.append(
                StreamTrigger(
                    table=table,
                    function=function,
                    patterns=tuple(json.loads(f["Pattern"]) for f in filters),
                    batch_size=int(props.get("BatchSize", 100)),
                    starting_position=props.get("StartingPosition", "LATEST"),
                    batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                )
            )
        return triggers

    def schedules(self, functions: dict[str, FunctionDefinition]) -> list[ScheduledTrigger]:
        """Enabled scheduled rules' targets that are functions of the assembly (see the module's docstring)."""
        schedules = []
        for lid, resource in self.of_type("AWS::Events::Rule").items():
            props = resource.get("Properties", {})
            expression = props.get("ScheduleExpression")
            if not expression or str(props.get("State", "ENABLED")).upper() == "DISABLED":
                continue
            targets: list[tuple[dict[str, Any], str]] = []
            for target in props.get("Targets", []):
                function = self.referenced(target.get("Arn"), "AWS::Lambda::Function")
                if function is not None and function in functions:
                    targets.append((target, function))
            if not targets:
                continue
            interval = rate_seconds(str(expression))
            if interval is None:
                print(
                    f"local run: rule {lid}: schedule {expression!r} is not run locally "
                    f"(only rate(N minutes|hours|days) is supported)",
                    file=sys.stderr,
                )
                continue
            for target, function in targets:
                if "InputPath" in target or "InputTransformer" in target:
                    print(
                        f"local run: rule {lid}: InputPath/InputTransformer of target {target.get('Id')} "
                        f"are not applied locally; {function} receives the scheduled event",
                        file=sys.stderr,
                    )
                schedules.append(
                    ScheduledTrigger(
                        function=function,
                        interval_seconds=interval,
                        input=json.loads(str(self.resolve(target["Input"]))) if "Input" in target else None,
                        rule_arn=self.attribute(lid, "Arn"),
                        expression=str(expression),
                    )
                )
        return schedules


_PSEUDO = {
    "AWS::Region": LOCAL_REGION,
    "AWS::AccountId": LOCAL_ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}


def matches(pattern: Any, value: Any) -> bool:
    """Lambda event filtering: a pattern object matches when every key matches; a list of rules matches
    when any rule does (equality, ``exists``, ``prefix``, ``anything-but``)."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(
            _matches_rules(rules, key in value, value.get(key))
            if isinstance(rules, list)
            else matches(rules, value.get(key))
            for key, rules in pattern.items()
        )
    return False


def _matches_rules(rules: list[Any], present: bool, value: Any) -> bool:
    for rule in rules:
        if isinstance(rule, dict):
            if "exists" in rule and rule["exists"] == present:
                return True
            if "prefix" in rule and isinstance(value, str) and value.startswith(rule["prefix"]):
                return True
            if "anything-but" in rule and present:
                excluded = rule["anything-but"]
                if value not in (excluded if isinstance(excluded, list) else [excluded]):
                    return True
        elif present and value == rule:
            return True
    return False
