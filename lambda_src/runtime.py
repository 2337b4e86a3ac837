"""The composition root: the process-wide objects a function needs (the repositories on the tables its environment
names, the caches a process keeps), built on first use and reused across invocations; :func:`reset` forgets them
all. The use cases (``lambda_src.app``) get their adapters here; nothing here imports a use case."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from lambda_src.adapters import speech
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories.audio_chunks import AudioChunksRepository
from lambda_src.adapters.repositories.connections import ConnectionsRepository
from lambda_src.adapters.repositories.rate_limits import RateLimitsRepository
from lambda_src.adapters.repositories.sessions import SessionsRepository
from lambda_src.adapters.repositories.transcripts import TranscriptsRepository
from lambda_src.adapters.transcription import starter
from lambda_src.contract import function_settings, limits, voices
from lambda_src.model.session import Session
from lambda_src.model.speech import AudioStore, Synthesizer


@cache
def sessions() -> SessionsRepository:
    return SessionsRepository(function_settings.load().sessions_table)


@cache
def connections() -> ConnectionsRepository:
    return ConnectionsRepository(function_settings.load().connections_table)


@cache
def rate_limits() -> RateLimitsRepository:
    return RateLimitsRepository(function_settings.load().rate_limits_table)


@cache
def audio_chunks() -> AudioChunksRepository:
    return AudioChunksRepository(function_settings.load().audio_chunks_table)


@cache
def transcripts() -> TranscriptsRepository:
    return TranscriptsRepository(function_settings.load().transcripts_table)


@cache
def synthesizer() -> Synthesizer:
    """What speaks translations to listeners: Amazon Polly, with the code's voices and the environment's overrides
    over them (``POLLY_VOICES``, read once here), or the engine ``SYNTHESIZER`` names (the local run's espeak-ng)."""
    return speech.from_environment(voices.merged_polly_voices(function_settings.load().polly_voices))


@cache
def audio_store() -> AudioStore:
    """Where spoken segments are kept and handed out: the bucket ``AUDIO_BUCKET`` names (the transcriber's)."""
    return speech.audio_store(function_settings.load().audio_bucket)


# Sessions a process remembers at once (each entry is a few hundred bytes; a process serves few speakers).
_CACHE_SIZE = 1024


@dataclass(frozen=True)
class _Read:
    session: Session | None
    read_at_ms: int


class SessionCache:
    """What was last read of each session (None: no live session), reused for ``AUDIO_SESSION_CACHE_MS`` after
    the read, by the clock of the requests (``Caller.now_ms``)."""

    def __init__(self) -> None:
        self._reads: dict[str, _Read] = {}

    def clear(self) -> None:
        self._reads.clear()

    def get(self, session_id: str, now_ms: int, *, not_before_ms: int | None = None) -> Session | None:
        """The session as read at most ``AUDIO_SESSION_CACHE_MS`` ago (and, given ``not_before_ms``, not before
        then); otherwise read now (one consistent GetItem) and remembered."""
        cached = self._reads.get(session_id)
        fresh = cached is not None and 0 <= now_ms - cached.read_at_ms < limits.AUDIO_SESSION_CACHE_MS
        if cached is not None and fresh and (not_before_ms is None or cached.read_at_ms >= not_before_ms):
            return cached.session
        session = sessions().get(session_id, now_ms // 1000)
        self._reads.pop(session_id, None)
        if len(self._reads) >= _CACHE_SIZE:
            self._reads.pop(next(iter(self._reads)))
        self._reads[session_id] = _Read(session, now_ms)
        return session


@cache
def session_reads() -> SessionCache:
    """What ``sendAudio`` last read of each session (a few chunks arrive every second, each checked against it)."""
    return SessionCache()


def reset() -> None:
    """Forget every cached object (tests change the environment between cases)."""
    starter.forget()
    for cached in (
        sessions,
        connections,
        rate_limits,
        audio_chunks,
        transcripts,
        synthesizer,
        audio_store,
        session_reads,
        function_settings.load,
        dynamodb.client,
    ):
        cached.cache_clear()
