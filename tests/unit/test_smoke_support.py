"""What ``make smoke`` and ``make local`` do around the service: the smoke's speaker token (given, from
``$SESSION_TOKEN``, or minted by the local run's dev issuer), and ``make local``'s line per start-up phase."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest

from local_run import dev_issuer, run
from local_run import token as local_token
from session_client import smoke


def _issuer_file(tmp_path: Path) -> tuple[Path, dev_issuer.DevIssuer]:
    """An issuer file as a local run writes it, beside its dev issuer's key."""
    issuer = dev_issuer.DevIssuer(tmp_path, "http://127.0.0.1:9/pool", "local-client")
    issuer_file = tmp_path / "issuers.json"
    issuer_file.write_text(json.dumps([{"issuer": issuer.issuer, "clientId": issuer.client_id}]))
    return issuer_file, issuer


def test_a_given_token_is_used_before_the_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_TOKEN", "from-environment")
    assert smoke.token_for("wss://abc.execute-api.eu-west-1.amazonaws.com/prod", "given") == "given"
    assert smoke.token_for("wss://abc.execute-api.eu-west-1.amazonaws.com/prod", None) == "from-environment"


def test_a_deployments_url_without_a_token_fails_at_the_token_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSION_TOKEN", raising=False)
    with pytest.raises(smoke.StepFailed) as failed:
        smoke.token_for("wss://abc.execute-api.eu-west-1.amazonaws.com/prod", None)
    assert failed.value.step == "token"
    assert "TOKEN=" in failed.value.reason and "SESSION_TOKEN" in failed.value.reason


def test_a_local_runs_url_without_a_token_gets_one_from_its_dev_issuer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a local run's issuer file and no token anywhere
    issuer_file, issuer = _issuer_file(tmp_path)
    monkeypatch.setattr(local_token, "ISSUER_FILE", issuer_file)
    monkeypatch.delenv("SESSION_TOKEN", raising=False)

    # When the smoke needs a token for a loopback URL
    token = smoke.token_for("ws://127.0.0.1:8080/dev", None)

    # Then it is a speaker ID token of that issuer and client, signed with its key
    claims = jwt.decode(
        token, issuer.private_key.public_key(), algorithms=[dev_issuer.ALGORITHM], audience="local-client"
    )
    assert (claims["iss"], claims["token_use"], claims["sub"]) == (issuer.issuer, "id", smoke.LOCAL_SPEAKER)


def test_a_local_url_with_no_local_run_started_fails_at_the_token_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(local_token, "ISSUER_FILE", tmp_path / "none.json")
    monkeypatch.delenv("SESSION_TOKEN", raising=False)
    with pytest.raises(smoke.StepFailed) as failed:
        smoke.token_for("ws://localhost:8080/dev", None)
    assert failed.value.step == "token"
    assert "make local" in failed.value.reason


class _Database:
    endpoint = "http://127.0.0.1:1"

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def start(self) -> None:
        self.calls.append("database started")

    def create_tables(self, tables: list[Any]) -> None:
        self.calls.append(f"{len(tables)} tables created")

    def stop(self) -> None:
        self.calls.append("database stopped")


class _Translator:
    url = "http://127.0.0.1:4"

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def start(self) -> None:
        self.calls.append("translator started")

    def stop(self) -> None:
        self.calls.append("translator stopped")


class _Storage:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.endpoint = "http://127.0.0.1:4"

    def start(self) -> None:
        self.calls.append("storage started")

    def create_buckets(self, buckets: Any, extra_origins: Any) -> None:
        self.calls.append(f"{len(list(buckets))} bucket created")

    def stop(self) -> None:
        self.calls.append("storage stopped")


class _Gateway:
    def __init__(self, calls: list[str], *args: Any, **kwargs: Any) -> None:
        self.calls = calls
        self.runtimes = {"a": object(), "b": object()}
        self.url = "ws://127.0.0.1:2/dev"
        self.http_api_url = "http://127.0.0.1:2/dev"

    async def start(self) -> None:
        self.calls.append("gateway started")

    async def stop(self) -> None:
        self.calls.append("gateway stopped")


def _started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, progress: Any) -> list[str]:
    """``LocalRun.start`` with its engines replaced by recorders: what it did, in order, with the progress lines."""
    calls: list[str] = []
    monkeypatch.setattr(run, "synthesize", lambda outdir, context: calls.append("synthesized"))
    assembly = SimpleNamespace(
        tables={"T1": object(), "T2": object(), "T3": object()}, buckets={"B1": object()}, user_pools_with_clients=dict
    )
    monkeypatch.setattr(run.cloud_assembly, "load", lambda cdk_out, addresses: assembly)
    monkeypatch.setattr(run, "LocalGateway", lambda *args, **kwargs: _Gateway(calls, *args, **kwargs))
    monkeypatch.setattr(run, "ISSUER_FILE", tmp_path / "issuers.json")
    local = run.LocalRun(port=2, http_port=3, cdk_out=tmp_path / "cdk.out")
    local.database = _Database(calls)  # type: ignore[assignment]
    local.translator = _Translator(calls)  # type: ignore[assignment]
    local.storage = _Storage(calls)  # type: ignore[assignment]

    def told(line: str) -> None:
        calls.append(f"progress: {line}")

    asyncio.run(local.start(progress=told if progress else None))
    return calls


def test_make_local_says_each_start_up_phase_before_it_begins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _started(monkeypatch, tmp_path, progress=True)
    phases = [call for call in calls if call.startswith("progress: ")]
    assert len(phases) == 7
    assert calls == [
        phases[0],
        "synthesized",
        phases[1],
        "database started",
        phases[2],
        "3 tables created",
        phases[3],
        "translator started",
        phases[4],
        "storage started",
        "1 bucket created",
        phases[5],
        "gateway started",
        phases[6],
    ]
    assert "synthesizing" in phases[0] and "DynamoDB Local" in phases[1] and "3 tables" in phases[2]
    assert "Apertium" in phases[3]
    assert "S3-API server" in phases[4] and "1 bucket" in phases[4]
    assert "2 function workers" in phases[5] and "console" in phases[6] and "127.0.0.1:3" in phases[6]


def test_a_run_started_without_progress_prints_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _started(monkeypatch, tmp_path, progress=False)
    assert calls == [
        "synthesized",
        "database started",
        "3 tables created",
        "translator started",
        "storage started",
        "1 bucket created",
        "gateway started",
    ]
    assert capsys.readouterr() == ("", "")
