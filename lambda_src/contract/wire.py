"""Names on the wire that clients and the service share: request fields, and the values of the server messages'
enumerated fields (why a session ended, why a status was sent, why a chunk was not stored). The message shapes are
built by ``lambda_src.protocol.messages`` and documented in ``docs/asyncapi.yaml``."""

from __future__ import annotations

from typing import Final

# Request field names (query-string parameters and message fields alike); the partial-result settings' are in
# ``lambda_src.contract.partial_result_fields``, the token's is ``limits.TOKEN_FIELD``.
SOURCE_LANGUAGE: Final = "sourceLanguage"
TARGET_LANGUAGE: Final = "targetLanguage"
QUALITY_TIER: Final = "qualityTier"
SESSION_ID: Final = "sessionId"
ROLE: Final = "role"
PREVIOUS_CONNECTION_ID: Final = "previousConnectionId"
VOLUME_LEVEL: Final = "volumeLevel"
STATE: Final = "state"
AUDIO_DATA: Final = "audioData"
SEQUENCE_NUMBER: Final = "sequenceNumber"
CHUNK_ID: Final = "chunkId"
TIMESTAMP: Final = "timestamp"
# What a chunk may say of its audio (the original speaker app's ``audioChunk`` says all four).
AUDIO_FORMAT: Final = "format"
AUDIO_ENCODING: Final = "encoding"
SAMPLE_RATE: Final = "sampleRate"
CHANNELS: Final = "channels"
# What a listener receives (``output``, at join and by ``setOutput``): the translation spoken (``translatedAudio``),
# its captions (``caption``), or both; the original listener app says nothing and gets both.
OUTPUT: Final = "output"
OUTPUT_AUDIO: Final = "audio"
OUTPUT_CAPTIONS: Final = "captions"
OUTPUT_BOTH: Final = "both"
OUTPUTS: Final = (OUTPUT_AUDIO, OUTPUT_CAPTIONS, OUTPUT_BOTH)
DEFAULT_OUTPUT: Final = OUTPUT_BOTH

# A transcript download's parameters (``GET /sessions/{id}/transcript?language=es&format=vtt``) and the formats it
# renders (``lambda_src.model.transcripts``): WebVTT, SubRip, plain text.
TRANSCRIPT_LANGUAGE: Final = "language"
TRANSCRIPT_FORMAT: Final = "format"
TRANSCRIPT_WEBVTT: Final = "vtt"
TRANSCRIPT_SRT: Final = "srt"
TRANSCRIPT_TEXT: Final = "txt"
TRANSCRIPT_FORMATS: Final = (TRANSCRIPT_WEBVTT, TRANSCRIPT_SRT, TRANSCRIPT_TEXT)

# Why a session ended (``sessionEnded.reason``).
ENDED_BY_SPEAKER: Final = "endedBySpeaker"
SPEAKER_TIMEOUT: Final = "speakerTimeout"
EXPIRED: Final = "expired"

# Why a speaker receives a ``sessionStatus`` (``updateReason``): its own ``getSessionStatus``, the periodic
# push while it is connected, or a push on a notable change of its audience.
STATUS_REQUESTED: Final = "requested"
STATUS_PERIODIC: Final = "periodic"
STATUS_LISTENER_COUNT_CHANGE: Final = "listenerCountChange"
STATUS_NEW_LANGUAGE: Final = "newLanguage"
STATUS_UPDATE_REASONS: Final = (STATUS_REQUESTED, STATUS_PERIODIC, STATUS_LISTENER_COUNT_CHANGE, STATUS_NEW_LANGUAGE)

# The session's listener count, in ``sessionJoined`` and ``sessionStatus``.
LISTENER_COUNT: Final = "listenerCount"

# Why a ``sendAudio`` chunk was not stored (``audioReceived.reason``): the broadcast is paused, muted or at
# volume 0, or a chunk with its sequence number is stored already.
AUDIO_PAUSED: Final = "paused"
AUDIO_MUTED: Final = "muted"
AUDIO_VOLUME_ZERO: Final = "volumeZero"
AUDIO_DUPLICATE: Final = "duplicate"
