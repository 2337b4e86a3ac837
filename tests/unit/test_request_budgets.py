"""DynamoDB requests per operation, counted with a botocore event hook: the deterministic budgets.

createSession 1, and the same over HTTP (``POST /sessions``; ``GET`` and ``PATCH /sessions/{id}`` 1 each); join on
$connect 1 (2 the first time a process sees the session: its source language and tier are read once), as a message 2
(3 the first time: the count is read after the transaction); a status push 1 read, 1 index page, 1 write (a batch with
nothing to push: the read); heartbeat 0, and 1 when the 2-hour notices start; leave and listener disconnect 2;
updateSessionConfig 1 (2 the first time a process serves a speaker that does not name its session); endSession with N
listeners 1 + 1 lookup + one query per page of the listener index; a broadcast action 1 (2 the first time a process
serves a speaker that does not name its session) + one query per page of the listener index when it changed the state;
changeLanguage 1; pausePlayback / resumePlayback / setOutput 1 (the listener's row updated); sendAudio 1 write per
chunk, plus the session read at most once per second (and the connection's session looked up once per process when the
chunk does not name it), the same for an unnumbered chunk and for audioChunk (placed by its arrival: no read of what
came before); a chunk dropped while paused writes nothing. Captions: the listener index read once per audience window
(one query per page) with its listeners' delivery choices (one BatchGetItem per 100 rows: the index projects keys
only, and the choices live on the rows), whatever the number of segments, and one post per listener and segment;
speech: per final segment spoken, one counter write for all its languages, one synthesis and one put per language, one
post per listener who wants audio, and nothing at all when nobody does; a downstream broadcast to one language one
query page of that language's entries (none when its listeners are given). The transcript: at most one BatchWriteItem
per final segment (the finals waiting when a write starts share it), none for a partial, and never a read.
A ``$connect`` with a source address costs one more the first time a process handles one (the secret that keys
addresses is read, then cached), two more for the deployment's very first one (the secret is created). The
sweeper's gauges: one BatchGetItem per 100 sessions of its index.

A session with seat shards (a cap above 500, decision record 0040): a join is one transaction once the session is
known (a full or conflicting shard adds an attempt, a full one a read of its seats), as a message one BatchGetItem
of its seats for the count; its status one read of its seats whatever its audience; leave 2; changeLanguage the
row's refused update and one transaction; ending closes each seat (one UpdateItem each), reads its seats and queries
only the shards whose seats count listeners; a caption window likewise (a session of 10 listeners on 100 shards: one
BatchGetItem of the seats, at most 10 queries, not 100). Every budget above is that of a session of one shard,
unchanged.
"""

from __future__ import annotations

import base64
import time

import pytest

from lambda_src import downstream, runtime
from lambda_src.adapters.repositories import dynamodb
from lambda_src.adapters.repositories import sessions as sessions_repository
from lambda_src.adapters.translation.stand_in import StandInTranslator
from lambda_src.app import captions
from lambda_src.app import sweeper as app_sweeper
from lambda_src.app.transcription.delivery import SegmentDelivery
from lambda_src.contract import http_api, limits
from lambda_src.handlers import connect, disconnect, message, status, sweeper
from lambda_src.handlers import http_api as http_handler
from lambda_src.model.broadcast import BroadcastChange
from lambda_src.model.partial_result_processor import Segment
from tests.support.helpers import (
    DynamoDBRequests,
    body_of,
    connect_event,
    disconnect_event,
    http_event,
    message_event,
    new_connection_id,
)
from tests.unit.flows import Clock

SESSION_ID = "golden-eagle-427"
JOIN = {"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es"}


def join(connection_id: str | None = None) -> str:
    connection_id = connection_id or new_connection_id()
    assert connect.handler(connect_event(JOIN, connection_id=connection_id), None)["statusCode"] == 200
    return connection_id


def send(connection_id: str, **body: object) -> dict:
    return body_of(message.handler(message_event(body, connection_id=connection_id), None))


def test_create_session_costs_one_request(tables) -> None:
    with DynamoDBRequests() as requests:
        response = connect.handler(
            connect_event({"action": "createSession", "sourceLanguage": "en"}, user_id="speaker"), None
        )
    assert response["statusCode"] == 200
    assert requests.by_operation == {"TransactWriteItems": 1}


def test_create_session_over_http_costs_one_request_and_reading_or_updating_it_one_each(tables) -> None:
    # The same one transaction as createSession (no connection row in it)
    with DynamoDBRequests() as creation:
        response = http_handler.handler(
            http_event(http_api.CREATE_SESSION.key, {"sourceLanguage": "en"}, user_id="speaker"), None
        )
    assert response["statusCode"] == 201, response
    assert creation.by_operation == {"TransactWriteItems": 1}
    session_id = body_of(response)["sessionId"]
    runtime.reset()  # another process: nothing of the session cached
    with DynamoDBRequests() as reading:
        read = http_handler.handler(http_event(http_api.GET_SESSION.key, user_id="x", session_id=session_id), None)
    assert read["statusCode"] == 200
    assert reading.by_operation == {"GetItem": 1}
    with DynamoDBRequests() as updating:
        update = {"minStability": 0.7}
        changed = http_handler.handler(
            http_event(http_api.UPDATE_SESSION.key, update, user_id="speaker", session_id=session_id), None
        )
    assert changed["statusCode"] == 200
    assert updating.by_operation == {"UpdateItem": 1}


def test_a_source_address_costs_one_request_the_first_time_a_process_meets_one(tables) -> None:
    def create(source_ip: str) -> None:
        event = connect_event(
            {"action": "createSession", "sourceLanguage": "en"}, user_id="speaker", source_ip=source_ip
        )
        assert connect.handler(event, None)["statusCode"] == 200

    # The deployment's first connection with a source address creates the secret that keys addresses
    with DynamoDBRequests() as deployment_first:
        create("198.51.100.1")
    runtime.reset()  # another process
    with DynamoDBRequests() as process_first:
        create("198.51.100.2")
    with DynamoDBRequests() as later:
        create("198.51.100.3")
    assert deployment_first.by_operation == {"GetItem": 1, "PutItem": 1, "TransactWriteItems": 1}
    assert process_first.by_operation == {"GetItem": 1, "TransactWriteItems": 1}
    assert later.by_operation == {"TransactWriteItems": 1}


def test_join_costs_one_request_once_the_session_is_known(tables) -> None:
    tables.put_session(sessionId=SESSION_ID)
    with DynamoDBRequests() as first:
        join()
    with DynamoDBRequests() as later:
        join()
    assert first.by_operation == {"GetItem": 1, "TransactWriteItems": 1}
    assert later.by_operation == {"TransactWriteItems": 1}


def test_heartbeat_costs_nothing_until_the_refresh_notice_which_costs_one(tables, gateway) -> None:
    connection_id = new_connection_id()
    assert connect.handler(connect_event(None, connection_id=connection_id), None)["statusCode"] == 200
    old = time.time_ns() // 1_000_000 - limits.REFRESH_REQUIRED_AT_MINUTES * 60_000
    with DynamoDBRequests() as fresh:
        assert send(connection_id, action="heartbeat")["type"] == "heartbeatAck"
    with DynamoDBRequests() as near_limit:
        response = message.handler(
            message_event({"action": "heartbeat"}, connection_id=connection_id, connected_at_ms=old), None
        )
    assert body_of(response)["type"] == "heartbeatAck"
    assert fresh.total == 0
    assert near_limit.by_operation == {"UpdateItem": 1}


@pytest.mark.parametrize("how", ["leaveSession", "$disconnect"])
def test_leave_and_listener_disconnect_cost_two_requests(tables, how: str) -> None:
    tables.put_session(sessionId=SESSION_ID)
    listener = join()
    with DynamoDBRequests() as requests:
        if how == "leaveSession":
            assert send(listener, action="leaveSession")["type"] == "sessionLeft"
        else:
            disconnect.handler(disconnect_event(listener), None)
    assert requests.by_operation == {"GetItem": 1, "TransactWriteItems": 1}
    assert tables.session(SESSION_ID)["listenerCount"] == 0


def test_update_session_config_costs_one_request_when_the_session_is_named_or_known(tables) -> None:
    # Given a session created on $connect by another process (this one has seen neither it nor its speaker)
    connect.handler(
        connect_event({"action": "createSession", "sourceLanguage": "en"}, connection_id="speaker-conn", user_id="u"),
        None,
    )
    (session,) = tables.sessions_items()
    runtime.reset()
    with DynamoDBRequests() as named:
        assert (
            send("speaker-conn", action="updateSessionConfig", sessionId=session["sessionId"], minStability=0.9)["type"]
            == "sessionConfigUpdated"
        )
    with DynamoDBRequests() as first_unnamed:
        assert send("speaker-conn", action="updateSessionConfig", minStability=0.8)["type"] == "sessionConfigUpdated"
    with DynamoDBRequests() as later_unnamed:
        assert send("speaker-conn", action="updateSessionConfig", minStability=0.75)["type"] == "sessionConfigUpdated"
    assert named.by_operation == {"UpdateItem": 1}
    assert first_unnamed.by_operation == {"GetItem": 1, "UpdateItem": 1}
    assert later_unnamed.by_operation == {"UpdateItem": 1}


@pytest.mark.parametrize("listeners", [0, 1, 3, 5])
def test_end_session_grows_with_the_audience_only_by_index_pages(
    tables, gateway, monkeypatch: pytest.MonkeyPatch, listeners: int
) -> None:
    # Given index pages of two listeners (so a handful of listeners spans several pages)
    monkeypatch.setattr(limits, "FANOUT_PAGE_SIZE", 2)
    tables.put_session(sessionId=SESSION_ID, speakerConnectionId="speaker-conn")
    for _ in range(listeners):
        join()
    with DynamoDBRequests() as requests:
        ended = send("speaker-conn", action="endSession", sessionId=SESSION_ID)
    assert ended["type"] == "sessionEnded"
    pages = listeners // 2 + 1
    assert requests.by_operation == {"TransactWriteItems": 1, "Query": pages}
    assert len(gateway.closed()) == listeners


@pytest.mark.parametrize("sessions", [0, 1, 4, 5])
def test_the_sweeps_levels_cost_one_batch_get_per_hundred_indexed_sessions_and_each_periodic_status_one_query(
    tables, gateway, monkeypatch: pytest.MonkeyPatch, sessions: int
) -> None:
    # Given batches of two keys (so a handful of sessions spans several), and sessions none of which is due
    monkeypatch.setattr(sessions_repository, "BATCH_GET_SIZE", 2)
    monkeypatch.setattr(app_sweeper, "reconcile_round", lambda _session_id: -1)  # (no listener probe now)
    in_an_hour = int(time.time()) + 3600
    for index in range(sessions):
        # (created a minute ago: its speaker has settled, so the sweep pushes it a periodic status)
        tables.put_session(
            sessionId=f"golden-eagle-{101 + index}", sweepAt=in_an_hour, createdAt=(in_an_hour - 3660) * 1000
        )
    # When the sweeper runs
    with DynamoDBRequests() as requests:
        assert sweeper.handler({"source": "aws.events"}, None) == {"ended": 0}
    # Then the levels cost one BatchGetItem per batch of indexed sessions, beside the index's one Scan page, and
    # each connected speaker's periodic status one query of its (one-page) listener index, and one post
    batches = -(-sessions // 2)
    assert requests.by_operation == {
        "Scan": 1,
        **({"BatchGetItem": batches, "Query": sessions} if batches else {}),
    }
    assert [message["updateReason"] for _target, message in gateway.posts()] == ["periodic"] * sessions


BROADCAST_ACTIONS = [
    ({"action": "pauseBroadcast"}, {"action": "resumeBroadcast"}),
    ({"action": "muteBroadcast"}, {"action": "unmuteBroadcast"}),
    ({"action": "setVolume", "volumeLevel": 0.5}, {"action": "setVolume", "volumeLevel": 1}),
    (
        {"action": "speakerStateChange", "state": {"isPaused": True}},
        {"action": "speakerStateChange", "state": {"isPaused": False}},
    ),
]


@pytest.mark.parametrize(("change", "undo"), BROADCAST_ACTIONS, ids=lambda body: body["action"])
@pytest.mark.parametrize("listeners", [0, 3])
def test_a_broadcast_action_costs_one_write_and_the_index_pages_only_when_it_changed_something(
    tables, gateway, monkeypatch: pytest.MonkeyPatch, change: dict, undo: dict, listeners: int
) -> None:
    # Given index pages of two listeners, and a session created on $connect by another process
    monkeypatch.setattr(limits, "FANOUT_PAGE_SIZE", 2)
    connect.handler(
        connect_event({"action": "createSession", "sourceLanguage": "en"}, connection_id="speaker-conn", user_id="u"),
        None,
    )
    (session,) = tables.sessions_items()
    session_id = session["sessionId"]
    for _ in range(listeners):
        join_session(session_id)
    runtime.reset()
    pages = listeners // 2 + 1
    with DynamoDBRequests() as first_unnamed:
        assert send("speaker-conn", **change)["type"] == "broadcastState"
    with DynamoDBRequests() as repeated:
        assert send("speaker-conn", **change)["type"] == "broadcastState"
    with DynamoDBRequests() as named:
        assert send("speaker-conn", **undo, sessionId=session_id)["type"] == "broadcastState"
    assert first_unnamed.by_operation == {"GetItem": 1, "UpdateItem": 1, "Query": pages}
    assert repeated.by_operation == {"UpdateItem": 1}
    assert named.by_operation == {"UpdateItem": 1, "Query": pages}


def join_session(session_id: str) -> str:
    connection_id = new_connection_id()
    query = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
    assert connect.handler(connect_event(query, connection_id=connection_id), None)["statusCode"] == 200
    return connection_id


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"action": "changeLanguage", "targetLanguage": "de"}, {"UpdateItem": 1}),
        ({"action": "switchLanguage", "targetLanguage": "fr"}, {"UpdateItem": 1}),
        ({"action": "pausePlayback"}, {"UpdateItem": 1}),
        ({"action": "resumePlayback"}, {"UpdateItem": 1}),
        ({"action": "setOutput", "output": "captions"}, {"UpdateItem": 1}),
    ],
    ids=lambda value: value.get("action", "") if isinstance(value, dict) and "action" in value else "",
)
def test_a_listener_control_costs_one_request(tables, body: dict, expected: dict) -> None:
    tables.put_session(sessionId=SESSION_ID)
    listener = join()
    with DynamoDBRequests() as requests:
        assert send(listener, **body)["type"] != "error"
    assert requests.by_operation == expected
    assert tables.session(SESSION_ID)["listenerCount"] == 1


def test_a_speakers_refresh_costs_the_same_with_its_state_restored(tables) -> None:
    # Given a paused session (its state is restored on the new connection)
    tables.put_session(sessionId=SESSION_ID, isPaused=True)
    query = {"action": "refreshConnection", "sessionId": SESSION_ID, "role": "speaker"}
    with DynamoDBRequests() as requests:
        connection_id = new_connection_id()
        assert (
            connect.handler(connect_event(query, connection_id=connection_id, user_id="user-1"), None)["statusCode"]
            == 200
        )
    assert requests.by_operation == {"GetItem": 1, "TransactWriteItems": 1}
    assert runtime.connections().get(connection_id).welcome_then  # type: ignore[union-attr]


def test_join_by_message_costs_two_requests_once_the_session_is_known(tables) -> None:
    # (the session is read after the transaction for sessionJoined's listenerCount)
    tables.put_session(sessionId=SESSION_ID)
    opened = [new_connection_id() for _ in range(2)]
    for connection_id in opened:
        assert connect.handler(connect_event(None, connection_id=connection_id), None)["statusCode"] == 200
    runtime.reset()
    with DynamoDBRequests() as first:
        assert send(opened[0], **JOIN)["listenerCount"] == 1
    with DynamoDBRequests() as later:
        assert send(opened[1], **JOIN)["listenerCount"] == 2
    assert first.by_operation == {"GetItem": 2, "TransactWriteItems": 1}
    assert later.by_operation == {"GetItem": 1, "TransactWriteItems": 1}


def test_a_status_push_costs_a_read_a_query_page_and_a_write(tables, gateway) -> None:
    # Given a session's first listener row, as the stream carries it
    tables.put_session(sessionId=SESSION_ID)
    listener = join()
    row = runtime.connections().get(listener)
    assert row is not None
    records = [{"eventName": "INSERT", "dynamodb": {"NewImage": dynamodb.serialize(row.to_item())}}]
    # When the status function handles it
    with DynamoDBRequests() as requests:
        assert status.handler({"Records": records}, None) == {"pushed": 1}
    # Then the push cost one read of the session, one index page, one write and one post
    assert requests.by_operation == {"GetItem": 1, "Query": 1, "UpdateItem": 1}
    assert len(gateway.posts()) == 1


AUDIO_DATA = base64.b64encode(b"\x00\x01" * 1600).decode("ascii")  # 100 ms at 16 kHz


def _audio_speaker(tables, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int, Clock]:
    """A session created on $connect by another process; (session id, the speaker's connectedAt, the clock)."""
    clock = Clock.install(monkeypatch)
    query = {"action": "createSession", "sourceLanguage": "en"}
    event = connect_event(query, connection_id="speaker-conn", user_id="u", connected_at_ms=clock.now_ms)
    assert connect.handler(event, None)["statusCode"] == 200
    runtime.reset()
    (session,) = tables.sessions_items()
    return session["sessionId"], clock.now_ms, clock


def _chunk(sequence_number: int, connected_at_ms: int, **fields: object) -> dict:
    body = {"action": "sendAudio", "audioData": AUDIO_DATA, "sequenceNumber": sequence_number, **fields}
    event = message_event(body, connection_id="speaker-conn", connected_at_ms=connected_at_ms)
    return body_of(message.handler(event, None))


@pytest.mark.parametrize("named", [False, True], ids=["session-of-the-connection", "session-named"])
def test_chunks_within_a_second_cost_one_put_each_and_the_session_is_read_once(
    tables, monkeypatch: pytest.MonkeyPatch, named: bool
) -> None:
    session_id, connected_at, clock = _audio_speaker(tables, monkeypatch)
    chunks = 10
    fields = {"sessionId": session_id} if named else {}
    with DynamoDBRequests() as within_a_second:
        for sequence_number in range(chunks):
            assert _chunk(sequence_number, connected_at, **fields)["accepted"] is True
            clock.advance(limits.AUDIO_SESSION_CACHE_MS / 1000 / (chunks + 1))
    # The session read once, and the connection's session looked up once when the chunk does not name it.
    assert within_a_second.by_operation == {"PutItem": chunks, "GetItem": 1 if named else 2}
    clock.advance(limits.AUDIO_SESSION_CACHE_MS / 1000)
    with DynamoDBRequests() as next_second:
        for sequence_number in range(chunks, 2 * chunks):
            assert _chunk(sequence_number, connected_at, **fields)["accepted"] is True
    assert next_second.by_operation == {"PutItem": chunks, "GetItem": 1}


def test_an_unnumbered_audio_chunk_costs_one_put_as_send_audio_does(tables, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the speaker app's chunks: no sequence number, the session named, the format spelt out
    session_id, connected_at, clock = _audio_speaker(tables, monkeypatch)
    chunks = 10
    body = {
        "action": "audioChunk",
        "sessionId": session_id,
        "audioData": AUDIO_DATA,
        "format": "pcm",
        "sampleRate": 16000,
        "channels": 1,
        "encoding": "s16le",
    }
    with DynamoDBRequests() as within_a_second:
        for index in range(chunks):
            event = message_event(
                {**body, "timestamp": clock.now_ms},
                connection_id="speaker-conn",
                route_key="audioChunk",
                connected_at_ms=connected_at,
                request_time_ms=clock.now_ms,
            )
            assert body_of(message.handler(event, None)) == {"type": "audioReceived", "accepted": True}, index
            clock.advance(limits.AUDIO_SESSION_CACHE_MS / 1000 / (chunks + 1))
    # Then each chunk is one write, and the session is read once: placing a chunk by its arrival reads nothing
    assert within_a_second.by_operation == {"PutItem": chunks, "GetItem": 1}
    assert len(tables.audio_chunks_items()) == chunks


def test_a_pause_takes_effect_within_a_second_and_dropped_chunks_write_nothing(
    tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id, connected_at, clock = _audio_speaker(tables, monkeypatch)
    assert _chunk(0, connected_at)["accepted"] is True
    # Paused through another process: this one still holds what it read.
    runtime.sessions().update_broadcast(session_id, "speaker-conn", BroadcastChange(is_paused=True), clock.now_s)
    clock.advance(limits.AUDIO_SESSION_CACHE_MS / 1000 / 2)
    assert _chunk(1, connected_at)["accepted"] is True  # within the cache's lifetime
    clock.advance(limits.AUDIO_SESSION_CACHE_MS / 1000 / 2)
    with DynamoDBRequests() as paused:
        for sequence_number in range(2, 12):
            assert _chunk(sequence_number, connected_at) == {
                "type": "audioReceived",
                "sequenceNumber": sequence_number,
                "accepted": False,
                "reason": "paused",
            }
    assert paused.by_operation == {"GetItem": 1}
    assert [chunk["sequenceNumber"] for chunk in tables.audio_chunks_items()] == [0, 1]


@pytest.mark.parametrize("listeners", [1, 5])
def test_captions_read_the_listener_index_once_per_audience_window_and_post_once_per_listener(
    tables, gateway, monkeypatch: pytest.MonkeyPatch, listeners: int
) -> None:
    # Given index pages of two listeners, and listeners in the source language and two others
    monkeypatch.setattr(limits, "FANOUT_PAGE_SIZE", 2)
    tables.put_session(sessionId=SESSION_ID, sourceLanguage="en")
    languages = ["en", "es", "de"]
    for index in range(listeners):
        join_session_in(SESSION_ID, languages[index % len(languages)])
    pages = listeners // 2 + 1
    segments = 10
    window_ms = limits.CAPTION_AUDIENCE_CACHE_SECONDS * 1000
    start = time.time_ns() // 1_000_000
    with captions.CaptionDelivery(SESSION_ID, "en", StandInTranslator()) as delivery:
        # When segments arrive within one audience window (partials come up to 5 a second)
        with DynamoDBRequests() as one_window:
            for n in range(segments):
                delivery.deliver(segment_of(n), start + n * (window_ms // segments))
        with DynamoDBRequests() as next_window:
            delivery.deliver(segment_of(segments), start + window_ms)
    # Then the listener index is read once per window (one query per page) with the listeners' delivery choices
    # (one BatchGetItem per 100 rows: the index projects keys only), nothing else; one post per listener
    assert one_window.by_operation == {"Query": pages, "BatchGetItem": 1}
    assert next_window.by_operation == {"Query": pages, "BatchGetItem": 1}
    assert len(gateway.posts()) == listeners * (segments + 1)


def test_a_final_segment_costs_at_most_one_batched_transcript_write_and_the_transcript_is_never_read(
    tables, gateway
) -> None:
    # Given a session with listeners in two languages
    tables.put_session(sessionId=SESSION_ID, sourceLanguage="en")
    join_session_in(SESSION_ID, "es")
    join_session_in(SESSION_ID, "de")
    session = runtime.sessions().get(SESSION_ID, None)
    assert session is not None
    segments = [segment_of(n) for n in range(12)]  # 8 partials and 4 finals, within one audience window
    finals = sum(not segment.is_partial for segment in segments)
    start = time.time_ns() // 1_000_000
    # When they are delivered (captions and transcript), and the delivery closes (its writes done)
    with DynamoDBRequests() as requests, SegmentDelivery(StandInTranslator) as delivery:
        for n, segment in enumerate(segments):
            delivery(session, segment, start + n)
    # Then the audience was read once (one index page, the choices of its rows), and each final cost at most one
    # write, partials none
    writes = requests.by_operation.pop("BatchWriteItem")
    assert 1 <= writes <= finals
    assert requests.by_operation == {"Query": 1, "BatchGetItem": 1}
    assert len(tables.transcripts_items()) == finals


def test_a_downstream_broadcast_reads_one_languages_index_entries(tables, gateway) -> None:
    tables.put_session(sessionId=SESSION_ID)
    spanish = [join_session_in(SESSION_ID, "es") for _ in range(3)]
    join_session_in(SESSION_ID, "de")
    with DynamoDBRequests() as read_from_the_index:
        report = downstream.broadcast(SESSION_ID, "es", {"type": "audioSegment", "sessionId": SESSION_ID})
    with DynamoDBRequests() as listeners_given:
        downstream.broadcast(SESSION_ID, "es", {"type": "audioSegment", "sessionId": SESSION_ID}, listeners=spanish)
    assert read_from_the_index.by_operation == {"Query": 1}
    assert listeners_given.total == 0
    assert report.delivered == 3
    assert len(gateway.posts()) == 6


def join_session_in(session_id: str, language: str) -> str:
    connection_id = new_connection_id()
    query = {"action": "joinSession", "sessionId": session_id, "targetLanguage": language}
    assert connect.handler(connect_event(query, connection_id=connection_id), None)["statusCode"] == 200
    return connection_id


def segment_of(n: int) -> Segment:
    return Segment(segment_id=f"seg-{n // 3}", text=f"Words {n}", is_partial=n % 3 != 2, stability=0.9, start_time=n)


# -- a session with seat shards (decision record 0040) -------------------------------------------------------------
SHARDS = 10


@pytest.fixture
def big_session(tables, monkeypatch: pytest.MonkeyPatch):
    """A session created under a cap of 1,000: ten seat shards of 100."""
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", "1000")
    runtime.reset()
    tables.put_session(sessionId=SESSION_ID, seatShards=SHARDS, speakerConnectionId="speaker-conn")
    return tables


def test_a_big_sessions_join_costs_one_transaction_once_the_session_is_known(big_session) -> None:
    with DynamoDBRequests() as first:
        join()
    with DynamoDBRequests() as later:
        join()
    assert first.by_operation == {"GetItem": 1, "TransactWriteItems": 1}
    assert later.by_operation == {"TransactWriteItems": 1}


def test_a_big_sessions_join_by_message_reads_its_count_from_its_seats_in_one_request(big_session) -> None:
    join()
    opened = new_connection_id()
    assert connect.handler(connect_event(None, connection_id=opened), None)["statusCode"] == 200
    with DynamoDBRequests() as requests:
        assert send(opened, **JOIN)["listenerCount"] == 2
    assert requests.by_operation == {"TransactWriteItems": 1, "BatchGetItem": 1}


def test_a_big_sessions_status_costs_one_read_of_its_seats_whatever_its_audience(big_session, gateway) -> None:
    for _ in range(5):
        join()
    with DynamoDBRequests() as requests:
        reply = send("speaker-conn", action="getSessionStatus", sessionId=SESSION_ID)
    assert reply["listenerCount"] == 5
    assert requests.by_operation == {"GetItem": 1, "BatchGetItem": 1}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"action": "leaveSession"}, {"GetItem": 1, "TransactWriteItems": 1}),
        # The row's own update, refused because it holds a seat (it returns the row), then one transaction
        ({"action": "changeLanguage", "targetLanguage": "de"}, {"UpdateItem": 1, "TransactWriteItems": 1}),
        ({"action": "setOutput", "output": "captions"}, {"UpdateItem": 1}),
    ],
    ids=["leaveSession", "changeLanguage", "setOutput"],
)
def test_a_big_sessions_listener_actions(big_session, body: dict, expected: dict) -> None:
    listener = join()
    with DynamoDBRequests() as requests:
        assert send(listener, **body)["type"] != "error"
    assert requests.by_operation == expected


def test_ending_a_big_session_closes_each_seat_and_reads_the_occupied_shards_index(big_session, gateway) -> None:
    join()
    runtime.reset()  # a process that has not seen the session
    with DynamoDBRequests() as requests:
        assert send("speaker-conn", action="endSession", sessionId=SESSION_ID)["type"] == "sessionEnded"
    # The ending made on the guess of one shard (refused: it has seats), made again; each seat closed; the seats
    # read, and the one shard's index key with a listener
    assert requests.by_operation == {"TransactWriteItems": 2, "UpdateItem": SHARDS, "BatchGetItem": 1, "Query": 1}


def test_a_ten_listener_session_on_a_hundred_shards_reads_only_its_listeners_shards_per_caption_window(
    tables, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a session created under the 10,000 ceiling (100 seat shards) with 10 listeners
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", "10000")
    runtime.reset()
    tables.put_session(sessionId=SESSION_ID, seatShards=100, sourceLanguage="en", speakerConnectionId="speaker-conn")
    for _ in range(10):
        join()
    session = runtime.sessions().get(SESSION_ID, None)
    assert session is not None
    start = time.time_ns() // 1_000_000
    # When a window of segments is captioned
    with DynamoDBRequests() as window, SegmentDelivery(StandInTranslator) as delivery:
        for n in range(4):
            delivery(session, segment_of(n * 3), start + n)  # partials
    # Then one read of the seats, one query per shard with a listener (at most 10, not 100), one read of the choices
    queries = window.by_operation.pop("Query")
    assert 1 <= queries <= 10
    assert window.by_operation == {"BatchGetItem": 2}
    assert len([post for post in gateway.posts() if post[1]["type"] == "caption"]) == 10 * 4
