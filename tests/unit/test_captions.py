"""Captions: each segment to every listener in its language, through the same path as every fan-out (moto tables,
the recording ``@connections`` fake)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest

from lambda_src.adapters.translation import TranslationError
from lambda_src.adapters.translation.stand_in import StandInTranslator
from lambda_src.app.captions import CaptionDelivery
from lambda_src.contract import limits, telemetry
from lambda_src.model.partial_result_processor import Segment
from lambda_src.platform import metrics
from tests.unit.flows import SESSION_ID, handshake_done_ms, join

CAPTION_KEYS = {"type", "sessionId", "segmentId", "sourceLanguage", "targetLanguage", "text", "isPartial", "timestamp"}


def segment(text: str = "Hello everyone", segment_id: str = "seg-1", is_partial: bool = False) -> Segment:
    return Segment(segment_id=segment_id, text=text, is_partial=is_partial, stability=None, start_time=0.0)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def captions_to(gateway, connection_id: str) -> list[dict[str, Any]]:
    return [message for message in gateway.messages_to(connection_id) if message["type"] == "caption"]


def published_counts(capsys: pytest.CaptureFixture[str]) -> Counter[str]:
    """What the metrics accumulated so far add up to, by name (published as EMF on stdout)."""
    metrics.flush()
    counts: Counter[str] = Counter()
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    counts[metric["Name"]] += int(sum(value) if isinstance(value, list) else value)
    return counts


@pytest.fixture
def audience(tables, gateway) -> dict[str, list[str]]:
    """A live English session with two Spanish listeners, one German and one English."""
    tables.put_session(sessionId=SESSION_ID, sourceLanguage="en")
    return {
        language: [join(language=language) for _ in range(count)]
        for language, count in [("es", 2), ("de", 1), ("en", 1)]
    }


def test_each_listener_gets_the_caption_in_its_language_and_source_listeners_the_source_text(gateway, audience) -> None:
    # When a final segment is delivered with the stand-in translator
    with CaptionDelivery(SESSION_ID, "en", StandInTranslator()) as delivery:
        at = now_ms()
        report = delivery.deliver(segment("Hello everyone"), at)
    # Then each listener got exactly one caption in its language: the source text for English, marked for the others
    expected = {"es": "[es] Hello everyone", "de": "[de] Hello everyone", "en": "Hello everyone"}
    for language, listeners in audience.items():
        for listener in listeners:
            assert captions_to(gateway, listener) == [
                {
                    "type": "caption",
                    "sessionId": SESSION_ID,
                    "segmentId": "seg-1",
                    "sourceLanguage": "en",
                    "targetLanguage": language,
                    "text": expected[language],
                    "isPartial": False,
                    "timestamp": at,
                }
            ]
    assert set(captions_to(gateway, audience["es"][0])[0]) == CAPTION_KEYS
    # And the source language was not translated
    assert (report.languages, report.translated, report.translation_failures) == (3, 2, 0)
    assert (report.posted, report.gone, report.failed) == (4, 0, 0)


class Recording:
    """A translator that records what it was asked; fails for ``failing`` languages."""

    name = "recording translator"

    def __init__(self, failing: set[str] | None = None, crashing: set[str] | None = None) -> None:
        self.asked: list[tuple[str, str, str]] = []
        self.failing = failing or set()
        self.crashing = crashing or set()
        self._lock = threading.Lock()

    def translate(self, text: str, source_language: str, target_language: str) -> str:
        with self._lock:
            self.asked.append((text, source_language, target_language))
        if target_language in self.failing:
            raise TranslationError(f"no {target_language} today", code="ServiceUnavailableException")
        if target_language in self.crashing:
            raise RuntimeError("engine bug")
        return f"{text} ({target_language})"


def test_the_source_language_is_never_translated(gateway, audience) -> None:
    translator = Recording()
    with CaptionDelivery(SESSION_ID, "en", translator) as delivery:
        delivery.deliver(segment("Hello everyone"), now_ms())
    assert sorted(translator.asked) == [("Hello everyone", "en", "de"), ("Hello everyone", "en", "es")]


@pytest.mark.parametrize("how", ["refused", "crashed"])
def test_a_failed_translation_still_delivers_the_other_languages_and_is_counted(
    gateway, audience, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, how: str
) -> None:
    # Given a translator that cannot do German (the service refuses, or the engine itself raises)
    translator = Recording(failing={"de"}) if how == "refused" else Recording(crashing={"de"})
    capsys.readouterr()
    with CaptionDelivery(SESSION_ID, "en", translator) as delivery:
        report = delivery.deliver(segment("Hello everyone"), now_ms())
    # Then Spanish and English listeners got theirs, the German one nothing
    assert [c["text"] for c in captions_to(gateway, audience["es"][0])] == ["Hello everyone (es)"]
    assert [c["text"] for c in captions_to(gateway, audience["en"][0])] == ["Hello everyone"]
    assert captions_to(gateway, audience["de"][0]) == []
    assert (report.translated, report.translation_failures, report.posted) == (1, 1, 3)
    # And the failure was logged with its language and counted once
    failures = [record for record in caplog.records if record.getMessage().startswith("caption not translated")]
    assert [
        (getattr(record, "source_language", None), getattr(record, "target_language", None)) for record in failures
    ] == [("en", "de")]
    metrics_seen = published_counts(capsys)
    assert metrics_seen[telemetry.TRANSLATION_FAILURES] == 1


def test_a_slow_translation_does_not_hold_back_the_other_languages(gateway, audience) -> None:
    # Given a German translation that only comes back once the Spanish listeners have their caption
    def spanish_delivered() -> bool:
        return all(captions_to(gateway, listener) for listener in audience["es"])

    class SlowGerman(Recording):
        def translate(self, text: str, source_language: str, target_language: str) -> str:
            if target_language == "de":
                deadline = time.monotonic() + 5
                while not spanish_delivered():
                    if time.monotonic() > deadline:
                        raise TranslationError("Spanish captions waited for German", code="Blocked")
                    time.sleep(0.01)
            return super().translate(text, source_language, target_language)

    with CaptionDelivery(SESSION_ID, "en", SlowGerman()) as delivery:
        report = delivery.deliver(segment("Hello everyone"), now_ms())
    assert (report.translated, report.translation_failures, report.posted) == (2, 0, 4)


def test_a_listener_gone_is_counted_out_once_and_the_count_stays_exact(
    tables, gateway, audience, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a Spanish listener whose connection vanished long after its handshake (no $disconnect came)
    vanished = join(language="es", connected_at_ms=handshake_done_ms())
    gateway.gone.add(vanished)
    assert tables.session(SESSION_ID)["listenerCount"] == 5
    capsys.readouterr()
    with CaptionDelivery(SESSION_ID, "en", StandInTranslator()) as delivery:
        at = now_ms()
        # When several segments are delivered (within one audience window, and after it)
        reports = [delivery.deliver(segment(f"Sentence {n}.", f"seg-{n}"), at + n * 1500) for n in range(4)]
    # Then it was counted out by the first one, once: its row is gone and the count exact
    assert [report.gone for report in reports] == [1, 0, 0, 0]
    assert tables.connection(vanished) is None
    assert tables.session(SESSION_ID)["listenerCount"] == 4
    assert published_counts(capsys)[telemetry.LISTENERS_LEFT] == 1
    # And everyone else got every caption
    assert all(report.posted == 4 for report in reports)


def test_a_listener_within_its_handshake_is_left_alone(tables, gateway, audience) -> None:
    # Given a listener that just joined and answers 410 (its handshake is still completing)
    young = join(language="de")
    gateway.gone.add(young)
    with CaptionDelivery(SESSION_ID, "en", StandInTranslator()) as delivery:
        report = delivery.deliver(segment(), now_ms())
    assert (report.gone, report.handshaking) == (0, 1)
    assert tables.connection(young) is not None
    assert tables.session(SESSION_ID)["listenerCount"] == 5


def test_a_join_is_captioned_from_the_first_segment_after_the_audience_window(gateway, audience) -> None:
    with CaptionDelivery(SESSION_ID, "en", StandInTranslator()) as delivery:
        at = now_ms()
        delivery.deliver(segment(segment_id="seg-1"), at)
        # When a French listener joins
        newcomer = join(language="fr")
        # Then segments within the window do not reach it yet; the first one after the window does
        delivery.deliver(segment(segment_id="seg-2"), at + limits.CAPTION_AUDIENCE_CACHE_SECONDS * 1000 - 1)
        assert captions_to(gateway, newcomer) == []
        report = delivery.deliver(segment(segment_id="seg-3"), at + limits.CAPTION_AUDIENCE_CACHE_SECONDS * 1000)
    assert [(c["segmentId"], c["text"]) for c in captions_to(gateway, newcomer)] == [("seg-3", "[fr] Hello everyone")]
    assert report.languages == 4


def test_a_withdrawn_segment_is_posted_empty_and_untranslated(gateway, audience) -> None:
    translator = Recording()
    with CaptionDelivery(SESSION_ID, "en", translator) as delivery:
        report = delivery.deliver(segment("", is_partial=False), now_ms())
    assert translator.asked == []
    for listeners in audience.values():
        for listener in listeners:
            assert [(c["text"], c["isPartial"]) for c in captions_to(gateway, listener)] == [("", False)]
    assert (report.translated, report.posted) == (0, 4)


def test_an_audience_read_that_fails_keeps_the_last_audience(
    gateway, audience, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_src.app import downstream

    with CaptionDelivery(SESSION_ID, "en", StandInTranslator()) as delivery:
        at = now_ms()
        delivery.deliver(segment(segment_id="seg-1"), at)

        def throttled(_session_id: str) -> dict[str, list[str]]:
            raise RuntimeError("throttled")

        monkeypatch.setattr(downstream, "listeners_by_language", throttled)
        report = delivery.deliver(segment(segment_id="seg-2"), at + 10_000)
    assert (report.languages, report.posted) == (3, 4)


def test_a_session_without_listeners_translates_nothing(tables, gateway) -> None:
    tables.put_session(sessionId=SESSION_ID, sourceLanguage="en")
    translator = Recording()
    with CaptionDelivery(SESSION_ID, "en", translator) as delivery:
        report = delivery.deliver(segment(), now_ms())
    assert (report.languages, report.posted, translator.asked) == (0, 0, [])
    assert gateway.posts() == []
