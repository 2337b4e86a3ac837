"""The process-wide objects a function needs, built on first use and reused across invocations."""

from __future__ import annotations

from functools import cache

from lambda_src import settings
from lambda_src.repositories.audio_chunks import AudioChunksRepository
from lambda_src.repositories.connections import ConnectionsRepository
from lambda_src.repositories.rate_limits import RateLimitsRepository
from lambda_src.repositories.sessions import SessionsRepository


@cache
def sessions() -> SessionsRepository:
    return SessionsRepository(settings.load().sessions_table)


@cache
def connections() -> ConnectionsRepository:
    return ConnectionsRepository(settings.load().connections_table)


@cache
def rate_limits() -> RateLimitsRepository:
    return RateLimitsRepository(settings.load().rate_limits_table)


@cache
def audio_chunks() -> AudioChunksRepository:
    return AudioChunksRepository(settings.load().audio_chunks_table)


def reset() -> None:
    """Forget every cached object (tests change the environment between cases)."""
    from lambda_src import audio
    from lambda_src.repositories import dynamodb
    from lambda_src.transcription import starter

    audio.SESSIONS.clear()
    starter.forget()
    for cached in (sessions, connections, rate_limits, audio_chunks, settings.load, dynamodb.client):
        cached.cache_clear()
