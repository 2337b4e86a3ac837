"""Speech for trying and testing the audio path: text spoken by espeak-ng, as a WAV (what a microphone or a file
gives) or as the speaker app's format, raw 16 kHz 16-bit little-endian mono PCM (converted by sox). ``make
test`` and ``make local`` install both tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SAMPLE_RATE_HZ = 16_000
CHUNK_BYTES = SAMPLE_RATE_HZ * 2 // 10  # 100 ms, the speaker app's chunk


def _require(*tools: str) -> None:
    for tool in tools:
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} is missing: `make test` and `make local` install it (apt package {tool})")


def speak_wav(text: str, wav: Path) -> Path:
    """``text`` spoken by espeak-ng (US English, 130 words a minute) into ``wav``, converted to 16 kHz mono."""
    _require("espeak-ng", "sox")
    spoken = wav.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(spoken), text], check=True)
    subprocess.run(["sox", str(spoken), "-r", str(SAMPLE_RATE_HZ), "-c", "1", "-b", "16", str(wav)], check=True)
    spoken.unlink()
    return wav


def speak_pcm(text: str, directory: Path) -> bytes:
    """``text`` spoken by espeak-ng, as raw PCM in the speaker app's format."""
    _require("espeak-ng", "sox")
    wav, raw = directory / "speech.wav", directory / "speech.raw"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(wav), text], check=True)
    subprocess.run(
        ["sox", str(wav), "-r", str(SAMPLE_RATE_HZ), "-c", "1", "-b", "16", "-e", "signed-integer", str(raw)],
        check=True,
    )
    return raw.read_bytes()


def chunks(pcm: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """``pcm`` in the speaker app's 100 ms chunks (the last one shorter)."""
    return [pcm[start : start + size] for start in range(0, len(pcm), size)]
