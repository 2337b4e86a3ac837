"""The speaker's broadcast state and the listeners' controls through the local gateway with the client library:
each listener hears each change once, a language change moves the counts, and a refreshed speaker gets its state
back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from session_client import ListenerClient, SpeakerClient, messages
from session_client.connection import Connection, HandshakeRefused, ServiceRefused
from tests.integration.conftest import RunningService

pytestmark = pytest.mark.integration


async def notices_until_heartbeat(client: Connection) -> list[messages.ServerMessage]:
    """Every message the client was told before the answer to a heartbeat sent now (the gateway delivers a
    connection's messages in order, so nothing told earlier can arrive after it)."""
    await client.heartbeat()
    return client.received()


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_two_listeners_in_different_languages_hear_each_broadcast_change_once(service: RunningService) -> None:
    async def scenario() -> None:
        # Given a session with a Spanish and a French listener
        speaker = await SpeakerClient.create(service.url, token=service.token(user_id="broadcaster"))
        assert speaker.session_id is not None
        spanish = await ListenerClient.join(service.url, session_id=speaker.session_id, language="es")
        french = await ListenerClient.join(service.url, session_id=speaker.session_id, language="fr")
        # When the speaker pauses twice, mutes, sets a volume twice, and changes the whole state
        answers = [
            await speaker.pause_broadcast(),
            await speaker.pause_broadcast(),
            await speaker.mute(),
            await speaker.set_volume(0.4),
            await speaker.set_volume(0.4),
            await speaker.set_state(is_paused=False, is_muted=False, volume=1),
        ]
        # Then the speaker gets the whole state each time
        assert [answer.type for answer in answers] == ["broadcastState"] * 6
        assert (answers[-1].is_paused, answers[-1].is_muted, answers[-1].volume) == (False, False, 1.0)
        # And each listener hears each change once, and nothing of the repeats
        for listener in (spanish, french):
            notices = await notices_until_heartbeat(listener)
            assert [notice.type for notice in notices] == [
                "broadcastPaused",
                "broadcastMuted",
                "volumeChanged",
                "speakerStateChanged",
            ]
            assert isinstance(notices[2], messages.VolumeChanged) and notices[2].volume_level == 0.4
            assert {getattr(notice, "session_id", None) for notice in notices} == {speaker.session_id}
        # And the status reports the state
        assert (await speaker.status()).broadcast_state == messages.BroadcastSettings(
            is_paused=False, is_muted=False, volume=1.0
        )
        for client in (speaker, spanish, french):
            await client.close()

    run(scenario)


def test_a_language_change_moves_the_status_counts(service: RunningService) -> None:
    async def scenario() -> None:
        speaker = await SpeakerClient.create(service.url, token=service.token(user_id="linguist"))
        assert speaker.session_id is not None
        first = await ListenerClient.join(service.url, session_id=speaker.session_id, language="es")
        second = await ListenerClient.join(service.url, session_id=speaker.session_id, language="es")
        assert (await speaker.status()).listeners_by_language == {"es": 2}
        changed = await first.change_language("ja")
        assert (changed.session_id, changed.target_language) == (speaker.session_id, "ja")
        status = await speaker.status()
        assert (status.listener_count, status.listeners_by_language) == (2, {"es": 1, "ja": 1})
        # And a playback pause is the listener's alone
        assert (await second.pause_playback()).type == "playbackPaused"
        assert (await speaker.status()).broadcast_state.is_paused is False
        assert await notices_until_heartbeat(first) == []
        for client in (speaker, first, second):
            await client.close()

    run(scenario)


def test_a_refreshed_speaker_gets_its_paused_state_back(service: RunningService) -> None:
    async def scenario() -> None:
        speaker = await SpeakerClient.create(service.url, token=service.token(user_id="pauser"))
        assert (await speaker.set_state(is_paused=True, volume=0.3)).is_paused is True
        old_connection = speaker.connection_id
        # When the speaker moves to a refreshed connection
        complete = await speaker.refresh()
        assert (complete.role, complete.session_id) == ("speaker", speaker.session_id)
        assert speaker.connection_id != old_connection
        # Then the new connection is told the state right after its first message
        restored = await speaker.next_message(messages.StateRestored.TYPE, timeout=10)
        assert isinstance(restored, messages.StateRestored)
        assert (restored.session_id, restored.is_paused, restored.is_muted, restored.volume) == (
            speaker.session_id,
            True,
            False,
            0.3,
        )
        # And the new connection is the speaker: it resumes the broadcast
        assert (await speaker.resume_broadcast()).is_paused is False
        await speaker.close()

    run(scenario)


def test_a_listener_chooses_its_output_at_join_and_by_message(service: RunningService) -> None:
    async def scenario() -> None:
        speaker = await SpeakerClient.create(service.url, token=service.token(user_id="announcer"))
        assert speaker.session_id is not None
        # Given a listener that asks for audio only on its URL
        listener = await ListenerClient.join(service.url, session_id=speaker.session_id, language="es", output="audio")
        assert listener.joined is not None and listener.joined.session_id == speaker.session_id
        # When it asks for captions by message, it is answered with its choice
        answer = await listener.set_output("captions")
        assert (answer.type, answer.session_id, answer.output) == ("outputSet", speaker.session_id, "captions")
        # And an output the service does not know is refused naming the field
        with pytest.raises(ServiceRefused) as refused:
            await listener.set_output("speech")
        assert (refused.value.error.code, refused.value.error.field) == ("INVALID_PARAMETERS", "output")
        # And a URL with one is refused at the handshake
        with pytest.raises(HandshakeRefused) as bad_join:
            await ListenerClient.join(service.url, session_id=speaker.session_id, language="es", output="loud")
        assert bad_join.value.status == 400
        assert (await speaker.status()).listener_count == 1
        for client in (speaker, listener):
            await client.close()

    run(scenario)
