"""The browser tests: the local run of the integration tests (its ``service`` fixture, imported so there is one
definition of it), a spoken WAV file for the fake microphone, and the system Chromium driven by Playwright."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.integration.conftest import service  # noqa: F401  (the fixture: one local run for the browser tests)

SPOKEN_TEXT = "Good morning everyone. Thank you for coming. Today we talk about rivers and the sea."


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speech as 16 kHz 16-bit mono WAV (espeak-ng speaks, sox converts): what the fake microphone plays, in a loop."""
    folder = tmp_path_factory.mktemp("speech")
    spoken, converted = folder / "spoken.wav", folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(spoken), SPOKEN_TEXT], check=True)
    subprocess.run(
        ["sox", str(spoken), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", str(converted)], check=True
    )
    return converted


@pytest.fixture()
def browser(speech_wav: Path) -> Iterator[Browser]:
    """Headless Chromium whose microphone is ``speech_wav`` (granted without a prompt)."""
    executable = shutil.which("chromium")
    assert executable, "Chromium is missing: make install installs it (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={speech_wav}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
