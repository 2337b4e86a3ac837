"""The service through the local gateway, on DynamoDB Local, with a real WebSocket client over loopback."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from botocore.exceptions import ClientError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.integration.conftest import LISTENER_CAP, RunningService

pytestmark = pytest.mark.integration

SEED_QUERY = (
    "action=createSession&sourceLanguage=en&qualityTier=standard&partialResults=true&minStability=0.85"
    "&maxBufferTimeout=5.0"
)
SEED_KEYS = [
    "type",
    "sessionId",
    "sourceLanguage",
    "qualityTier",
    "partialResultsEnabled",
    "minStabilityThreshold",
    "maxBufferTimeout",
    "expiresAt",
    "connectionId",
    "timestamp",
]


def first_message(ws) -> dict:
    return json.loads(ws.recv(timeout=10))


def refused_status(url: str) -> tuple[int, dict]:
    with pytest.raises(InvalidStatus) as refused, connect(url, open_timeout=10):
        pass
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"{}")


def create_session(service: RunningService, query: str = SEED_QUERY):
    ws = connect(f"{service.url}?{query}&token={service.token()}", open_timeout=10, legacy=True)
    return ws, first_message(ws)


def test_seed_url_first_message_is_session_created_and_item_matches_contract(service: RunningService) -> None:
    # Given a speaker token from the local dev issuer
    token = service.token(user_id="speaker-1")
    # When the seed's exact URL connects, and the client sends nothing
    with connect(f"{service.url}?{SEED_QUERY}&token={token}", open_timeout=10) as ws:
        created = first_message(ws)
    # Then the first message is sessionCreated in the seed's exact shape
    assert list(created) == SEED_KEYS
    assert created["type"] == "sessionCreated"
    assert (created["sourceLanguage"], created["qualityTier"]) == ("en", "standard")
    assert created["partialResultsEnabled"] is True
    assert created["minStabilityThreshold"] == 0.85 and created["maxBufferTimeout"] == 5.0
    # And the item in DynamoDB Local is the contract's schema, numbers without float noise
    item = service.session(created["sessionId"])
    assert item is not None
    assert item["minStabilityThreshold"] == {"N": "0.85"}
    assert Decimal(item["maxBufferTimeout"]["N"]) == Decimal("5.0")
    assert item["partialResultsEnabled"] == {"BOOL": True}
    assert item["speakerUserId"] == {"S": "speaker-1"}
    assert item["speakerConnectionId"] == {"S": created["connectionId"]}
    expires_at = int(item["expiresAt"]["N"])
    assert abs(expires_at - (time.time() + 3 * 3600)) < 120  # epoch seconds, three hours out
    assert int(item["createdAt"]["N"]) == created["timestamp"]


@pytest.mark.parametrize(
    "override",
    [
        {"minStability": "0.99"},
        {"minStability": "0.69"},
        {"maxBufferTimeout": "10.5"},
        {"maxBufferTimeout": "NaN"},
        {"partialResults": "yes"},
        {"minStability": ""},
    ],
)
def test_invalid_configuration_refuses_handshake_with_400_and_writes_nothing(
    service: RunningService, override: dict[str, str]
) -> None:
    # Given the seed parameters with one partial-result parameter made invalid
    params = dict(p.split("=", 1) for p in SEED_QUERY.split("&")) | override | {"token": service.token()}
    before = len(service.sessions())
    # When it connects
    status, body = refused_status(f"{service.url}?{urlencode(params)}")
    # Then the handshake is refused with 400 naming the field, and nothing is written
    assert status == 400
    assert body["code"] == "INVALID_CONFIGURATION"
    assert body["field"] == next(iter(override))
    assert len(service.sessions()) == before


@pytest.mark.parametrize("token_kind", ["none", "forged", "expired", "wrong-audience"])
def test_create_session_without_a_valid_token_is_401_and_writes_nothing(
    service: RunningService, token_kind: str
) -> None:
    # Given no token, a token signed by another key, an expired token, or one for another client
    tokens = {
        "none": None,
        "forged": _forged_token(service),
        "expired": service.token(expires_in=-3600),
        "wrong-audience": service.token(aud="someone-else"),
    }
    token = tokens[token_kind]
    before = len(service.sessions())
    url = f"{service.url}?{SEED_QUERY}" + (f"&token={token}" if token else "")
    # When it tries to create a session
    status, _ = refused_status(url)
    # Then it is refused with 401 and nothing is written
    assert status == 401
    assert len(service.sessions()) == before


def _forged_token(service: RunningService) -> str:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    genuine = service.token()
    claims = jwt.decode(genuine, options={"verify_signature": False})
    header = jwt.get_unverified_header(genuine)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": header["kid"]})


def test_listener_joins_by_query_string_and_first_receives_session_joined(service: RunningService) -> None:
    # Given a live session
    speaker, created = create_session(service)
    with speaker:
        session_id = created["sessionId"]

        def listener_count() -> dict[str, str]:
            """The session's stored ``listenerCount`` attribute (``{"N": "1"}``)."""
            item = service.session(session_id)
            assert item is not None
            return item["listenerCount"]

        # When a listener joins anonymously by query string
        with connect(
            f"{service.url}?action=joinSession&sessionId={session_id}&targetLanguage=es", open_timeout=10
        ) as ws:
            joined = first_message(ws)
            # Then its first message is sessionJoined and the count moved by one
            assert joined["type"] == "sessionJoined"
            assert (joined["sessionId"], joined["sourceLanguage"], joined["targetLanguage"]) == (session_id, "en", "es")
            assert listener_count() == {"N": "1"}
        # And leaving (the socket closes) counts the listener out again
        deadline = time.monotonic() + 10
        while listener_count() != {"N": "0"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listener_count() == {"N": "0"}


def test_join_beyond_the_cap_is_refused_with_503(service: RunningService) -> None:
    # Given a session already holding the configured number of listeners
    speaker, created = create_session(service)
    url = f"{service.url}?action=joinSession&sessionId={created['sessionId']}&targetLanguage=fr"
    listeners = [connect(url, open_timeout=10, legacy=True) for _ in range(LISTENER_CAP)]
    try:
        # When one more listener joins
        status, body = refused_status(url)
        # Then it is refused as SESSION_FULL and the count stays at the cap
        assert (status, body["code"]) == (503, "SESSION_FULL")
        item = service.session(created["sessionId"])
        assert item is not None and item["listenerCount"] == {"N": str(LISTENER_CAP)}
    finally:
        for ws in listeners:
            ws.close()
        speaker.close()


def test_unknown_session_is_404(service: RunningService) -> None:
    status, body = refused_status(f"{service.url}?action=joinSession&sessionId=quiet-otter-123&targetLanguage=es")
    assert (status, body["code"]) == (404, "SESSION_NOT_FOUND")


def test_messages_get_route_responses(service: RunningService) -> None:
    # Given a plain connection
    with connect(service.url, open_timeout=10) as ws:
        # When it sends a heartbeat, a non-JSON frame and an unknown action
        ws.send(json.dumps({"action": "heartbeat"}))
        ack = json.loads(ws.recv(timeout=10))
        ws.send("not json")
        invalid = json.loads(ws.recv(timeout=10))
        ws.send(json.dumps({"action": "dance"}))
        unknown = json.loads(ws.recv(timeout=10))
    # Then each gets its reply on the same connection
    assert ack["type"] == "heartbeatAck"
    assert (invalid["type"], invalid["code"]) == ("error", "INVALID_MESSAGE")
    assert unknown["code"] == "UNKNOWN_ACTION"


def test_create_session_message_on_an_authenticated_connection(service: RunningService) -> None:
    # Given a connection opened with a speaker token but no action
    with connect(f"{service.url}?token={service.token()}", open_timeout=10) as ws:
        # When it sends createSession as a JSON message with numbers
        ws.send(
            json.dumps(
                {
                    "action": "createSession",
                    "sourceLanguage": "de",
                    "partialResults": False,
                    "minStability": 0.7,
                    "maxBufferTimeout": 10,
                }
            )
        )
        created = json.loads(ws.recv(timeout=10))
    # Then the reply is sessionCreated with the requested configuration, stored exactly
    assert list(created) == SEED_KEYS
    assert (created["partialResultsEnabled"], created["minStabilityThreshold"], created["maxBufferTimeout"]) == (
        False,
        0.7,
        10.0,
    )
    item = service.session(created["sessionId"])
    assert item is not None
    assert item["minStabilityThreshold"] == {"N": "0.7"}


def connections_api_client(service: RunningService) -> Any:
    """boto3's own management API client, pointed at the local gateway's @connections API."""
    assert service.run.assembly is not None
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=f"http://127.0.0.1:{service.run.http_port}/{service.run.assembly.stage}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_connections_api_answers_410_for_unknown_connection(service: RunningService) -> None:
    # Given boto3's own management API client pointed at the local gateway
    client = connections_api_client(service)
    # When it posts to a connection that does not exist
    with pytest.raises(ClientError) as gone:
        client.post_to_connection(ConnectionId="bm9uZQ==", Data=b"{}")
    # Then the error is GoneException, as in the cloud
    assert gone.value.response["Error"]["Code"] == "GoneException"


def test_connections_api_get_answers_for_an_open_connection_and_410_once_it_closed(service: RunningService) -> None:
    # (The sweeper asks about listeners with GET @connections/{id} to find those whose $disconnect was lost.)
    client = connections_api_client(service)
    speaker, created = create_session(service)
    with speaker:
        # Given an open listener connection
        with connect(
            f"{service.url}?action=joinSession&sessionId={created['sessionId']}&targetLanguage=es", open_timeout=10
        ) as ws:
            connection_id = first_message(ws)["connectionId"]
            # Then GET answers for it
            assert "ConnectedAt" in client.get_connection(ConnectionId=connection_id)
        # And once it closed (the gateway sees the close a moment after the client sent it), GET answers 410
        # GoneException, as in the cloud
        deadline = time.monotonic() + 5
        while True:
            try:
                client.get_connection(ConnectionId=connection_id)
            except ClientError as gone:
                assert gone.response["Error"]["Code"] == "GoneException"
                break
            assert time.monotonic() < deadline, "GET still answers for a closed connection"
            time.sleep(0.05)
