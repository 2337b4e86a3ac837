"""Validation of client input. One function per concept serves the query-string form, the JSON message
form and (for the partial-result configuration) mid-session updates.

Every refusal is a :class:`ServiceError` from the catalogue that names the field, what was expected and
what came.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from lambda_src.contract import limits, partial_result_fields
from lambda_src.contract.errors import ErrorCode, ServiceError
from lambda_src.contract.schema import ROLE_LISTENER, ROLE_SPEAKER
from lambda_src.contract.wire import (
    AUDIO_DATA,
    AUDIO_ENCODING,
    AUDIO_FORMAT,
    CHANNELS,
    CHUNK_ID,
    DEFAULT_OUTPUT,
    OUTPUT,
    OUTPUTS,
    PREVIOUS_CONNECTION_ID,
    QUALITY_TIER,
    ROLE,
    SAMPLE_RATE,
    SEQUENCE_NUMBER,
    SESSION_ID,
    SOURCE_LANGUAGE,
    STATE,
    TARGET_LANGUAGE,
    TIMESTAMP,
    TRANSCRIPT_FORMAT,
    TRANSCRIPT_FORMATS,
    TRANSCRIPT_LANGUAGE,
    VOLUME_LEVEL,
)
from lambda_src.model import broadcast
from lambda_src.model.broadcast import BroadcastChange
from lambda_src.model.partial_results import PartialResultConfig, PartialResultUpdate

ROLES = (ROLE_SPEAKER, ROLE_LISTENER)

SESSION_ID_PATTERN = re.compile(r"^[a-z]+-[a-z]+-[1-9][0-9]{2}$")
# Plain decimal notation with an optional small exponent; anything else (hex, "1_0", "inf", " 1") is refused.
_DECIMAL_PATTERN = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?$")  # ASCII digits only
# API Gateway connection ids are short base64-like strings (e.g. "L0SM9cOFvHcCIhw=").
_CONNECTION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_=+/-]{1,128}$")
_SHOWN_CHARACTERS = 40
_DYNAMODB_MAX_DIGITS = 38


@dataclass(frozen=True)
class CreateSessionRequest:
    source_language: str
    quality_tier: str
    config: PartialResultConfig


@dataclass(frozen=True)
class JoinSessionRequest:
    session_id: str
    target_language: str
    output: str = DEFAULT_OUTPUT


@dataclass(frozen=True)
class SendAudioRequest:
    """One ``sendAudio`` (or ``audioChunk``) chunk: the decoded PCM and what the client numbered and stamped it
    with; no number when it gave none (the chunk is then placed by its arrival)."""

    pcm: bytes
    sequence_number: int | None
    chunk_id: str | None
    timestamp_ms: int | None


@dataclass(frozen=True)
class RefreshConnectionRequest:
    session_id: str
    role: str
    target_language: str | None
    previous_connection_id: str | None
    output: str = DEFAULT_OUTPUT  # a listener's (its old connection's choice is not read: it says it again)


def shown(value: Any) -> str:
    """How a received value is quoted back in an error message: short, and never a stack of text."""
    if isinstance(value, str):
        if not value:
            return "an empty string"
        text = json.dumps(value[:_SHOWN_CHARACTERS], ensure_ascii=False)[1:-1]  # escaped, unquoted
        return text + "..." if len(value) > _SHOWN_CHARACTERS else text
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    return f"a JSON {_json_type(value)}"


def _json_type(value: Any) -> str:
    names: dict[type, str] = {dict: "object", list: "array"}
    return names.get(type(value), type(value).__name__)


def check_field_sizes(fields: Mapping[str, Any]) -> None:
    """Refuse any single string value over the size limit before doing any other work on it."""
    for name, value in fields.items():
        limit = limits.MAX_TOKEN_LENGTH if name == limits.TOKEN_FIELD else limits.MAX_FIELD_LENGTH
        if isinstance(value, str) and len(value) > limit:
            configuration = name in partial_result_fields.REQUEST_NAMES
            code = ErrorCode.INVALID_CONFIGURATION if configuration else ErrorCode.INVALID_PARAMETERS
            raise ServiceError(
                code,
                f"{shown(str(name))} must be at most {limit} characters, got {len(value)}",
                field=str(name)[: limits.MAX_FIELD_LENGTH],
            )


def parse_partial_result_update(fields: Mapping[str, Any]) -> PartialResultUpdate:
    """The partial-result settings ``fields`` ask for (absent ones are left as they are), each read as its
    entry of ``partial_result_fields.FIELDS`` says."""
    values: dict[str, Any] = {}
    for field in partial_result_fields.FIELDS:
        if field.request not in fields:
            continue
        value = fields[field.request]
        if field.kind is bool:
            values[field.attribute] = _parse_bool(field.request, value)
        else:
            values[field.attribute] = _parse_bounded_decimal(field.request, value, *field.bounds, field.unit)
    return PartialResultUpdate(**values)


def parse_partial_result_config(
    fields: Mapping[str, Any], base: PartialResultConfig | None = None
) -> PartialResultConfig:
    """The configuration ``fields`` ask for: absent fields keep ``base`` (the defaults when creating)."""
    return (base or PartialResultConfig()).updated(parse_partial_result_update(fields))


def parse_config_update(fields: Mapping[str, Any]) -> PartialResultUpdate:
    """Validate ``updateSessionConfig``: at least one setting, each as strictly as at creation."""
    check_field_sizes(fields)
    update = parse_partial_result_update(fields)
    if not update.changes():
        raise ServiceError(
            ErrorCode.INVALID_CONFIGURATION,
            f"updateSessionConfig needs at least one of {', '.join(partial_result_fields.REQUEST_NAMES)}, got none",
        )
    return update


def check_known_fields(fields: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse a field the request does not take (the HTTP API's bodies: a misspelt setting would otherwise be
    ignored silently), naming the first one."""
    for name in fields:
        if name not in allowed:
            raise ServiceError(
                ErrorCode.INVALID_PARAMETERS,
                f"the body may hold only {', '.join(allowed)}, got {shown(str(name))}",
                field=str(name)[: limits.MAX_FIELD_LENGTH],
            )


def parse_create_session(fields: Mapping[str, Any], languages: frozenset[str]) -> CreateSessionRequest:
    """Validate a ``createSession`` request (query string or message)."""
    check_field_sizes(fields)
    source_language = parse_language(SOURCE_LANGUAGE, fields.get(SOURCE_LANGUAGE), languages)
    quality_tier = fields.get(QUALITY_TIER, limits.DEFAULT_QUALITY_TIER)
    if quality_tier not in limits.QUALITY_TIERS:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{QUALITY_TIER} must be one of {', '.join(limits.QUALITY_TIERS)}, got {shown(quality_tier)}",
            field=QUALITY_TIER,
        )
    return CreateSessionRequest(
        source_language=source_language,
        quality_tier=quality_tier,
        config=parse_partial_result_config(fields),
    )


def parse_join_session(fields: Mapping[str, Any], languages: frozenset[str]) -> JoinSessionRequest:
    """Validate a ``joinSession`` request (query string or message)."""
    check_field_sizes(fields)
    return JoinSessionRequest(
        session_id=parse_session_id(fields.get(SESSION_ID)),
        target_language=parse_language(TARGET_LANGUAGE, fields.get(TARGET_LANGUAGE), languages),
        output=parse_output(fields.get(OUTPUT, DEFAULT_OUTPUT)),
    )


def parse_refresh_connection(
    fields: Mapping[str, Any], languages: frozenset[str], connection_id: str
) -> RefreshConnectionRequest:
    """Validate ``refreshConnection`` arriving on ``connection_id``: a listener names its target language, a
    speaker needs none; a ``previousConnectionId`` must name another connection than this one."""
    check_field_sizes(fields)
    session_id = parse_session_id(fields.get(SESSION_ID))
    role = fields.get(ROLE)
    if role is None:
        raise _missing(ROLE)
    if role not in ROLES:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS, f"{ROLE} must be one of {', '.join(ROLES)}, got {shown(role)}", field=ROLE
        )
    target_language = (
        parse_language(TARGET_LANGUAGE, fields.get(TARGET_LANGUAGE), languages) if role == ROLE_LISTENER else None
    )
    previous = fields.get(PREVIOUS_CONNECTION_ID)
    if previous is not None and (not isinstance(previous, str) or not _CONNECTION_ID_PATTERN.fullmatch(previous)):
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{PREVIOUS_CONNECTION_ID} must be the connectionId of the connection being replaced, "
            f"got {shown(previous)}",
            field=PREVIOUS_CONNECTION_ID,
        )
    if previous is not None and previous == connection_id:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{PREVIOUS_CONNECTION_ID} must be the connectionId of another connection (the one being replaced), "
            f"got this connection's own id {shown(previous)}",
            field=PREVIOUS_CONNECTION_ID,
        )
    output = parse_output(fields.get(OUTPUT, DEFAULT_OUTPUT)) if role == ROLE_LISTENER else DEFAULT_OUTPUT
    return RefreshConnectionRequest(session_id, role, target_language, previous, output)


# -- broadcast state and listener controls --------------------------------------------------------------------


def parse_no_fields(fields: Mapping[str, Any]) -> None:
    """An action that takes no field of its own (pauseBroadcast, pausePlayback...): only the sizes are checked."""
    check_field_sizes(fields)


def parse_volume(name: str, value: Any) -> Decimal:
    """A volume level: a JSON number or decimal string from 0.0 to 1.0 inclusive, by the rules of the
    partial-result numbers; refused as ``INVALID_PARAMETERS`` (not a partial-result setting) naming ``name``."""
    return _parse_bounded_decimal(
        name, value, limits.VOLUME_LOWER, limits.VOLUME_UPPER, "", code=ErrorCode.INVALID_PARAMETERS
    )


def parse_set_volume(fields: Mapping[str, Any]) -> BroadcastChange:
    """Validate ``setVolume``: ``volumeLevel`` is required."""
    check_field_sizes(fields)
    if VOLUME_LEVEL not in fields:
        raise _missing(VOLUME_LEVEL)
    return BroadcastChange(volume=parse_volume(VOLUME_LEVEL, fields[VOLUME_LEVEL]))


def parse_speaker_state_change(fields: Mapping[str, Any]) -> BroadcastChange:
    """Validate ``speakerStateChange``: ``state`` is an object of at least one of ``isPaused`` and ``isMuted``
    (JSON booleans) and ``volume`` (as ``setVolume``'s level), and nothing else."""
    check_field_sizes(fields)
    state = fields.get(STATE)
    names = ", ".join(broadcast.NAMES)
    if state is None:
        raise _missing(STATE)
    if not isinstance(state, Mapping) or not state:
        got = "an empty object" if isinstance(state, Mapping) else shown(state)
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{STATE} must be an object with at least one of {names}, got {got}",
            field=STATE,
        )
    unknown = [key for key in state if key not in broadcast.NAMES]
    if unknown:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{STATE} may hold only {names}, got {shown(str(unknown[0]))}",
            field=f"{STATE}.{str(unknown[0])[: limits.MAX_FIELD_LENGTH]}",
        )
    for name in (broadcast.IS_PAUSED, broadcast.IS_MUTED):
        if name in state and not isinstance(state[name], bool):
            raise ServiceError(
                ErrorCode.INVALID_PARAMETERS,
                f"{STATE}.{name} must be true or false, got {shown(state[name])}",
                field=f"{STATE}.{name}",
            )
    volume = state.get(broadcast.VOLUME)
    if isinstance(volume, str) and len(volume) > limits.MAX_FIELD_LENGTH:
        check_field_sizes({f"{STATE}.{broadcast.VOLUME}": volume})
    return BroadcastChange(
        is_paused=state.get(broadcast.IS_PAUSED),
        is_muted=state.get(broadcast.IS_MUTED),
        volume=parse_volume(f"{STATE}.{broadcast.VOLUME}", volume) if broadcast.VOLUME in state else None,
    )


# The longest base64 text of a chunk within MAX_AUDIO_CHUNK_BYTES: refused unread beyond this.
_MAX_AUDIO_BASE64_CHARACTERS = 4 * -(-limits.MAX_AUDIO_CHUNK_BYTES // 3)


# What a chunk may say of its audio, and the one answer the service takes for each (its audio format).
_AUDIO_FORMAT_FIELDS: tuple[tuple[str, object], ...] = (
    (AUDIO_FORMAT, limits.AUDIO_FORMAT),
    (SAMPLE_RATE, limits.SAMPLE_RATE_HZ),
    (CHANNELS, limits.AUDIO_CHANNELS),
    (AUDIO_ENCODING, limits.AUDIO_ENCODING),
)


def parse_send_audio(fields: Mapping[str, Any]) -> SendAudioRequest:
    """Validate ``sendAudio`` and ``audioChunk`` (the original speaker app's name for it): ``audioData`` strict
    base64 of whole 16-bit samples, MIN_AUDIO_CHUNK_BYTES to MAX_AUDIO_CHUNK_BYTES decoded
    (``INVALID_AUDIO_FORMAT``); optional ``sequenceNumber`` (a JSON integer from 0 to MAX_AUDIO_SEQUENCE_NUMBER),
    ``chunkId`` (a string) and ``timestamp`` (a JSON integer, epoch ms); optional ``format``, ``sampleRate``,
    ``channels`` and ``encoding``, each of which, when given, must name the one format the service takes (pcm,
    16000, 1, s16le: a chunk that says it is anything else is refused rather than fed to the recognizer as noise)."""
    check_field_sizes({name: value for name, value in fields.items() if name != AUDIO_DATA})
    sequence_number = _parse_json_integer(SEQUENCE_NUMBER, fields.get(SEQUENCE_NUMBER), required=False)
    for name, expected in _AUDIO_FORMAT_FIELDS:
        _check_audio_format(name, fields.get(name), expected)
    chunk_id = fields.get(CHUNK_ID)
    if chunk_id is not None and not isinstance(chunk_id, str):
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS, f"{CHUNK_ID} must be a string, got {shown(chunk_id)}", field=CHUNK_ID
        )
    timestamp_ms = _parse_json_integer(TIMESTAMP, fields.get(TIMESTAMP), required=False)
    return SendAudioRequest(_parse_audio(fields.get(AUDIO_DATA)), sequence_number, chunk_id, timestamp_ms)


def _check_audio_format(name: str, value: Any, expected: object) -> None:
    """Absent, or exactly ``expected`` (a string as it is spelt, a number as a JSON integer: not 1.0, not "1",
    not true)."""
    if value is None:
        return
    if type(value) is type(expected) and value == expected:
        return
    wanted = f'"{expected}"' if isinstance(expected, str) else f"the JSON integer {expected}"
    raise ServiceError(
        ErrorCode.INVALID_PARAMETERS,
        f"{name} must be {wanted} (the service takes {limits.AUDIO_CHANNELS}-channel "
        f"{limits.AUDIO_ENCODING} {limits.AUDIO_FORMAT} at {limits.SAMPLE_RATE_HZ} Hz), got {shown(value)}",
        field=name,
    )


def _parse_audio(value: Any) -> bytes:
    def refused(what: str) -> ServiceError:
        return ServiceError(ErrorCode.INVALID_AUDIO_FORMAT, f"{AUDIO_DATA} must be {what}", field=AUDIO_DATA)

    expected = (
        f"base64 of 16-bit little-endian mono PCM, {limits.MIN_AUDIO_CHUNK_BYTES} to {limits.MAX_AUDIO_CHUNK_BYTES} "
        f"bytes decoded"
    )
    if value is None:
        raise ServiceError(ErrorCode.INVALID_AUDIO_FORMAT, f"{AUDIO_DATA} is required", field=AUDIO_DATA)
    if not isinstance(value, str):
        raise refused(f"{expected}, got {shown(value)}")
    if len(value) > _MAX_AUDIO_BASE64_CHARACTERS:
        raise refused(f"{expected}, got {len(value)} characters of base64 (more than {_MAX_AUDIO_BASE64_CHARACTERS})")
    try:
        pcm = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise refused(f"{expected}, got text that is not strict base64") from None
    if not limits.MIN_AUDIO_CHUNK_BYTES <= len(pcm) <= limits.MAX_AUDIO_CHUNK_BYTES:
        raise refused(f"{expected}, got {len(pcm)} bytes")
    if len(pcm) % limits.AUDIO_SAMPLE_BYTES:
        raise refused(f"whole {8 * limits.AUDIO_SAMPLE_BYTES}-bit samples (an even number of bytes), got {len(pcm)}")
    return pcm


def _parse_json_integer(name: str, value: Any, *, required: bool) -> int | None:
    """A JSON integer (never a boolean, a fraction such as 1.0, or a string) from 0 to MAX_AUDIO_SEQUENCE_NUMBER."""
    if value is None:
        if required:
            raise _missing(name)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limits.MAX_AUDIO_SEQUENCE_NUMBER:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{name} must be a JSON integer from 0 to {limits.MAX_AUDIO_SEQUENCE_NUMBER}, got {shown(value)}",
            field=name,
        )
    return value


def parse_change_language(fields: Mapping[str, Any], languages: frozenset[str]) -> str:
    """Validate ``changeLanguage`` / ``switchLanguage``: ``targetLanguage``, as when joining."""
    check_field_sizes(fields)
    return parse_language(TARGET_LANGUAGE, fields.get(TARGET_LANGUAGE), languages)


def parse_set_output(fields: Mapping[str, Any]) -> str:
    """Validate ``setOutput``: ``output`` is required (one of ``wire.OUTPUTS``)."""
    check_field_sizes(fields)
    if OUTPUT not in fields:
        raise _missing(OUTPUT)
    return parse_output(fields[OUTPUT])


def parse_output(value: Any) -> str:
    """A listener's ``output``: one of ``wire.OUTPUTS`` (at join it may be left out: both)."""
    if not isinstance(value, str) or value not in OUTPUTS:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{OUTPUT} must be one of {', '.join(OUTPUTS)}, got {shown(value)}",
            field=OUTPUT,
        )
    return value


def parse_transcript_request(language: Any, fmt: Any, languages: frozenset[str]) -> tuple[str, str]:
    """Validate a transcript download's ``language`` (a supported code: the source language is one too) and
    ``format`` (one of ``TRANSCRIPT_FORMATS``); both required."""
    parsed = parse_language(TRANSCRIPT_LANGUAGE, language, languages)
    if fmt is None:
        raise _missing(TRANSCRIPT_FORMAT)
    if not isinstance(fmt, str) or fmt not in TRANSCRIPT_FORMATS:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{TRANSCRIPT_FORMAT} must be one of {', '.join(TRANSCRIPT_FORMATS)}, got {shown(fmt)}",
            field=TRANSCRIPT_FORMAT,
        )
    return parsed, fmt


def parse_session_id(value: Any) -> str:
    if value is None:
        raise _missing(SESSION_ID)
    if not isinstance(value, str) or not SESSION_ID_PATTERN.fullmatch(value):
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{SESSION_ID} must look like golden-eagle-427 (adjective-noun-number), got {shown(value)}",
            field=SESSION_ID,
        )
    return value


def parse_language(name: str, value: Any, languages: frozenset[str]) -> str:
    if value is None:
        raise _missing(name)
    if not isinstance(value, str) or value not in languages:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"{name} must be a supported ISO 639-1 code ({', '.join(sorted(languages))}), got {shown(value)}",
            field=name,
        )
    return value


def _missing(name: str) -> ServiceError:
    return ServiceError(ErrorCode.INVALID_PARAMETERS, f"{name} is required", field=name)


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ServiceError(ErrorCode.INVALID_CONFIGURATION, f"{name} must be true or false, got {shown(value)}", field=name)


def _parse_bounded_decimal(
    name: str,
    value: Any,
    lower: Decimal,
    upper: Decimal,
    unit: str,
    code: ErrorCode = ErrorCode.INVALID_CONFIGURATION,
) -> Decimal:
    number = _to_decimal(value)
    if number is None or not lower <= number <= upper:
        expected = "between" if number is not None else "a number between"
        raise ServiceError(
            code,
            f"{name} must be {expected} {lower} and {upper}{unit}, got {shown(value)}",
            field=name,
        )
    return number


def _to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal that DynamoDB can store (at most 38 significant digits), or None."""
    number = _parse_decimal(value)
    if number is None or not number.is_finite() or len(number.as_tuple().digits) > _DYNAMODB_MAX_DIGITS:
        return None
    return number


def _parse_decimal(value: Any) -> Decimal | None:
    """A Decimal from a JSON number or a decimal string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr gives the shortest string that round-trips, so 0.85 becomes Decimal("0.85"), not float noise.
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and _DECIMAL_PATTERN.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None
