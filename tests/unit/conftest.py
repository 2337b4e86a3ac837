"""Fixtures of the unit suite: fake AWS credentials and the environment the stack sets, and moto-backed
tables created exactly like the stack creates them."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from lambda_src import runtime
from lambda_src.adapters import connections_api
from lambda_src.contract import function_settings, schema
from tests.support.fakes import CALLBACK_URL, FakeAudioStore, FakeConnectionsApi, FakeSynthesizer
from tests.support.helpers import (
    AUDIO_CHUNKS_TABLE,
    CONNECTIONS_TABLE,
    RATE_LIMITS_TABLE,
    REGION,
    SESSIONS_TABLE,
    TRANSCRIPTS_TABLE,
    Tables,
)


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every unit test runs with fake credentials, a fixed region and the table names the stack would set."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("SESSIONS_TABLE", SESSIONS_TABLE)
    monkeypatch.setenv("CONNECTIONS_TABLE", CONNECTIONS_TABLE)
    monkeypatch.setenv("RATE_LIMITS_TABLE", RATE_LIMITS_TABLE)
    monkeypatch.setenv(function_settings.ENV_AUDIO_CHUNKS_TABLE, AUDIO_CHUNKS_TABLE)
    monkeypatch.setenv(function_settings.ENV_TRANSCRIPTS_TABLE, TRANSCRIPTS_TABLE)
    for name in (
        function_settings.ENV_CALLBACK_URL,
        function_settings.ENV_CONNECTION_TIME_SCALE,
        *(setting.env_var for setting in function_settings.FUNCTION_SETTINGS),
    ):
        monkeypatch.delenv(name, raising=False)
    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture
def tables() -> Iterator[Tables]:
    """Every table created inside moto from the same definitions the stack deploys."""
    # One boto3 session for the whole run (moto would otherwise drop it at each start, and every client
    # would reload the service models: ~0.3 s per test). Data is still wiped at every start and stop.
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        runtime.reset()
        client = boto3.client("dynamodb", region_name=REGION)
        names = {
            schema.SESSIONS: SESSIONS_TABLE,
            schema.CONNECTIONS: CONNECTIONS_TABLE,
            schema.RATE_LIMITS: RATE_LIMITS_TABLE,
            schema.AUDIO_CHUNKS: AUDIO_CHUNKS_TABLE,
            schema.TRANSCRIPTS: TRANSCRIPTS_TABLE,
        }
        for definition, name in names.items():
            client.create_table(**definition.create_table_request(name))
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": definition.ttl_attribute},
            )
        try:
            yield Tables(client)
        finally:
            runtime.reset()


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> FakeConnectionsApi:
    """API Gateway's ``@connections`` API replaced by a recorder (posts and closes; chosen ids answer 410, or fail).
    A throttled request (``failing``) is given up at once rather than retried for seconds of real time (the
    retries have their own tests: ``test_connections_api.py``)."""
    monkeypatch.setenv("CALLBACK_URL", CALLBACK_URL)
    runtime.reset()
    connections_api.client.cache_clear()
    fake = FakeConnectionsApi()
    monkeypatch.setattr(connections_api, "client", lambda: fake)
    monkeypatch.setattr(connections_api, "THROTTLE_RETRY_SECONDS", 0.0)
    return fake


@dataclass
class Speech:
    """The fakes standing in for ``runtime.synthesizer()`` and ``runtime.audio_store()``."""

    synthesizer: FakeSynthesizer
    store: FakeAudioStore


@pytest.fixture
def speech(monkeypatch: pytest.MonkeyPatch) -> Speech:
    """A synthesizer that speaks every language and an audio store, both in memory (the adapters are another
    module's; the delivery of speech only sees the interfaces). Replace ``speech.synthesizer.voices`` or
    ``.failing`` to narrow what it speaks."""
    fakes = Speech(FakeSynthesizer(), FakeAudioStore())
    # Cached like the functions they replace: runtime.reset clears every accessor it names.
    monkeypatch.setattr(runtime, "synthesizer", functools.cache(lambda: fakes.synthesizer))
    monkeypatch.setattr(runtime, "audio_store", functools.cache(lambda: fakes.store))
    return fakes
