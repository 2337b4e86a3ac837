"""The fan-out per shard (decision record 0040): a big session's segments handed by the consumer to the fan-out
function, and its notices and dismissals by the route that raises them, one asynchronous invocation per group of
occupied shards, each posting its shards' listeners (moto tables, the recording ``@connections`` fake; Lambda's Invoke
recorded, the invocations then run through the handler)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from lambda_src import runtime
from lambda_src.adapters import fanout_function
from lambda_src.adapters.repositories.connections import Connection
from lambda_src.adapters.translation.stand_in import StandInTranslator
from lambda_src.app import captions, seats, shard_fanout, speaker
from lambda_src.app.transcription.delivery import SegmentDelivery
from lambda_src.contract import function_settings, limits, wire
from lambda_src.contract.schema import ROLE_SPEAKER
from lambda_src.handlers import fanout
from lambda_src.model.partial_result_processor import Segment
from lambda_src.model.session import Seat, Session
from lambda_src.protocol import messages
from tests.support.helpers import DynamoDBRequests, body_of
from tests.unit.conftest import Speech
from tests.unit.flows import SESSION_ID, deliver_disconnects, handshake_done_ms, join, send

SHARDS = 6  # of two seats: a cap of 12
LOCAL = 3  # the consumer posts an audience of at most 3 itself
GROUP = 4  # an invocation posts at most 4 listeners: two full shards
LEASE_ID = "lease-1"
SPEAKER = "speaker-conn"  # put_session's default speakerConnectionId


class Invocations:
    """Lambda's asynchronous Invoke of the fan-out function, recorded; :meth:`run` runs them through the handler."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.sizes: list[int] = []
        self.refusing = False

    def invoke(self, payload: bytes) -> None:
        if self.refusing:
            raise RuntimeError("Lambda refused the event")
        self.sizes.append(len(payload))
        self.events.append(json.loads(payload))

    def run(self) -> list[dict[str, Any]]:
        results = [fanout.handler(event, None) for event in self.events]
        self.events.clear()
        return results


@pytest.fixture
def invocations(monkeypatch: pytest.MonkeyPatch) -> Invocations:
    recorded = Invocations()
    monkeypatch.setattr(fanout_function, "invoke", recorded.invoke)
    shard_fanout.forget()
    return recorded


@pytest.fixture
def big(tables, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A session of six seat shards of two seats, a local threshold of 3 listeners and groups of 4; joins take the
    lowest shard with room (deterministic)."""
    monkeypatch.setattr(limits, "ONE_SHARD_MAX_LISTENERS", 2)
    monkeypatch.setattr(limits, "SEATS_PER_SHARD", 2)
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", str(2 * SHARDS))
    monkeypatch.setenv(function_settings.ENV_LOCAL_FANOUT_LISTENERS, str(LOCAL))
    monkeypatch.setenv(function_settings.ENV_FANOUT_GROUP_LISTENERS, str(GROUP))
    monkeypatch.setattr(seats.random, "choice", min)
    runtime.reset()
    now_ms = time.time_ns() // 1_000_000
    tables.put_session(
        sessionId=SESSION_ID,
        sourceLanguage="en",
        seatShards=SHARDS,
        transcriberLeaseId=LEASE_ID,
        transcriberLeaseUntil=now_ms + 60_000,
    )
    return tables


def speaker_row() -> None:
    """The big session's speaker connection row (the session item names it)."""
    runtime.connections().put(
        Connection(SPEAKER, messages.now_ms(), role=ROLE_SPEAKER, user_id="user-1", session_id=SESSION_ID)
    )


def session() -> Session:
    read = runtime.sessions().get(SESSION_ID, None)
    assert read is not None
    return read


def listeners(languages: list[str]) -> list[str]:
    return [join(language=language, connected_at_ms=handshake_done_ms()) for language in languages]


def final(n: int) -> Segment:
    return Segment(segment_id=f"s.{n}", text=f"Sentence {n}", is_partial=False, stability=None, start_time=float(n))


def deliver(segments: list[Segment], as_read: Session | None = None, step_ms: int = 1) -> None:
    """One consumer's delivery of ``segments`` (of the session as read now, or ``as_read``)."""
    as_read = as_read or session()
    start = time.time_ns() // 1_000_000
    with SegmentDelivery(StandInTranslator) as delivery:
        for n, segment in enumerate(segments):
            delivery(as_read, segment, start + n * step_ms)


def of_type(gateway, connection_id: str, kind: str) -> list[dict[str, Any]]:
    return [message for message in gateway.messages_to(connection_id) if message["type"] == kind]


def test_each_group_is_invoked_once_per_segment_with_its_shards_and_every_listener_gets_the_caption_once(
    big, gateway, invocations: Invocations
) -> None:
    # Given 10 listeners on shards 1-5 (two each): over the local threshold
    languages = ["es", "de", "es", "fr", "es", "de", "en", "es", "de", "fr"]
    audience = dict(zip(listeners(languages), languages, strict=True))
    # When a segment is delivered
    deliver([final(1)])
    # Then the consumer posted no caption itself and invoked each group of at most 4 listeners once, with the
    # messages of the languages its shards count, never the audience
    assert not [post for post in gateway.posts() if post[1]["type"] == "caption"]
    assert [event["shards"] for event in invocations.events] == [[1, 2], [3, 4], [5]]
    assert [sorted(event["messages"]) for event in invocations.events] == [
        ["de", "es", "fr"],
        ["de", "en", "es"],
        ["de", "fr"],
    ]
    assert all(
        set(event) == {"sessionId", "shards", "messages", "unspokenLanguages", "sentAtMs"}
        for event in invocations.events
    )
    # And once they run, every listener has the caption once, in its language
    results = invocations.run()
    assert sum(result["posted"] for result in results) == 10
    for connection_id, language in audience.items():
        (caption,) = of_type(gateway, connection_id, "caption")
        assert (caption["targetLanguage"], caption["segmentId"]) == (language, "s.1")
        assert caption["text"] == ("Sentence 1" if language == "en" else f"[{language}] Sentence 1")


def test_captions_only_and_audio_choices_are_honoured_and_speech_is_numbered_once_by_the_consumer(
    big, gateway, invocations: Invocations, speech: Speech
) -> None:
    # Given Spanish listeners wanting captions, audio, both (and one more of both, to pass the threshold)
    captions_only, audio_only, both, other = listeners(["es", "es", "es", "es"])
    assert body_of(send({"action": "setOutput", "output": "captions"}, captions_only))["type"] == "outputSet"
    assert body_of(send({"action": "setOutput", "output": "audio"}, audio_only))["type"] == "outputSet"
    # When two finals are delivered
    deliver([final(1), final(2)])
    # Then Spanish was synthesized once per segment, numbered 1 and 2 by the consumer, and handed off
    assert speech.synthesizer.languages_spoken() == ["es", "es"]  # once per segment
    audio_events = [event for event in invocations.events if event["messages"]["es"]["type"] == "translatedAudio"]
    assert [event["messages"]["es"]["sequenceNumber"] for event in audio_events] == [1, 2]  # one group of 4
    invocations.run()
    # And each listener got what it chose
    for connection_id in (captions_only, both, other):
        assert [c["segmentId"] for c in of_type(gateway, connection_id, "caption")] == ["s.1", "s.2"]
    assert of_type(gateway, audio_only, "caption") == []
    for connection_id in (audio_only, both, other):
        assert [a["sequenceNumber"] for a in of_type(gateway, connection_id, "translatedAudio")] == [1, 2]
    assert of_type(gateway, captions_only, "translatedAudio") == []


def test_a_gone_listener_is_counted_out_once_and_a_throttled_one_never(big, gateway, invocations: Invocations) -> None:
    # Given five listeners, one of which has vanished and one whose posts API Gateway keeps throttling
    audience = listeners(["es"] * 5)
    vanished, throttled = audience[0], audience[1]
    gateway.gone.add(vanished)
    gateway.failing[throttled] = "LimitExceededException"
    # When two segments are posted by the fan-out, within one audience window
    deliver([final(1)])
    first = invocations.run()
    deliver([final(2)])
    second = invocations.run()
    # Then the vanished listener was counted out by the first, once: its row removed, its seat counted down
    assert sum(result["gone"] for result in first) == 1
    assert sum(result["gone"] for result in second) == 0
    assert big.connection(vanished) is None
    assert seats.audience(session()).listener_count == 4
    # And the throttled one failed, was never taken for a departure, and is still counted
    assert sum(result["failed"] for result in first + second) == 2
    assert big.connection(throttled) is not None


def test_an_audience_at_the_threshold_is_posted_by_the_consumer_with_no_invocation(
    big, gateway, invocations: Invocations
) -> None:
    # Given 3 listeners (the local threshold) on shards 1 and 2
    audience = listeners(["es", "de", "es"])
    as_read = session()
    # When segments are delivered within one audience window
    with DynamoDBRequests() as requests:
        deliver([final(1), final(2)], as_read)
    # Then nothing was invoked; the consumer posted each caption itself, after one read of the seats, a query per
    # occupied shard and one read of the choices
    assert invocations.events == []
    for connection_id in audience:
        assert [c["segmentId"] for c in of_type(gateway, connection_id, "caption")] == ["s.1", "s.2"]
    writes = requests.by_operation.pop("BatchWriteItem", 0)  # the transcript's
    assert writes <= 2
    assert requests.by_operation == {"BatchGetItem": 2, "Query": 2}


def test_a_fanned_out_audiences_partials_are_paced_by_its_share_of_the_request_rate_and_finals_never(
    big, gateway, invocations: Invocations, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 10 listeners fanned out, and a partial budget of 10 posts a second: one partial a second at most
    monkeypatch.setattr(limits, "FANOUT_PARTIAL_POSTS_PER_SECOND", 10)
    listeners(["es"] * 10)
    partial = Segment(segment_id="s.1", text="Sentence", is_partial=True, stability=0.5, start_time=1.0)
    # When four partials come 400 ms apart, then the final
    deliver([partial, partial, partial, partial, final(1)], step_ms=400)
    # Then the partials at 0 and 1,200 ms were handed off (400 and 800 ms were too soon), and the final at once
    handed = [event["messages"]["es"]["isPartial"] for event in invocations.events if event["shards"] == [1, 2]]
    assert handed == [True, True, False]
    assert captions.partial_pace_ms(10) == 1_000


def test_the_partials_of_10000_listeners_come_every_4_s_and_of_2000_every_800_ms() -> None:
    # A quarter of the account's 10,000 requests a second (decision record 0040)
    assert (captions.partial_pace_ms(10_000), captions.partial_pace_ms(2_000)) == (4_000, 800)


def test_a_worker_reads_each_shard_once_per_audience_window(big, gateway, invocations: Invocations) -> None:
    listeners(["es"] * 6)  # shards 1-3: groups [1, 2] and [3]
    deliver([final(1), final(2), final(3)])
    assert len(invocations.events) == 3 * 2
    with DynamoDBRequests() as requests:
        invocations.run()
    # Each shard's index key once and its rows' choices once (a full shard's 100 rows: one BatchGetItem), whatever
    # the number of segments
    assert requests.by_operation == {"Query": 3, "BatchGetItem": 3}


def test_a_refused_invocation_is_logged_and_costs_only_that_segment(big, gateway, invocations: Invocations) -> None:
    audience = listeners(["es"] * 4)
    invocations.refusing = True
    deliver([final(1)])
    invocations.refusing = False
    deliver([final(2)])
    invocations.run()
    for connection_id in audience:
        assert [c["segmentId"] for c in of_type(gateway, connection_id, "caption")] == ["s.2"]


def test_an_event_too_old_is_dropped_unposted(big, gateway, invocations: Invocations) -> None:
    listeners(["es"] * 4)
    deliver([final(1)])
    for event in invocations.events:
        event["sentAtMs"] -= (limits.FANOUT_EVENT_MAX_AGE_SECONDS + 1) * 1000
    assert all(result["stale"] for result in invocations.run())
    assert not [post for post in gateway.posts() if post[1]["type"] == "caption"]


def test_an_invalid_event_is_refused_without_posting(gateway) -> None:
    assert fanout.handler({"sessionId": SESSION_ID}, None) == {"stopped": "invalidEvent"}
    assert gateway.posts() == []


def test_the_events_stay_under_the_payload_limit_split_by_language() -> None:
    # Given a group whose segment's messages in 30 languages of ~30 KB each would make a 900 KB event
    languages = [f"l{n:02d}" for n in range(30)]
    plan = shard_fanout.plan(
        SESSION_ID,
        [
            Seat(1, count=600, by_language=dict.fromkeys(languages, 20)),
            Seat(2, count=600, by_language={"l00": 600}),
        ],
    )
    assert plan is not None
    by_language = {language: {"type": "caption", "text": "x" * 30_000} for language in languages}
    events = shard_fanout.events(plan, by_language, [], 0)
    # Then each event fits, and each group gets each of its languages exactly once
    assert all(len(payload) <= limits.FANOUT_EVENT_MAX_BYTES for _group, payload in events)
    assert [group.shards for group in plan.groups] == [(1,), (2,)]
    first = [
        language for group, payload in events if group.shards == (1,) for language in json.loads(payload)["messages"]
    ]
    second = [
        language for group, payload in events if group.shards == (2,) for language in json.loads(payload)["messages"]
    ]
    assert sorted(first) == languages
    assert second == ["l00"]
    assert len([1 for group, _ in events if group.shards == (1,)]) == 5  # 7 messages of ~30 KB an event


def test_the_default_thresholds_keep_every_session_of_up_to_500_listeners_with_the_consumer() -> None:
    hundred_shards = [Seat(k, count=5, by_language={"es": 5}) for k in range(1, 101)]
    assert shard_fanout.plan(SESSION_ID, hundred_shards) is None  # 500 listeners over 100 shards
    ten_thousand = [Seat(k, count=100, by_language={"es": 100}) for k in range(1, 101)]
    plan = shard_fanout.plan(SESSION_ID, ten_thousand)
    assert plan is not None
    assert [len(group.shards) for group in plan.groups] == [limits.SHARDS_PER_FANOUT] * 10
    assert {group.listeners for group in plan.groups} == {1000}


# -- notices and dismissals ------------------------------------------------------------------------------------------
def test_a_pause_to_a_big_audience_invokes_each_group_once_and_every_listener_gets_it_once(
    big, gateway, invocations: Invocations
) -> None:
    # Given 10 listeners on shards 1-5 (over the local threshold of 3) and the speaker
    audience = listeners(["es", "de", "es", "fr", "es", "de", "en", "es", "de", "fr"])
    speaker_row()
    # When the speaker pauses the broadcast
    reply = body_of(send({"action": "pauseBroadcast"}, SPEAKER))
    # Then the route answered without posting to any listener itself, and invoked each group of shards once with
    # the notice under each language its seats count, to post (never to close)
    assert reply["isPaused"] is True
    assert [post for post in gateway.posts() if post[0] != SPEAKER] == []
    assert [event["shards"] for event in invocations.events] == [[1, 2], [3, 4], [5]]
    assert [sorted(event["messages"]) for event in invocations.events] == [
        ["de", "es", "fr"],
        ["de", "en", "es"],
        ["de", "fr"],
    ]
    assert {message["type"] for event in invocations.events for message in event["messages"].values()} == {
        "broadcastPaused"
    }
    assert not any("close" in event for event in invocations.events)
    # And once the invocations run, every listener has the notice once, and none is closed
    results = invocations.run()
    assert sum(result["posted"] for result in results) == 10
    for connection_id in audience:
        assert gateway.types_to(connection_id) == ["broadcastPaused"]
    assert gateway.closed() == []


def test_a_notice_reaches_a_listener_who_joined_after_the_workers_last_read_of_the_audience(
    big, gateway, invocations: Invocations
) -> None:
    # Given 4 listeners whose shards' audience a worker read (and keeps) for a caption, then a fifth who joins
    listeners(["es"] * 4)
    speaker_row()
    deliver([final(1)])
    invocations.run()
    (late,) = listeners(["es"])
    # When the speaker pauses, within the kept audience's window
    send({"action": "pauseBroadcast"}, SPEAKER)
    invocations.run()
    # Then the notice was posted to the shards as they are now: the late listener has it
    assert gateway.types_to(late) == ["broadcastPaused"]


def test_an_ending_to_a_big_audience_invokes_with_close_and_every_listener_is_told_and_closed(
    big, gateway, invocations: Invocations
) -> None:
    # Given 10 listeners on shards 1-5 and the speaker
    audience = listeners(["es", "de", "es", "fr", "es", "de", "en", "es", "de", "fr"])
    speaker_row()
    # When the speaker ends the session
    reply = body_of(send({"action": "endSession", "sessionId": SESSION_ID}, SPEAKER))
    # Then the route answered without posting to or closing any listener itself: each group was invoked once, with
    # sessionEnded and the close flag
    assert reply["type"] == "sessionEnded"
    assert [post for post in gateway.posts() if post[0] != SPEAKER] == []
    assert gateway.closed() == []
    assert [event["shards"] for event in invocations.events] == [[1, 2], [3, 4], [5]]
    assert all(event["close"] is True for event in invocations.events)
    assert {message["type"] for event in invocations.events for message in event["messages"].values()} == {
        "sessionEnded"
    }
    # And once they run, every listener has sessionEnded once and its connection is closed; their $disconnects
    # count everyone out
    invocations.run()
    for connection_id in audience:
        assert gateway.types_to(connection_id) == ["sessionEnded"]
        assert gateway.messages_to(connection_id)[0]["reason"] == wire.ENDED_BY_SPEAKER
    assert sorted(gateway.closed()) == sorted(audience)
    deliver_disconnects(audience)
    assert seats.audience(session()).listener_count == 0


def test_a_dismissal_whose_invocations_were_lost_is_made_again_by_the_sweepers_revisit(
    big, gateway, invocations: Invocations
) -> None:
    # Given 10 listeners, and a session ended while Lambda refused every invocation
    audience = listeners(["es"] * 10)
    speaker_row()
    invocations.refusing = True
    send({"action": "endSession", "sessionId": SESSION_ID}, SPEAKER)
    invocations.refusing = False
    assert gateway.closed() == []
    # When the sweeper revisits the ended session
    ended = session()
    revisit = speaker.dismiss_listeners(
        SESSION_ID, wire.ENDED_BY_SPEAKER, messages.now_ms(), "ended session revisited", seating=ended.seating
    )
    # Then it counts the 10 as still to be dismissed (so it comes back while any is left), hands them off again,
    # and its invocations tell and close every one
    assert (revisit.reached, revisit.handed_off, revisit.listeners) == (10, 10, [])
    invocations.run()
    assert sorted(gateway.closed()) == sorted(audience)
    assert all(gateway.types_to(connection_id) == ["sessionEnded"] for connection_id in audience)


def test_an_old_dismissal_is_still_made(big, gateway, invocations: Invocations) -> None:
    audience = listeners(["es"] * 4)
    speaker_row()
    send({"action": "endSession", "sessionId": SESSION_ID}, SPEAKER)
    for event in invocations.events:
        event["sentAtMs"] -= (limits.FANOUT_EVENT_MAX_AGE_SECONDS + 1) * 1000
    assert not any(result["stale"] for result in invocations.run())
    assert sorted(gateway.closed()) == sorted(audience)


def test_notices_and_dismissals_to_an_audience_at_the_threshold_are_posted_by_the_route(
    big, gateway, invocations: Invocations
) -> None:
    # Given 3 listeners (the local threshold) on shards 1 and 2, and the speaker
    audience = listeners(["es", "de", "es"])
    speaker_row()
    # When the speaker pauses, then ends the session
    send({"action": "pauseBroadcast"}, SPEAKER)
    send({"action": "endSession", "sessionId": SESSION_ID}, SPEAKER)
    # Then nothing was invoked: the route told each listener both and closed it, as always
    assert invocations.events == []
    for connection_id in audience:
        assert gateway.types_to(connection_id) == ["broadcastPaused", "sessionEnded"]
    assert sorted(gateway.closed()) == sorted(audience)
