"""The speaker's audio from a WAV file: 16-bit little-endian mono PCM at 16 kHz (what ``sendAudio`` carries), in
chunks of a fixed duration. Any other format is refused with a message that says what came and what is needed."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

from lambda_src.contract import limits
from lambda_src.contract.limits import SAMPLE_RATE_HZ

CHUNK_MILLISECONDS = 100


class UnsupportedAudio(ValueError):
    """A file that is not a WAV of 16-bit mono PCM at the recognizer's sample rate."""


def chunk_bytes(milliseconds: int = CHUNK_MILLISECONDS) -> int:
    """The size of ``milliseconds`` of audio (3,200 bytes for 100 ms)."""
    return SAMPLE_RATE_HZ * milliseconds // 1000 * limits.AUDIO_SAMPLE_BYTES


def wav_chunks(path: Path, milliseconds: int = CHUNK_MILLISECONDS) -> Iterator[bytes]:
    """The file's PCM in chunks of ``milliseconds`` (the last one shorter, or dropped when below the service's
    smallest chunk)."""
    try:
        with wave.open(str(path), "rb") as wav:
            found = (wav.getnchannels(), wav.getsampwidth() * 8, wav.getframerate(), wav.getcomptype())
            wanted = (1, limits.AUDIO_SAMPLE_BYTES * 8, SAMPLE_RATE_HZ, "NONE")
            if found != wanted:
                channels, bits, rate, compression = found
                raise UnsupportedAudio(
                    f"{path}: {channels} channel(s), {bits}-bit, {rate} Hz, compression {compression}; "
                    f"needed: mono, {wanted[1]}-bit PCM, {SAMPLE_RATE_HZ} Hz "
                    f"(e.g. sox in.wav -r {SAMPLE_RATE_HZ} -c 1 -b 16 out.wav)"
                )
            size = chunk_bytes(milliseconds)
            while chunk := wav.readframes(size // limits.AUDIO_SAMPLE_BYTES):
                if len(chunk) >= limits.MIN_AUDIO_CHUNK_BYTES:
                    yield chunk
    except (wave.Error, EOFError) as error:
        raise UnsupportedAudio(f"{path}: not a WAV file of PCM audio ({error})") from error
