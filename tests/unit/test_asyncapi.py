"""docs/asyncapi.yaml matches the code, in both directions: the routes (query-string and message actions), the server
messages (docs/protocol.md's table, and the fields the service's builders write), the error catalogue, the
partial-result settings' bounds and defaults, the other limits and enums. (`make lint` validates the document against
the AsyncAPI specification itself.)"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from lambda_src.contract import limits, partial_result_fields, routes, wire
from lambda_src.contract.errors import ErrorCode
from lambda_src.model import broadcast
from lambda_src.protocol import messages, validation
from tests.unit.server_samples import every_sample
from tests.unit.test_protocol_reference import _names, _table_after

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
COMPONENTS = DOCUMENT["components"]


def resolve(node: Any) -> Any:
    """``node``, or what its local ``$ref`` points to (followed until it is not a reference)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def payloads(key: str) -> dict[str, dict[str, Any]]:
    """The session channel's message payloads whose ``key`` property (``action`` or ``type``) is a constant, by it
    (an ``error``'s ``action``, the action it refuses, is not a constant)."""
    found = {}
    for message in DOCUMENT["channels"]["session"]["messages"].values():
        payload = resolve(resolve(message)["payload"])
        if "const" in payload["properties"].get(key, {}):
            found[payload["properties"][key]["const"]] = payload
    return found


SERVER_MESSAGES = payloads("type")
CLIENT_MESSAGES = payloads("action")


def test_every_message_route_is_a_client_message_and_an_operation_and_nothing_else_is() -> None:
    assert sorted(CLIENT_MESSAGES) == sorted(routes.MESSAGE_ROUTES)
    sent = {
        name: resolve(operation["messages"][0])["payload"]["properties"]["action"]["const"]
        for name, operation in DOCUMENT["operations"].items()
        if operation["action"] == "send"
    }
    assert sent == {route: route for route in routes.MESSAGE_ROUTES}


def test_every_query_string_action_is_a_connect_channel_and_nothing_else_is() -> None:
    connect_channels = {
        name: channel["bindings"]["ws"]["query"]["properties"]["action"]["const"]
        for name, channel in DOCUMENT["channels"].items()
        if "bindings" in channel
    }
    assert connect_channels == {action: action for action in routes.CONNECT_ACTIONS}


def test_the_server_messages_are_the_protocol_pages_and_the_codes() -> None:
    documented = set(_names(_table_after("## Server messages")))
    assert set(SERVER_MESSAGES) == documented == set(messages.SERVER_MESSAGE_TYPES)


def test_each_server_messages_fields_are_the_ones_the_service_writes() -> None:
    written: dict[str, set[str]] = {}
    for sample in every_sample():
        payload = SERVER_MESSAGES[sample["type"]]
        # Every field written is documented, and every required field is written
        assert set(sample) <= set(payload["properties"]), sample["type"]
        assert set(payload["required"]) <= set(sample), sample["type"]
        written.setdefault(sample["type"], set()).update(sample)
    # And every documented field is written by some builder
    assert {kind: set(payload["properties"]) for kind, payload in SERVER_MESSAGES.items()} == written


def test_the_error_codes_are_the_catalogue_with_their_statuses_and_meanings() -> None:
    documented = [
        (entry["const"], entry["x-status"], entry["description"])
        for entry in COMPONENTS["schemas"]["ErrorCode"]["oneOf"]
    ]
    assert documented == [(code.name, code.status, code.when) for code in ErrorCode]


@pytest.mark.parametrize("field", partial_result_fields.FIELDS, ids=lambda field: field.request)
def test_the_partial_result_settings_have_the_codes_bounds_and_defaults(
    field: partial_result_fields.Field[Any],
) -> None:
    schema = COMPONENTS["schemas"][field.request]
    assert (
        Decimal(str(schema["default"])) == field.default
        if field.kind is Decimal
        else schema["default"] is field.default
    )
    if field.kind is Decimal:
        assert (Decimal(str(schema["minimum"])), Decimal(str(schema["maximum"]))) == field.bounds
    else:
        assert "minimum" not in schema and "maximum" not in schema
    # And each message that takes the settings takes all of them, by their request names
    for action in (routes.CREATE_SESSION, routes.UPDATE_SESSION_CONFIG):
        assert resolve(CLIENT_MESSAGES[action]["properties"][field.request]) is schema
    create_query = DOCUMENT["channels"][routes.CREATE_SESSION]["bindings"]["ws"]["query"]["properties"]
    assert resolve(create_query[field.request]) is schema


def test_limits_and_enums_are_the_codes() -> None:
    schemas = COMPONENTS["schemas"]
    volume = (Decimal(str(schemas["Volume"]["minimum"])), Decimal(str(schemas["Volume"]["maximum"])))
    assert volume == (limits.VOLUME_LOWER, limits.VOLUME_UPPER)
    audio = CLIENT_MESSAGES[routes.SEND_AUDIO]["properties"]
    assert (audio["audioData"]["x-decodedMinBytes"], audio["audioData"]["x-decodedMaxBytes"]) == (
        limits.MIN_AUDIO_CHUNK_BYTES,
        limits.MAX_AUDIO_CHUNK_BYTES,
    )
    assert audio["sequenceNumber"]["maximum"] == audio["timestamp"]["maximum"] == limits.MAX_AUDIO_SEQUENCE_NUMBER
    assert audio["chunkId"]["maxLength"] == limits.MAX_FIELD_LENGTH
    # The audio format a chunk may spell out is the one the service takes, for sendAudio and audioChunk alike
    for action in (routes.SEND_AUDIO, routes.AUDIO_CHUNK):
        spelt_out = CLIENT_MESSAGES[action]["properties"]
        assert [resolve(spelt_out[name])["const"] for name in ("format", "sampleRate", "channels", "encoding")] == [
            limits.AUDIO_FORMAT,
            limits.SAMPLE_RATE_HZ,
            limits.AUDIO_CHANNELS,
            limits.AUDIO_ENCODING,
        ]
        assert "sequenceNumber" not in CLIENT_MESSAGES[action]["required"]
    assert schemas["Token"]["maxLength"] == limits.MAX_TOKEN_LENGTH
    assert schemas["SessionId"]["pattern"] == validation.SESSION_ID_PATTERN.pattern
    assert schemas["Output"]["enum"] == list(wire.OUTPUTS)
    assert schemas["Output"]["default"] == wire.DEFAULT_OUTPUT
    assert schemas["QualityTier"]["enum"] == list(limits.QUALITY_TIERS)
    assert schemas["QualityTier"]["default"] == limits.DEFAULT_QUALITY_TIER
    assert schemas["Role"]["enum"] == list(validation.ROLES)
    assert schemas["EndReason"]["enum"] == [wire.ENDED_BY_SPEAKER, wire.SPEAKER_TIMEOUT, wire.EXPIRED]
    assert schemas["StatusUpdateReason"]["enum"] == list(wire.STATUS_UPDATE_REASONS)
    assert schemas["AudioDropReason"]["enum"] == [
        wire.AUDIO_PAUSED,
        wire.AUDIO_MUTED,
        wire.AUDIO_VOLUME_ZERO,
        wire.AUDIO_DUPLICATE,
    ]


def test_each_reply_is_the_one_the_protocol_page_names_or_an_error() -> None:
    replies = {row["action"].strip("`"): row["reply"] for row in _table_after("## Messages")}
    for route in routes.MESSAGE_ROUTES:
        reply_types = {
            resolve(message)["payload"]["properties"]["type"]["const"]
            for message in DOCUMENT["operations"][route]["reply"]["messages"]
        }
        assert "error" in reply_types
        assert all(f"`{kind}`" in replies[route] for kind in reply_types - {"error"}), route


def test_client_fields_are_the_request_names_the_code_reads() -> None:
    named = {value for name, value in vars(validation).items() if name.isupper() and isinstance(value, str)}
    known = named | set(partial_result_fields.REQUEST_NAMES) | {limits.TOKEN_FIELD, "action"}
    queries = [channel["bindings"]["ws"]["query"] for channel in DOCUMENT["channels"].values() if "bindings" in channel]
    for schema in [*CLIENT_MESSAGES.values(), *queries]:
        assert set(schema["properties"]) <= known
        assert set(schema["required"]) <= set(schema["properties"])
    state = CLIENT_MESSAGES[routes.SPEAKER_STATE_CHANGE]["properties"][wire.STATE]["properties"]
    assert tuple(state) == broadcast.NAMES
