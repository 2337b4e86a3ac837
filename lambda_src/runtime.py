"""The process-wide objects a function needs, built on first use and reused across invocations."""

from __future__ import annotations

from functools import cache

from lambda_src.adapters.repositories.audio_chunks import AudioChunksRepository
from lambda_src.adapters.repositories.connections import ConnectionsRepository
from lambda_src.adapters.repositories.rate_limits import RateLimitsRepository
from lambda_src.adapters.repositories.sessions import SessionsRepository
from lambda_src.contract import function_settings


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


def reset() -> None:
    """Forget every cached object (tests change the environment between cases)."""
    from lambda_src.adapters.repositories import dynamodb
    from lambda_src.adapters.transcription import starter
    from lambda_src.app import audio

    audio.SESSIONS.clear()
    starter.forget()
    for cached in (sessions, connections, rate_limits, audio_chunks, function_settings.load, dynamodb.client):
        cached.cache_clear()
