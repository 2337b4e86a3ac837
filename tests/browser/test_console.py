"""The web console of ``make local`` in a real browser: the speaker page creates a session and streams the fake
microphone's speech, a listener opens the share link and joins in Spanish, the speaker sees the audience, the
listener's page shows the Spanish captions and plays the translation spoken (real sound at its output, segment
after segment in order and without overlap), a setting out of range shows the server's refusal as it came, the
listener pauses its playback, a pause of the broadcast reaches the listener, ending closes both pages, and the
speaker page saves the session's WebVTT transcripts from the HTTP API, then deletes them."""

from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import webvtt
from playwright.sync_api import Browser, Dialog, Page, expect

from lambda_src.adapters.translation import stand_in
from lambda_src.contract import limits, partial_result_fields, schema, wire
from lambda_src.contract.errors import ServiceError
from lambda_src.contract.limits import SAMPLE_RATE_HZ
from lambda_src.model.recognizer import BYTES_PER_SAMPLE
from lambda_src.model.session import TRANSCRIBER_LEASE_ID_ATTRIBUTE
from lambda_src.protocol import validation
from local_run.console import CHUNK_MILLISECONDS
from tests.integration.conftest import RunningService
from tests.integration.test_lifecycle import eventually

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
UPDATE_SCREENSHOT = "UPDATE_CONSOLE_SCREENSHOT"  # set to refresh the README's screenshot from this test's run
# Pushed status reaches the speaker after the status function's batch window; the rest is one round trip.
AUDIENCE_SECONDS = limits.STATUS_BATCH_WINDOW_SECONDS + 10
STEP_MS = 10_000
# The fake microphone loops the spoken WAV; a caption needs an utterance that starts after the listener joined
# (and the consumer's audience to be read again, CAPTION_AUDIENCE_CACHE_SECONDS).
SPEECH_MS = 30_000
ACCEPTED_CHUNKS = 5
CHUNK_BYTES = SAMPLE_RATE_HZ * CHUNK_MILLISECONDS // 1000 * BYTES_PER_SAMPLE
SPEECH_PEAK = 1000  # of 32767: espeak-ng's voice peaks far above it; a silent or broken capture stays at 0
# The listener page's playback (window.listenerAudio): segments heard before the test goes on, the RMS (of full
# scale 1.0) above which samples are sound (espeak-ng's voice decoded is far above it; silence, or nothing
# played, is 0), and how far, on the AudioContext's clock, a segment may start before the previous one ended.
SEGMENTS_HEARD = 2
SILENCE_RMS = 0.01
OVERLAP_SECONDS = 0.001


def stored_audio(service: RunningService, session_id: str) -> list[bytes]:
    """The PCM of the session's chunks in the audio buffer, in order."""
    items = service.db.query(
        TableName=service.run.table_name(f"Tables{schema.AUDIO_CHUNKS.construct_id}"),
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": schema.AUDIO_CHUNKS_PARTITION_KEY},
        ExpressionAttributeValues={":s": {"S": session_id}},
        ConsistentRead=True,
    )["Items"]
    return [item["audio"]["B"] for item in items]


def peak(pcm: bytes) -> int:
    """The largest absolute sample of 16-bit little-endian PCM."""
    return max(abs(sample) for (sample,) in struct.iter_unpack("<h", pcm))


def refusal(**fields: object) -> str:
    """The message the service refuses these settings with (what the page must show, word for word)."""
    with pytest.raises(ServiceError) as refused:
        validation.parse_partial_result_update(fields)
    return refused.value.message


def above(field: partial_result_fields.Field[Decimal]) -> float:
    """A value just over the field's upper bound."""
    return float(field.bounds[1] + Decimal("0.04"))


# Steps that wait for an element; each later check of the pages is one line of the test.
def wait_for_accepted_chunks(page: Page, at_least: int) -> int:
    page.wait_for_function(
        "n => Number(document.getElementById('chunks-accepted').textContent) >= n", arg=at_least, timeout=STEP_MS
    )
    return int(page.locator("#chunks-accepted").inner_text())


def wait_for_audience(page: Page, count: int, language: str) -> None:
    expect(page.locator("#listener-count")).to_have_text(str(count), timeout=AUDIENCE_SECONDS * 1000)
    expect(page.locator("#listener-languages")).to_contain_text(language, timeout=STEP_MS)


def wait_for_transcript(page: Page) -> str:
    """The speaker page's first transcript line (partial or final)."""
    line = page.locator("#transcript p").first
    expect(line).not_to_be_empty(timeout=SPEECH_MS)
    return line.inner_text()


def wait_for_caption(page: Page, language: str) -> str:
    """The listener page's first caption line in ``language``."""
    line = page.locator(f'#captions p[data-language="{language}"]').first
    expect(line).not_to_be_empty(timeout=SPEECH_MS)
    return line.inner_text()


def wait_for_speech(page: Page, segments: int) -> dict[str, Any]:
    """The listener page's playback record (``window.listenerAudio``) once ``segments`` spoken segments were
    scheduled and the analyser at its output measured sound above silence."""
    page.wait_for_function(
        "([n, floor]) => window.listenerAudio.played.length >= n && window.listenerAudio.output.rms > floor",
        arg=[segments, SILENCE_RMS],
        timeout=SPEECH_MS,
    )
    record: dict[str, Any] = page.evaluate("window.listenerAudio")
    return record


def wait_for_notice(page: Page, text: str | re.Pattern[str]) -> None:
    expect(page.locator("#notices li", has_text=text).first).to_be_visible(timeout=STEP_MS)


def wait_for_error(page: Page, message: str) -> None:
    expect(page.locator("#error")).to_have_text(message, timeout=STEP_MS)


def saved_transcript(page: Page, language: str, fmt: str = wire.TRANSCRIPT_WEBVTT) -> tuple[str, str]:
    """What the speaker page's link saves for ``language`` in ``fmt``: the file's suggested name and its text."""
    link = page.locator(f'#transcript-downloads li[data-language="{language}"] a[data-format="{fmt}"]')
    with page.expect_download(timeout=STEP_MS) as saving:
        link.click()
    download = saving.value
    return download.suggested_filename, Path(download.path()).read_text(encoding="utf-8")


def webvtt_cues(document: str) -> list[str]:
    """The cues' texts of a WebVTT document, read by a WebVTT parser (strictly: the header and cue timings)."""
    assert document.startswith("WEBVTT")
    return [caption.text for caption in webvtt.from_buffer(io.StringIO(document), strict=True).captions]


@pytest.fixture()
def pages(browser: Browser, tmp_path: Path) -> Iterator[tuple[Page, Page, list[str]]]:
    """A speaker page and a listener page (separate browser contexts, as two people would be), and the script
    errors either page raised."""
    errors: list[str] = []
    contexts = [browser.new_context(viewport={"width": 900, "height": 1000}) for _ in range(2)]
    speaker, listener = (context.new_page() for context in contexts)
    for page in (speaker, listener):
        page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield speaker, listener, errors
    finally:
        for context in contexts:
            context.close()


def test_a_session_from_the_speaker_page_to_a_listener_page_and_its_end(
    service: RunningService, pages: tuple[Page, Page, list[str]], tmp_path: Path
) -> None:
    speaker, listener, errors = pages
    speaker.goto(service.run.console_url + "speaker.html")
    expect(speaker.locator("#status")).to_contain_text("Ready")

    # A stability over its bound is sent as typed, and the service's refusal is shown as it came
    speaker.fill("#setting-minStability", str(above(partial_result_fields.STABILITY)))
    speaker.click("#start")
    wait_for_error(speaker, refusal(minStability=above(partial_result_fields.STABILITY)))
    expect(speaker.locator("#live")).to_be_hidden()

    # Within bounds, the session starts and the microphone's speech is streamed and stored
    speaker.fill("#setting-minStability", str(partial_result_fields.STABILITY.default))
    speaker.click("#start")
    expect(speaker.locator("#session-id")).to_have_text(validation.SESSION_ID_PATTERN)
    expect(speaker.locator("#error")).to_be_hidden()
    assert wait_for_accepted_chunks(speaker, ACCEPTED_CHUNKS) >= ACCEPTED_CHUNKS
    session_id = speaker.locator("#session-id").inner_text()
    item = service.session(session_id)
    assert item is not None and item["isActive"]["BOOL"] is True
    # ... as 100 ms chunks of 16 kHz 16-bit PCM that carry the speech, not silence
    chunks = stored_audio(service, session_id)
    assert len(chunks) >= ACCEPTED_CHUNKS
    assert {len(chunk) for chunk in chunks} == {CHUNK_BYTES}
    assert max(peak(chunk) for chunk in chunks) > SPEECH_PEAK
    speaker.wait_for_function("document.getElementById('qr').naturalWidth > 0", timeout=STEP_MS)  # the QR code

    # A listener opens the share link and joins in Spanish; the speaker sees one listener, in Spanish
    share_link = speaker.locator("#share-link").get_attribute("href")
    assert share_link and share_link.endswith(f"listener.html?session={session_id}")
    listener.goto(share_link)
    expect(listener.locator("#session-id")).to_have_value(session_id)
    listener.select_option("#language", "es")
    listener.click("#join")
    expect(listener.locator("#status")).to_contain_text(f"Listening to {session_id} in es")
    wait_for_audience(speaker, 1, "es")
    # The speech comes back as the speaker's transcript, and to the listener as Spanish captions (translated by the
    # local run's Apertium, which has the English-Spanish pair: not the stand-in's mark)
    assert wait_for_transcript(speaker)
    caption = wait_for_caption(listener, "es")
    assert caption.strip() and stand_in.mark("", "es") not in caption
    # ... and hears it: the spoken Spanish segments fetched, decoded and scheduled in their numbers' order, each
    # where the previous one ends or later, with sound in their samples and at the page's output, each the text of
    # its caption; none skipped
    audio = wait_for_speech(listener, SEGMENTS_HEARD)
    played = audio["played"]
    numbers = [segment["sequenceNumber"] for segment in played]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    for before, after in itertools.pairwise(played):
        assert after["start"] >= before["start"] + before["duration"] - OVERLAP_SECONDS, (before, after)
    assert max(segment["rms"] for segment in played) > SILENCE_RMS
    assert audio["output"]["rms"] > SILENCE_RMS
    assert audio["skipped"] == []
    for segment in played:
        assert segment["language"] == "es" and segment["transcript"].strip()
        expect(listener.locator(f'#captions p[data-segment-id="{segment["segmentId"]}"]')).to_contain_text(
            segment["transcript"]
        )
    speaker.screenshot(path=tmp_path / "speaker.png", full_page=True)
    listener.screenshot(path=tmp_path / "listener.png", full_page=True)
    if os.environ.get(UPDATE_SCREENSHOT):
        shutil.copyfile(tmp_path / "speaker.png", SCREENSHOT)

    # A setting changed live out of range is refused as the service says it
    speaker.fill("#setting-maxBufferTimeout", str(above(partial_result_fields.TIMEOUT)))
    speaker.click("#apply-settings")
    wait_for_error(speaker, refusal(maxBufferTimeout=above(partial_result_fields.TIMEOUT)))

    # The listener pauses its own playback; the service confirms it
    listener.click("#pause-playback")
    expect(listener.locator("#pause-playback")).to_have_attribute("aria-pressed", "true")
    wait_for_notice(listener, "Your playback is paused")

    # Pausing the broadcast reaches the listener as a notice
    speaker.click("#pause")
    expect(speaker.locator("#pause")).to_have_attribute("aria-pressed", "true")
    wait_for_notice(listener, "paused the broadcast")
    expect(listener.locator("#broadcast-state")).to_contain_text("Paused")

    # Ending closes both pages
    speaker.click("#end")
    expect(speaker.locator("#status")).to_contain_text("Session ended (endedBySpeaker)", timeout=STEP_MS)
    expect(listener.locator("#status")).to_contain_text("session ended (endedBySpeaker)", timeout=STEP_MS)
    item = service.session(session_id)
    assert item is not None and item["isActive"]["BOOL"] is False
    # (the session's transcription consumer finishes after the end: it delivers, and records, what was still open,
    # then lets go of its lease; the transcript is whole from then on)
    assert eventually(
        lambda: TRANSCRIBER_LEASE_ID_ATTRIBUTE not in (service.session(session_id) or {}), timeout=STEP_MS / 1000 * 3
    )

    # The session's transcripts stay to take home: the spoken language's and the listener's, as WebVTT fetched with
    # the speaker's token and saved under the API's file name, each with what was said
    expect(speaker.locator("#take-home")).to_be_visible()
    for language in ("en", "es"):
        name, document = saved_transcript(speaker, language)
        assert name == f"{session_id}.{language}.{wire.TRANSCRIPT_WEBVTT}"
        assert any(cue.strip() for cue in webvtt_cues(document)), document
    expect(speaker.locator("#error")).to_be_hidden()

    # Deleting them (confirmed) answers at once, and a later download holds no cue
    asked: list[str] = []
    speaker.once("dialog", lambda dialog: confirm(dialog, asked))
    speaker.click("#delete-transcript")
    expect(speaker.locator("#transcript-state")).to_have_text("Transcript deleted.", timeout=STEP_MS)
    assert len(asked) == 1 and session_id in asked[0]
    assert webvtt_cues(saved_transcript(speaker, "en")[1]) == []
    expect(speaker.locator("#error")).to_be_hidden()
    assert errors == []


def confirm(dialog: Dialog, asked: list[str]) -> None:
    """The speaker says yes to the page's confirmation (recorded in ``asked``); any other dialog is dismissed."""
    if dialog.type == "confirm":
        asked.append(dialog.message)
        dialog.accept()
    else:
        dialog.dismiss()


# The listener page's player driven directly, in the page, with segments whose order, arrival and audio the test
# chooses: tones made in the page as WAV (Web Audio decodes it as it does MP3), an address the console answers 404,
# bytes that are no audio, a number that never comes, and a segment in another language.
PLAYER_SCRIPT = """
async ({ toneSeconds, waitMs }) => {
  const { Player } = await import(new URL("playback.js", location.href));
  const notices = [];
  const player = new Player({ notice: (text) => notices.push(text) });
  await player.start();
  player.setLanguage("es");
  const tone = (seconds) => {
    const rate = 16000, count = Math.round(rate * seconds), view = new DataView(new ArrayBuffer(44 + 2 * count));
    const text = (offset, value) => [...value].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
    text(0, "RIFF"); view.setUint32(4, 36 + 2 * count, true); text(8, "WAVEfmt ");
    view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * count, true);
    for (let i = 0; i < count; i++) view.setInt16(44 + 2 * i, 16000 * Math.sin(2 * Math.PI * 440 * i / rate), true);
    return URL.createObjectURL(new Blob([view.buffer], { type: "audio/wav" }));
  };
  const segment = (number, url, language = "es") => ({
    type: "translatedAudio", sessionId: "test", targetLanguage: language, url, timestamp: 0,
    duration: toneSeconds, sequenceNumber: number, transcript: `segment ${number}`, segmentId: `s${number}`,
  });
  player.receive(segment(2, tone(toneSeconds)));  // the first received: the start
  player.receive(segment(4, tone(toneSeconds)));  // before 3: waits for it
  player.receive(segment(3, tone(toneSeconds)));
  player.receive(segment(1, tone(toneSeconds)));  // after its turn
  player.receive(segment(3, tone(toneSeconds)));  // again
  player.receive(segment(5, new URL("no-such-segment.mp3", location.href).href));  // 404
  player.receive(segment(6, URL.createObjectURL(new Blob(["not audio"]))));  // fetched, not decodable
  player.receive(segment(8, tone(toneSeconds)));  // 7 never comes
  player.receive(segment(9, tone(toneSeconds), "fr"));  // not this listener's language
  const deadline = performance.now() + waitMs;
  while (player.stats.played.length < 4 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, toneSeconds * 1000 + 200));  // the last one plays out
  return { ...player.stats, notices };
}
"""
TONE_SECONDS = 0.3
TONE_RMS = 16000 / 32768 / 2**0.5  # a sine's RMS is its amplitude over the square root of 2


def test_the_listener_player_keeps_the_numbers_order_waits_briefly_for_a_missing_one_and_skips_what_fails(
    service: RunningService, browser: Browser
) -> None:
    page = browser.new_page()
    page.goto(service.run.console_url + "listener.html")
    record = page.evaluate(PLAYER_SCRIPT, {"toneSeconds": TONE_SECONDS, "waitMs": STEP_MS})

    # 2 (the first received), 3 and 4 played in order, each where the previous one ends (all were queued before 2
    # ended); 8 once 7 was given up, no earlier than 4's end; 9, in another language, not at all
    played = record["played"]
    assert [segment["sequenceNumber"] for segment in played] == [2, 3, 4, 8]
    for before, after in itertools.pairwise(played[:3]):
        assert after["start"] == pytest.approx(before["start"] + before["duration"], abs=OVERLAP_SECONDS)
    assert played[3]["start"] >= played[2]["start"] + played[2]["duration"] - OVERLAP_SECONDS
    for segment in played:
        assert segment["duration"] == pytest.approx(TONE_SECONDS, abs=0.01)
        assert segment["rms"] == pytest.approx(TONE_RMS, rel=0.05)
    assert record["output"]["rms"] > SILENCE_RMS  # what went out through the gain and the analyser
    # 1 (after its turn), 3 a second time, 5 (not found), 6 (no audio) and 7 (never came) skipped, each said but
    # the copy (nothing was lost)
    assert [(skip["sequenceNumber"], skip["reason"]) for skip in record["skipped"]] == [
        (1, "late"),
        (3, "duplicate"),
        (5, "failed"),
        (6, "failed"),
        (7, "missing"),
    ]
    assert [re.sub(r"\(.*\)", "(…)", notice) for notice in record["notices"]] == [
        "Speech segment 1 came after its turn: skipped.",
        "Speech segment 5 could not be played (…): skipped.",
        "Speech segment 6 could not be played (…): skipped.",
        "Speech segment 7 never came: skipped.",
    ]
