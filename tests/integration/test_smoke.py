"""``make smoke`` against the local run: the smoke function (``session_client.smoke``) drives the ``service`` fixture's
run from the session's creation to the listener hearing its end, and names the step that fails."""

from __future__ import annotations

import asyncio
import io

import pytest

from lambda_src.model import session
from session_client import smoke
from tests.integration.conftest import RunningService, apertium_cli

pytestmark = pytest.mark.integration

STEPS = ["speech", "create", "join", "audio", "transcript", "caption", "end", "sessionEnded"]


def test_the_smoke_passes_every_step_against_the_local_run(service: RunningService) -> None:
    # Given the local run and a speaker token of its dev issuer
    out = io.StringIO()

    # When the smoke runs against it
    result = asyncio.run(smoke.smoke(service.url, service.token(user_id="smoke-speaker"), out=out))

    # Then every step passed, in order, and each is printed with its time
    assert result.steps == STEPS
    printed = out.getvalue().splitlines()
    for step in STEPS:
        assert any(f"] {step} " in line and " ok (" in line for line in printed), (step, printed)
    # And the listener's final Spanish caption is of the segment the speaker has a final transcript of, translated
    # by Apertium (the local run has its English-Spanish pair), not marked by the stand-in; the output names the
    # local run's engines
    assert result.caption.segment_id == result.transcript.segment_id
    assert (result.caption.session_id, result.transcript.session_id) == (result.session_id, result.session_id)
    assert (result.caption.target_language, result.caption.is_partial, result.transcript.is_partial) == (
        "es",
        False,
        False,
    )
    assert result.caption.text == apertium_cli(result.transcript.text, "eng-spa")
    assert not result.stand_in
    assert any("local run" in line and "pocketsphinx" in line and "Apertium" in line for line in printed), printed
    assert not any("stand-in translator's mark (" in line for line in printed), printed
    # And the listener heard the end, which the session's row records
    assert result.ended.reason == "endedBySpeaker"
    row = service.session(result.session_id)
    assert row is not None and row[session.END_REASON_ATTRIBUTE] == {"S": "endedBySpeaker"}, row


def test_the_smoke_names_the_step_that_failed_and_exits_non_zero(service: RunningService) -> None:
    # Given a token the local run's issuer did not sign
    out, err = io.StringIO(), io.StringIO()

    # When the smoke runs with it
    status = smoke.main([service.url, "--token", "not-a-token", "--timeout", "10"], out=out, err=err)

    # Then it stops at the session's creation, says so, and exits 1
    assert status == 1
    assert err.getvalue().startswith("smoke FAILED at step create: HandshakeRefused"), err.getvalue()
    assert "401" in err.getvalue()
    assert "] join " not in out.getvalue()


def test_a_step_that_waits_past_its_timeout_fails_naming_it(service: RunningService) -> None:
    # Given a session whose speaker says nothing the recognizer can hear (silence only), and a short step timeout
    async def scenario() -> smoke.StepFailed:
        with pytest.raises(smoke.StepFailed) as failed:
            await smoke.smoke(
                service.url, service.token(user_id="silent-smoke-speaker"), out=io.StringIO(), step_timeout=8, text=" "
            )
        return failed.value

    # Then the smoke gives up at the transcript step
    failure = asyncio.run(scenario())
    assert failure.step == "transcript"
    assert failure.reason.startswith("no final transcript on the speaker within"), failure.reason
    # And it ended the session on its way out, so that it does not stay active for the speaker
    (row,) = [item for item in service.sessions() if item["speakerUserId"] == {"S": "silent-smoke-speaker"}]
    assert row[session.END_REASON_ATTRIBUTE] == {"S": "endedBySpeaker"}, row
