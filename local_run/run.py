"""The local run as one object: synthesize the app, start DynamoDB Local, create the template's tables, start the
S3-API server with the template's buckets, and start the gateway. ``make local`` and the integration tests both use
it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lambda_src.adapters import speech, translation
from lambda_src.adapters.transcription import recognizers
from lambda_src.adapters.translation import apertium
from local_run import assembly as cloud_assembly
from local_run.apertium import ApertiumServer
from local_run.console import Console
from local_run.dynamodb_local import PROJECT_ROOT, DynamoDBLocal, endpoint_environment, free_port
from local_run.gateway import LocalGateway, console_origins
from local_run.gateway_limits import GatewayLimits
from local_run.s3_server import S3Server
from local_run.s3_server import endpoint_environment as s3_environment

STATE_DIR = PROJECT_ROOT / ".local"
# What the local run swaps in for the cloud services, by the variable each function reads. Translation is Apertium
# (its server's URL is added when it has started), with the marked stand-in for the pairs it lacks; speech is
# espeak-ng's, encoded by LAME.
STAND_INS: dict[str, str] = {
    recognizers.ENV_RECOGNIZER: recognizers.LOCAL,
    translation.ENV_TRANSLATOR: translation.APERTIUM,
    speech.ENV_SYNTHESIZER: speech.ESPEAK,
}
RECOGNIZER_NOTE = (
    "speech recognition: pocketsphinx (US English, offline), standing in for Amazon Transcribe streaming; other "
    "source languages are refused with INVALID_PARAMETERS"
)
SYNTHESIZER_NOTE = (
    "speech synthesis: espeak-ng (offline, robotic), MP3 by LAME, standing in for Amazon Polly; listeners of a "
    "language without an espeak-ng voice get captions only"
)
ISSUER_FILE = STATE_DIR / "dev-issuer" / "issuers.json"


def synthesize(outdir: Path, context: dict[str, Any]) -> None:
    """``python app.py`` into ``outdir`` without bundling (the local run uses this machine's packages)."""
    env = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({**context, "aws:cdk:bundling-stacks": []}),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    subprocess.run([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


class LocalRun:
    """DynamoDB Local + the gateway over one synthesized environment. ``async with LocalRun(...)``."""

    def __init__(
        self,
        *,
        port: int | None = None,
        http_port: int | None = None,
        context: dict[str, Any] | None = None,
        data_dir: Path | None = None,
        cdk_out: Path | None = None,
        schedule_interval: float | None = None,
        function_env: dict[str, str] | None = None,
        time_scale: float = 1.0,
        post_rate: float | None = None,
    ) -> None:
        """``schedule_interval``: run every scheduled rule every this many seconds (None: at the rules' rates).
        ``function_env``: variables given to every function over the stand-ins (``STAND_INS``), e.g. the bench's
        ``TRANSCRIPTION_RECOGNIZER=scripted``; the template's own variables still win. ``time_scale``: how many
        times faster than API Gateway's the connections' clocks run (``GATEWAY_TIME_SCALE``: the gateway's idle
        timeout and lifetime, and the functions' refresh notice and warnings); ``post_rate``: ``@connections``
        requests a second before the gateway answers 429 (``GATEWAY_POST_RATE``; None: unlimited)."""
        self.port = port or free_port()
        self.http_port = http_port or free_port()
        self.context = {"env": "dev", **(context or {})}
        self.cdk_out = cdk_out or STATE_DIR / "cdk.out"
        self.schedule_interval = schedule_interval
        self.limits = GatewayLimits(time_scale, post_rate)
        self.function_env = {**STAND_INS, **self.limits.function_environment(), **(function_env or {})}
        self.database = DynamoDBLocal(data_dir=data_dir)
        # Apertium's server, when the functions translate with it (the bench's runs may ask for the stand-in alone).
        self.translator = (
            ApertiumServer() if self.function_env.get(translation.ENV_TRANSLATOR) == translation.APERTIUM else None
        )
        # Amazon S3's stand-in, started when the template has buckets (the listeners' spoken translations).
        self.storage = S3Server()
        self.gateway: LocalGateway | None = None
        self.assembly: cloud_assembly.Assembly | None = None
        self.issuers: dict[str, Any] = {}
        self.console: Console | None = None

    async def start(self, synth: bool = True, progress: Callable[[str], object] | None = None) -> LocalRun:
        """Start everything; ``progress`` (``make local`` passes ``print``) is told each phase as it begins."""
        tell = progress or (lambda line: None)
        if synth:
            tell(f"synthesizing the app (env {self.context['env']}) into {self.cdk_out}")
            synthesize(self.cdk_out, self.context)
        addresses = cloud_assembly.LocalAddresses(self.port, self.http_port)
        self.assembly = cloud_assembly.load(self.cdk_out, addresses)
        tell("starting DynamoDB Local")
        self.database.start()
        try:
            tell(f"creating {len(self.assembly.tables)} tables in DynamoDB Local ({self.database.endpoint})")
            self.database.create_tables(list(self.assembly.tables.values()))
            translator_env = {}
            if self.translator is not None:
                tell("starting Apertium's translation server (the local translator)")
                self.translator.start()
                translator_env = {apertium.ENV_URL: self.translator.url}
            storage_env = {}
            if self.assembly.buckets:
                tell(f"starting the S3-API server (moto) with {len(self.assembly.buckets)} bucket(s)")
                self.storage.start()
                # The template's CORS rules, and the console's own origin (its pages are served by the run).
                self.storage.create_buckets(self.assembly.buckets.values(), console_origins(self.http_port))
                storage_env = s3_environment(self.storage.endpoint)
            self.issuers = self._dev_issuers()
            self._write_issuer_file()
            self.gateway = LocalGateway(
                self.assembly,
                websocket_port=self.port,
                http_port=self.http_port,
                base_env={
                    **endpoint_environment(self.database.endpoint),
                    # Lambda's Invoke API is served by the gateway's HTTP server (a function starting another).
                    "AWS_ENDPOINT_URL_LAMBDA": addresses.http_base,
                    **translator_env,
                    **storage_env,
                    **self.function_env,
                },
                streams_client_factory=lambda: (self.database.client("dynamodbstreams"), self.database.client()),
                jwks=lambda pool: self.issuers[pool].jwks() if pool in self.issuers else None,
                console=lambda method, path, body: self.console.respond(method, path, body) if self.console else None,
                schedule_interval=self.schedule_interval,
                limits=self.limits,
            )
            self.console = Console(
                websocket_url=self.gateway.url,
                http_url=f"http://127.0.0.1:{self.http_port}",
                mint_token=lambda expires_in: self.mint_token(expires_in=expires_in),
                http_api_url=self.gateway.http_api_url,
            )
            tell(f"starting {len(self.gateway.runtimes)} function workers, then the gateway on port {self.port}")
            await self.gateway.start()
            tell(f"serving the console and @connections on http://127.0.0.1:{self.http_port}")
        except BaseException:
            await self.stop()
            raise
        return self

    def _dev_issuers(self) -> dict[str, Any]:
        """One dev issuer per user pool in the template, keyed by the pool's local id."""
        from local_run.dev_issuer import DevIssuer

        assert self.assembly is not None
        return {
            pool: DevIssuer(STATE_DIR / "dev-issuer", f"http://127.0.0.1:{self.http_port}/{pool}", client_id)
            for pool, client_id in self.assembly.user_pools_with_clients().items()
        }

    def _write_issuer_file(self) -> None:
        """Where ``make token`` learns which issuer and client the running local service trusts."""
        ISSUER_FILE.parent.mkdir(parents=True, exist_ok=True)
        ISSUER_FILE.write_text(
            json.dumps([{"issuer": issuer.issuer, "clientId": issuer.client_id} for issuer in self.issuers.values()])
        )

    def mint_token(self, user_id: str = "local-speaker", expires_in: int = 3600, **claims: Any) -> str:
        """A speaker token from the first user pool's dev issuer (what a Cognito sign-in returns)."""
        return next(iter(self.issuers.values())).mint(user_id, expires_in, **claims)

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
            self.gateway = None
        if self.translator is not None:
            self.translator.stop()
        self.storage.stop()
        self.database.stop()

    def stand_in_notes(self) -> list[str]:
        """What ``make local`` says at start-up about the engines standing in for the cloud's: the recognizer, which
        language pairs Apertium's running server translates (the others get the marked stand-in), the synthesizer
        and the S3-API server."""
        if self.translator is not None:
            translation_note = self.translator.note
        else:
            translation_note = (
                "translation: a stand-in for Amazon Translate that marks the source text with the target language "
                "('[es] Good morning') for every pair"
            )
        notes = [RECOGNIZER_NOTE, translation_note]
        if self.function_env.get(speech.ENV_SYNTHESIZER) == speech.ESPEAK:
            notes.append(SYNTHESIZER_NOTE)
        if self.assembly is not None and self.assembly.buckets:
            notes.append(self.storage.note)
        return notes

    async def __aenter__(self) -> LocalRun:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    @property
    def http_api_url(self) -> str | None:
        """The HTTP API's base URL (on the WebSocket API's port), None when the stack has none."""
        assert self.gateway is not None
        return self.gateway.http_api_url

    @property
    def console_url(self) -> str:
        """The web console's index (speaker and listener pages), served beside ``@connections``."""
        assert self.console is not None
        return self.console.url

    def table_name(self, prefix: str) -> str:
        """The local name of the table whose logical id starts with ``prefix`` (e.g. ``TablesSessions``)."""
        assert self.assembly is not None
        (name,) = [t.name for lid, t in self.assembly.tables.items() if lid.startswith(prefix)]
        return name
