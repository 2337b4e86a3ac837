"""How long an MP3 plays, read from its frame headers (no decoding, no library): the synthesizers' duration.

Every MPEG audio frame of Layer III holds a fixed number of samples (1152 in MPEG-1, 576 in MPEG-2 and 2.5) at the
sample rate its header names, so the duration is the frames' samples over the rate. An ID3v2 tag before the frames
and an ID3v1 tag after them are skipped, and so is a Xing/Info frame (LAME's and Polly's header of the stream, which
decoders do not play). Only Layer III is read: what Polly and LAME produce.
"""

from __future__ import annotations

from typing import Final

# Bit rates (kbit/s) by the header's 4-bit index, for MPEG-1 and for MPEG-2/2.5, Layer III; 0: free format.
_BITRATES_V1: Final = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_BITRATES_V2: Final = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
# Sample rates (Hz) by the header's version bits (3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5) and 2-bit index.
_SAMPLE_RATES: Final = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_LAYER_III: Final = 1
_MONO: Final = 3


def _id3v2_size(data: bytes) -> int:
    """The length of an ID3v2 tag at the start of ``data`` (0 without one)."""
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]  # "syncsafe": 7 bits a byte
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


def duration_seconds(data: bytes) -> float:
    """The playing time of the MP3 ``data``; ValueError if it holds no Layer III frame or something else
    between its frames."""
    offset = _id3v2_size(data)
    samples = 0
    sample_rate = 0
    first = True
    while offset + 4 <= len(data):
        if data[offset : offset + 3] == b"TAG":  # ID3v1, at the end
            break
        b1, b2, b3 = data[offset + 1], data[offset + 2], data[offset + 3]
        if data[offset] != 0xFF or b1 & 0xE0 != 0xE0:
            raise ValueError(f"no MP3 frame at byte {offset}")
        version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
        bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 3
        if version == 1 or layer != _LAYER_III or bitrate_index in (0, 15) or rate_index == 3:
            raise ValueError(f"not an MPEG Layer III frame of a known rate at byte {offset}")
        mpeg1 = version == 3
        bitrate = (_BITRATES_V1 if mpeg1 else _BITRATES_V2)[bitrate_index] * 1000
        rate = _SAMPLE_RATES[version][rate_index]
        length = (144 if mpeg1 else 72) * bitrate // rate + ((b2 >> 1) & 1)
        if offset + length > len(data):
            break  # a truncated last frame plays nothing whole
        if not (first and _is_info_frame(data, offset, mpeg1=mpeg1, mono=(b3 >> 6) == _MONO)):
            samples += 1152 if mpeg1 else 576
            sample_rate = rate
        first = False
        offset += length
    if not sample_rate:
        raise ValueError("no MP3 audio frame")
    return samples / sample_rate


def _is_info_frame(data: bytes, offset: int, *, mpeg1: bool, mono: bool) -> bool:
    """Whether the frame at ``offset`` is a Xing/Info header (its tag follows the header and the side information)."""
    side_information = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    tag = data[offset + 4 + side_information : offset + 8 + side_information]
    return tag in (b"Xing", b"Info")
