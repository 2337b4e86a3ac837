"""A Python client of the session service: :class:`SpeakerClient` and :class:`ListenerClient` over WebSockets,
the server's messages as typed values (:mod:`session_client.messages`), the listener's speech as
:class:`AudioSegment` values to fetch (:func:`fetch_audio`) and play in order (:mod:`session_client.playback`), the
HTTP session API (:class:`SessionsApi`: sessions and their transcripts), and a command line (``python -m
session_client listen|speak``)."""

from __future__ import annotations

from session_client.audio_segments import AudioFetchFailed, AudioSegment, fetch_audio
from session_client.clients import ListenerClient, SpeakerClient
from session_client.connection import (
    DEFAULT_URL,
    Backoff,
    ConnectionLost,
    HandshakeRefused,
    ServiceRefused,
)
from session_client.messages import ServerMessage, parse
from session_client.sessions_api import ApiRefused, SessionMetadata, SessionsApi

__all__ = [
    "DEFAULT_URL",
    "ApiRefused",
    "AudioFetchFailed",
    "AudioSegment",
    "Backoff",
    "ConnectionLost",
    "HandshakeRefused",
    "ListenerClient",
    "ServerMessage",
    "ServiceRefused",
    "SessionMetadata",
    "SessionsApi",
    "SpeakerClient",
    "fetch_audio",
    "parse",
]
