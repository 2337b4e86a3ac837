"""The client library against the local run: a speaker creates a session, a listener joins, and the listener hears
the speaker's pause and the session's end through the typed message stream."""

from __future__ import annotations

import asyncio

import pytest

from session_client import ListenerClient, SpeakerClient, messages
from tests.integration.conftest import RunningService

pytestmark = pytest.mark.integration


def test_a_listener_hears_the_speakers_pause_and_the_end_through_the_clients(service: RunningService) -> None:
    async def scenario() -> None:
        # Given a session created by a SpeakerClient with its partial-result settings, and a ListenerClient in it
        speaker = await SpeakerClient.create(
            service.url,
            token=service.token(user_id="client-speaker"),
            source_language="en",
            partial_results_enabled=True,
            min_stability=0.8,
            max_buffer_timeout=4,
        )
        assert speaker.created is not None
        assert (speaker.created.min_stability_threshold, speaker.created.max_buffer_timeout) == (0.8, 4.0)
        assert speaker.session_id is not None
        listener = await ListenerClient.join(service.url, session_id=speaker.session_id, language="es")
        assert listener.joined is not None and listener.joined.listener_count == 1
        # When the speaker pauses the broadcast
        state = await speaker.pause_broadcast()
        assert (state.session_id, state.is_paused) == (speaker.session_id, True)
        # Then the listener is told
        paused = await listener.next_message(messages.BroadcastPaused.TYPE, timeout=10)
        assert paused.session_id == speaker.session_id  # type: ignore[attr-defined]
        # And when the speaker ends the session, the listener hears it and its stream ends with the connection
        ended = await speaker.end()
        assert ended.reason == "endedBySpeaker"
        async with asyncio.timeout(15):
            rest = [message async for message in listener]
        assert [(m.type, m.reason) for m in rest if isinstance(m, messages.SessionEnded)] == [
            ("sessionEnded", "endedBySpeaker")
        ]
        assert rest[-1].type == "sessionEnded"
        assert (listener.is_open, listener.failure) == (False, None)
        await listener.close()

    asyncio.run(scenario())
