"""Captions: each segment of a session's speech, delivered to every listener in the listener's own language.

The transcription consumer (one invocation per live session) makes one :class:`CaptionDelivery` and calls
:meth:`CaptionDelivery.deliver` once per segment the partial-result processor forwards. For each segment:

- The audience is the session's listeners by target language, read from the listener index and kept
  :data:`~lambda_src.contract.limits.CAPTION_AUDIENCE_CACHE_SECONDS` (2 s): in steady state a segment costs no DynamoDB
  request. So a join, a ``changeLanguage`` or a ``leaveSession`` is seen by captions at most that long after it:
  the first segment delivered after the window has passed goes to the new audience (a listener that joined
  mid-segment gets that segment's later partials and its final, which is all a caption client needs). A
  listener found gone is dropped from the kept audience at once.
- Each listener's delivery choice (its ``output``: captions, audio or both, and whether its playback is paused) is
  read with the audience, from the listeners' rows (one BatchGetItem per 100 listeners: the index projects keys
  only), and kept as long. Captions go to listeners who want captions (``captions`` or ``both``); a language whose
  listeners all want audio only gets no caption, and its partials are not even translated (its finals are: they
  are spoken, ``lambda_src.app.speech``, and kept in the transcript).
- Listeners of the session's source language get the source text; every other language is translated, each
  in parallel (:data:`~lambda_src.contract.limits.TRANSLATION_PARALLELISM`), and a language's captions are posted as
  soon
  as its translation is back, so a slow or failed language delays nobody else. A failed translation is counted
  (``TranslationFailures``) and logged with its language pair; that language's listeners get no caption for
  this segment. Empty text (a final that withdraws a partial) is posted as it is, untranslated.
- Posts go out in parallel (:data:`~lambda_src.contract.limits.FANOUT_PARALLELISM`) through
  :func:`lambda_src.downstream.start_broadcast`, the same path any downstream processor uses: a listener that
  answers 410 past its handshake is counted out exactly once, as its ``$disconnect`` would be.
- A session with seat shards (decision record 0040) is read from its seats first: only the shards that count
  listeners are queried; an audience over ``fanout_groups.local_listeners()`` (500) is not read here at all: each
  segment is translated once per language with listeners and handed to the fan-out function
  (``lambda_src.app.shard_fanout``), one asynchronous invocation per group of shards, which reads its shards'
  listeners and their choices and posts them.

Metrics (``TranslationFailures``, and ``ListenersLeft`` for a vanished listener) accumulate like every
function's and are published by :func:`lambda_src.platform.metrics.flush`, which the consumer calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from types import TracebackType

from lambda_src import runtime
from lambda_src.adapters.repositories.connections import DeliveryChoice
from lambda_src.adapters.translation import TranslationError, Translator
from lambda_src.app import downstream, fanout_groups, seats, shard_fanout, voices
from lambda_src.app.downstream import BroadcastReport, PendingBroadcast
from lambda_src.contract import limits
from lambda_src.model.partial_result_processor import Segment
from lambda_src.model.session import Seating
from lambda_src.platform import metrics
from lambda_src.platform.log import logger
from lambda_src.protocol import messages


@dataclass
class DeliveryReport:
    """What became of one segment: target ``languages`` with listeners (the source language included), of which
    ``translated`` and ``translation_failures``; captions ``posted`` (that arrived), listeners found ``gone`` (410
    past the handshake: counted out) or still ``handshaking`` (410 within it: left alone), posts ``failed``;
    and the caption's ``texts`` by language (the source text, or the translation that went out: what the
    session's transcript keeps)."""

    segment_id: str
    languages: int = 0
    translated: int = 0
    translation_failures: int = 0
    posted: int = 0
    handed_off: int = 0  # fan-out invocations queued (a big session's: their posts are theirs to count)
    paced: bool = False  # a big session's partial held back by the pace of its partials (nothing posted)
    gone: int = 0
    handshaking: int = 0
    failed: int = 0
    texts: dict[str, str] = field(default_factory=dict)

    def add(self, broadcast: BroadcastReport) -> None:
        self.posted += broadcast.delivered
        self.gone += broadcast.gone
        self.handshaking += broadcast.handshaking
        self.failed += broadcast.failed


_DEFAULT_CHOICE = DeliveryChoice()


class CaptionDelivery:
    """Delivers a session's segments as ``caption`` messages; one per consumer invocation (it keeps the audience
    and its threads between segments). ``close`` it at the end (or use it as a context manager)."""

    def __init__(
        self,
        session_id: str,
        source_language: str,
        translator: Translator,
        *,
        audience_cache_seconds: float = limits.CAPTION_AUDIENCE_CACHE_SECONDS,
        seating: Seating | None = None,
    ) -> None:
        self.session_id = session_id
        self.source_language = source_language
        self.translator = translator
        self.seating = seating
        self._cache_ms = audience_cache_seconds * 1000
        self._audience: dict[str, list[str]] = {}
        self._choices: dict[str, DeliveryChoice] = {}
        self._plan: fanout_groups.Plan | None = None
        self._audience_read_at_ms: int | None = None
        self._partial_handed_off_at_ms: int | None = None
        self._translations = ThreadPoolExecutor(limits.TRANSLATION_PARALLELISM, thread_name_prefix="caption-translate")
        self._posts = ThreadPoolExecutor(limits.FANOUT_PARALLELISM, thread_name_prefix="caption-post")

    def __enter__(self) -> CaptionDelivery:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the delivery's threads (after what is in flight)."""
        self._translations.shutdown()
        self._posts.shutdown()

    def audience(self, now_ms: int) -> dict[str, list[str]]:
        """The listeners' connection ids by target language, read again (with their delivery choices) once the
        kept one is ``CAPTION_AUDIENCE_CACHE_SECONDS`` old. A failed read keeps the last audience (and is tried
        again at the next segment), so a throttled index never stops captions."""
        read_at = self._audience_read_at_ms
        if read_at is not None and 0 <= now_ms - read_at < self._cache_ms:
            return self._audience
        try:
            plan, audience = self._read_audience()
            ids = [connection_id for listeners in audience.values() for connection_id in listeners]
            choices = runtime.connections().delivery_choices(ids) if ids else {}
        except Exception:
            logger.exception("caption audience not read; the last one is kept", extra={"session_id": self.session_id})
            return self._audience
        self._audience, self._choices, self._plan = audience, choices, plan
        self._audience_read_at_ms = now_ms
        return self._audience

    def _read_audience(self) -> tuple[fanout_groups.Plan | None, dict[str, list[str]]]:
        """The audience by language, read now. A sharded session's seats are read first (one BatchGetItem): an
        audience the fan-out takes (``fanout_groups.plan``) is not read here at all (its languages only, with no
        listener: the fan-out's invocations read their shards'); a smaller one is read from its occupied shards."""
        if self.seating is None or not self.seating.sharded:
            return None, downstream.listeners_by_language(self.session_id)
        occupied = seats.occupied(self.session_id, self.seating)
        plan = fanout_groups.plan(self.session_id, occupied)
        if plan is not None:
            return plan, {language: [] for language in plan.languages}
        by_language: dict[str, list[str]] = {}
        for page in seats.occupied_pages(self.session_id, occupied):
            for connection_id, language in page:
                by_language.setdefault(language, []).append(connection_id)
        return None, dict(sorted(by_language.items()))

    @property
    def fanout_plan(self) -> fanout_groups.Plan | None:
        """The kept audience's fan-out plan when the fan-out function posts it (a big session), else None."""
        return self._plan

    def choice(self, connection_id: str) -> DeliveryChoice:
        """What a listener of the kept audience wants delivered (the default, both, for one whose row was not
        found: it is being counted out, or was just written)."""
        return self._choices.get(connection_id, _DEFAULT_CHOICE)

    def audio_listeners(self) -> dict[str, list[str]]:
        """The kept audience's listeners who want ``translatedAudio`` now (output audio or both, playback not
        paused), by language; languages with none are left out."""
        wanting = {
            language: [connection_id for connection_id in listeners if self.choice(connection_id).wants_audio]
            for language, listeners in self._audience.items()
        }
        return {language: listeners for language, listeners in wanting.items() if listeners}

    def _caption_listeners(self, language: str) -> list[str]:
        """The listeners of ``language`` who get its captions: those who want them, and those who want audio only
        where nothing speaks ``language`` here (no voice for it, or no synthesizer at all): told
        ``audioUnavailable`` once, they get captions only rather than nothing."""
        listeners = self._audience.get(language, [])
        spoken = all(self.choice(c).wants_captions for c in listeners) or _spoken_here(language)
        return shard_fanout.recipients(shard_fanout.CAPTION, listeners, self._choices, spoken)

    def deliver(self, segment: Segment, now_ms: int) -> DeliveryReport:
        """Post ``segment`` as a ``caption`` to every listener, in its language (``now_ms``: the wall clock, epoch
        milliseconds, the captions' ``timestamp``). Never raises: what failed is counted in the report."""
        audience = self.audience(now_ms)
        if self._plan is not None:
            return self._hand_off(self._plan, segment, now_ms)
        report = DeliveryReport(segment.segment_id, languages=len(audience))
        pending: list[tuple[str, PendingBroadcast]] = []
        # audio only: a partial is neither captioned nor spoken
        languages = [language for language in audience if not segment.is_partial or self._caption_listeners(language)]
        for language, text in self._texts(segment, languages, report):
            self._start(pending, report, segment, language, text, now_ms)
        for language, broadcast in pending:
            result = broadcast.finish()
            report.add(result)
            self._forget(language, result.gone_listeners)
        return report

    def _texts(self, segment: Segment, languages: Iterable[str], report: DeliveryReport) -> Iterator[tuple[str, str]]:
        """``segment``'s text in each of ``languages``: the source text (and an empty text, untranslated) at once,
        every other language's translation as it comes back (all in parallel). A failed translation is counted in
        ``report`` and logged, and yields nothing."""
        at_once: list[str] = []
        translating: dict[Future[str], str] = {}
        for language in languages:
            if language == self.source_language or not segment.text.strip():
                at_once.append(language)
            else:
                future = self._translations.submit(
                    self.translator.translate, segment.text, self.source_language, language
                )
                translating[future] = language
        for language in at_once:
            yield language, segment.text
        for future in as_completed(translating):
            language = translating[future]
            try:
                text = future.result()
            except Exception as error:
                self._translation_failed(report, segment, language, error)
                continue
            report.translated += 1
            yield language, text

    def _hand_off(self, plan: fanout_groups.Plan, segment: Segment, now_ms: int) -> DeliveryReport:
        """A big session's segment: translated once per language with listeners (partials too: which listeners want
        captions is the fan-out's to read), then handed to the fan-out function, one invocation per group. A partial
        comes sooner after the last one handed off than the audience's share of the account's request rate allows
        (:func:`partial_pace_ms`) is skipped, untranslated: the next partial or the final says more."""
        report = DeliveryReport(segment.segment_id, languages=len(plan.languages))
        if segment.is_partial:
            last = self._partial_handed_off_at_ms
            if last is not None and 0 <= now_ms - last < partial_pace_ms(plan.listeners):
                report.paced = True
                return report
            self._partial_handed_off_at_ms = now_ms
        for language, text in self._texts(segment, plan.languages, report):
            report.texts[language] = text
        by_language = {
            language: messages.caption(
                self.session_id, segment.segment_id, self.source_language, language, text, segment.is_partial, now_ms
            )
            for language, text in sorted(report.texts.items())
        }
        unspoken = [language for language in by_language if not _spoken_here(language)]
        handed = fanout_groups.hand_off(plan, by_language, now_ms, unspoken)
        report.handed_off = handed.invocations - handed.failed
        report.failed += handed.lost_listeners
        return report

    def _start(
        self,
        pending: list[tuple[str, PendingBroadcast]],
        report: DeliveryReport,
        segment: Segment,
        language: str,
        text: str,
        now_ms: int,
    ) -> None:
        """Start posting the caption in ``language`` to its listeners who want captions (in flight while other
        languages translate)."""
        listeners = self._caption_listeners(language)
        report.texts[language] = text
        caption = messages.caption(
            self.session_id, segment.segment_id, self.source_language, language, text, segment.is_partial, now_ms
        )
        try:
            broadcast = downstream.start_broadcast(
                self.session_id, language, caption, executor=self._posts, listeners=listeners
            )
        except Exception:
            logger.exception("caption not posted", extra={"session_id": self.session_id, "target_language": language})
            report.failed += len(listeners)
            return
        pending.append((language, broadcast))

    def _translation_failed(self, report: DeliveryReport, segment: Segment, language: str, error: Exception) -> None:
        report.translation_failures += 1
        metrics.translation_failed()
        extra = {
            "session_id": self.session_id,
            "segment_id": segment.segment_id,
            "source_language": self.source_language,
            "target_language": language,
            "translator": self.translator.name,
        }
        if isinstance(error, TranslationError):
            logger.warning(f"caption not translated: {error}", extra={**extra, "error_code": error.code})
        else:  # the engine itself failed: a bug, with its traceback
            logger.error("caption not translated", exc_info=error, extra=extra)

    def _forget(self, language: str, gone: tuple[str, ...]) -> None:
        """Drop listeners proved gone from the kept audience (so the next segments do not post to them again)."""
        if not gone:
            return
        remaining = [connection_id for connection_id in self._audience.get(language, []) if connection_id not in gone]
        if remaining:
            self._audience[language] = remaining
        else:
            self._audience.pop(language, None)


def _spoken_here(language: str) -> bool:
    """Whether this deployment speaks ``language``: a synthesizer and an audio store configured, and a voice."""
    return voices.engine() is not None and not voices.cannot_speak(language)


def partial_pace_ms(listeners: int) -> int:
    """The least time between two partials handed to the fan-out for an audience of ``listeners``, so that its
    partial captions take at most ``FANOUT_PARTIAL_POSTS_PER_SECOND`` posts a second of the account's budget."""
    return listeners * 1000 // limits.FANOUT_PARTIAL_POSTS_PER_SECOND
