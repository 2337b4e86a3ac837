"""The local run reads the synthesized template: what it cannot emulate (failure queues and their policies,
the sweeper's asynchronous invocation settings, KMS keys, reserved concurrency, alarms) is left out quietly,
and what it runs (functions, tables, the stream trigger, the schedule) is read as before."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator

from lambda_src.contract import limits
from local_run import assembly as cloud_assembly
from tests.infrastructure.template_support import (
    ALL_MODULES,
    EVENT_INVOKE_CONFIG_TYPE,
    KEY_TYPE,
    QUEUE_TYPE,
    Synthesized,
    synthesize,
)


@pytest.fixture(scope="module")
def prod_with_everything() -> Synthesized:
    """prod: customer managed keys, failure queues, the sweeper's invoke settings, reserved concurrency."""
    return synthesize({"env": "prod"})


def test_local_run_reads_a_template_with_resources_it_cannot_emulate(
    prod_with_everything: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given prod's cloud assembly, which holds keys, queues and an event invoke config
    synthesized = prod_with_everything
    assert synthesized.resources(KEY_TYPE) and synthesized.resources(QUEUE_TYPE)
    assert synthesized.resources(EVENT_INVOKE_CONFIG_TYPE)
    directory = Path(synthesized.app.synth().directory)

    # When the local run loads it
    loaded = cloud_assembly.load(directory, cloud_assembly.LocalAddresses(8080, 8081), synthesized.stack.stack_name)

    # Then it runs the seven functions, creates the five tables (the Transcripts table among them), feeds the
    # welcome and status functions from the stream (the status function's batches gathered over its window) and
    # runs the sweeper on its schedule, and says nothing about the rest
    assert {function.handler.split(".")[-2] for function in loaded.functions.values()} == ALL_MODULES
    assert len(loaded.tables) == 5
    assert synthesized.transcripts_table_id in loaded.tables
    windows = {loaded.functions[t.function].handler.split(".")[-2]: t.batching_window_seconds for t in loaded.triggers}
    assert windows == {"welcome": 0, "status": limits.STATUS_BATCH_WINDOW_SECONDS}
    (schedule,) = loaded.schedules
    assert loaded.functions[schedule.function].handler.endswith(".sweeper.handler")
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    # And no function's environment names a queue or a key (nothing there points at AWS)
    for function in loaded.functions.values():
        for value in function.environment.values():
            assert "sqs" not in value and "kms" not in value, (function.name, value)


def test_local_run_reads_the_audio_bucket_and_its_cors_rules_as_s3_takes_them(synthesized_environment) -> None:
    # Given dev's cloud assembly (its audio bucket admits the loopback origins)
    synthesized = synthesized_environment("dev")
    directory = Path(synthesized.app.synth().directory)

    # When the local run loads it
    loaded = cloud_assembly.load(directory, cloud_assembly.LocalAddresses(8080, 8081), synthesized.stack.stack_name)

    # Then it has the one bucket, under a name S3 accepts, which the transcriber is told
    ((logical_id, bucket),) = loaded.buckets.items()
    assert bucket.name == bucket.name.lower() and len(bucket.name) <= 63
    (transcriber,) = [f for f in loaded.functions.values() if f.handler.endswith(".transcriber.handler")]
    assert transcriber.environment["AUDIO_BUCKET"] == bucket.name
    # And its CORS rules are the template's, in the spelling S3's PutBucketCors validates
    (rule,) = bucket.cors_rules
    assert rule["AllowedOrigins"] == list(synthesized.config.audio_cors_origins)
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD"]
    model = botocore.session.get_session().get_service_model("s3").operation_model("PutBucketCors")
    assert model.input_shape is not None
    report = ParamValidator().validate(
        {"Bucket": bucket.name, "CORSConfiguration": {"CORSRules": bucket.cors_rules}}, model.input_shape
    )
    assert not report.has_errors(), report.generate_report()
