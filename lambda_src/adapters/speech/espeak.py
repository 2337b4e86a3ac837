"""The local run's synthesizer, standing in for Amazon Polly: espeak-ng speaks the text into a WAV, which LAME
encodes as MP3 (what Polly returns, so the listener's player and the audio store see the same format). Offline,
robotic, and free; the voice of each language from :data:`lambda_src.contract.voices.ESPEAK_VOICES`.

The duration is the WAV's (frames over its rate), read before encoding: exact, where the MP3's would add the
encoder's padding. ``make local`` and ``make test`` install both tools (the Makefile's ``.speech`` target).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from lambda_src.contract.voices import ESPEAK_VOICES
from lambda_src.model.speech import SpeechUnavailable, SpokenText

NAME: Final = "espeak-ng, MP3 by LAME (standing in for Amazon Polly)"
CONTENT_TYPE: Final = "audio/mpeg"
TOOLS: Final = ("espeak-ng", "lame")
# A sentence is spoken in well under a second; a tool that hangs fails the segment, not the consumer.
_TIMEOUT_SECONDS: Final = 30


class EspeakSynthesizer:
    """espeak-ng then LAME, two short processes per text. ``voices``: espeak-ng's voice for each language."""

    name: Final = NAME

    def __init__(self, voices: Mapping[str, str] = ESPEAK_VOICES) -> None:
        self._voices = dict(voices)

    def speaks(self, language: str) -> bool:
        return language in self._voices

    def synthesize(self, text: str, language: str) -> SpokenText:
        voice = self._voices.get(language)
        if voice is None:
            raise SpeechUnavailable(language)
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} missing: `make local` installs it (apt packages espeak-ng, lame)")
        with tempfile.TemporaryDirectory(prefix="speech-") as directory:
            wav, mp3 = Path(directory) / "speech.wav", Path(directory) / "speech.mp3"
            # The text on stdin, never as an argument: a text starting with "-" would be read as an option.
            _run(["espeak-ng", "-v", voice, "-w", str(wav), "--stdin"], stdin=text.encode())
            with wave.open(str(wav), "rb") as spoken:
                duration = spoken.getnframes() / spoken.getframerate()
            _run(["lame", "--quiet", str(wav), str(mp3)])
            return SpokenText(audio=mp3.read_bytes(), content_type=CONTENT_TYPE, duration_seconds=duration)


def _run(command: list[str], stdin: bytes = b"") -> None:
    try:
        subprocess.run(command, input=stdin, capture_output=True, check=True, timeout=_TIMEOUT_SECONDS)
    except subprocess.CalledProcessError as error:
        detail = error.stderr.decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"{command[0]} failed ({error.returncode}): {detail}") from error
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{command[0]} did not finish in {_TIMEOUT_SECONDS} s") from error
