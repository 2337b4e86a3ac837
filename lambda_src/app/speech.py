"""Speech: each final segment's translation spoken, once per language, to the listeners who want to hear it
(decision record 0039).

The transcription consumer's delivery (``lambda_src.app.transcription.delivery``) hands each final segment here
once its captions are posted, with the captions' texts (the translation that went out: never a second one) and
the listeners who want audio now (``CaptionDelivery.audio_listeners``: output ``audio`` or ``both``, playback not
paused). For each such language the synthesizer speaks (``runtime.synthesizer()``), once, whatever the number of
listeners:

- the segment is synthesized, put in the audio store (``runtime.audio_store()``) under
  ``audio/<sessionId>/<language>/<segmentId>.mp3`` and given a GET URL valid ``AUDIO_URL_EXPIRY_SECONDS``;
- then its ``sequenceNumber`` in each language whose audio is ready (consecutive from 1 per session and language,
  with no gap for a language whose audio failed) is drawn for all of them by one UpdateItem on the session item,
  under the consumer's lease (``SessionsRepository.draw_audio_sequence_numbers``);
- and ``translatedAudio`` is posted to each of that language's listeners who want audio.

Nothing is spoken while the broadcast is paused, muted or at volume 0, nor for a partial, an empty final or a
language no listener wants to hear. Languages are spoken in parallel (``SPEECH_PARALLELISM``), and the whole of a
segment's speech runs on the delivery's own thread, one segment after the other (so the numbers are drawn and
posted in the segments' order) while the consumer goes on: captions never wait for speech. A failure (the
numbers, the synthesis, the upload, the URL) skips that segment's audio for that language (all of them for the
numbers): logged and counted (``SynthesisFailures``), captions unaffected. With no synthesizer or store configured,
nothing is spoken (``lambda_src.app.voices``). A big session's segment (decision record 0040: its audience handed to
the fan-out function) is spoken in every language it has listeners in, numbered the same way, and its
``translatedAudio`` messages are handed to the fan-out, whose invocations post them to those who want audio.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from lambda_src import runtime
from lambda_src.app import downstream, fanout_groups, voices
from lambda_src.contract import limits
from lambda_src.model.partial_result_processor import Segment
from lambda_src.model.session import Session
from lambda_src.model.speech import AudioStore, SpeechUnavailable, SpokenText, Synthesizer
from lambda_src.platform import metrics
from lambda_src.platform.log import logger
from lambda_src.platform.serial import SerialWork
from lambda_src.protocol import messages


def audio_key(session_id: str, language: str, segment_id: str) -> str:
    """Where a segment spoken in ``language`` is kept in the audio store."""
    return f"audio/{session_id}/{language}/{segment_id}.mp3"


@dataclass
class SpeechReport:
    """What became of one segment's speech: ``spoken`` languages (synthesized, stored and posted), ``failed`` ones
    (counted), ``unspoken`` ones (no voice: skipped without a word), and ``posted`` ``translatedAudio`` messages
    that arrived."""

    segment_id: str
    spoken: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unspoken: list[str] = field(default_factory=list)
    posted: int = 0
    handed_off: int = 0  # fan-out invocations queued (a big session's)


@dataclass(frozen=True)
class _Segment:
    """What a segment's speech needs, taken in the consumer's thread when it is handed over."""

    session_id: str
    lease_id: str | None
    segment_id: str
    texts: dict[str, str]  # language -> the text to speak
    listeners: dict[str, list[str]]  # language -> who gets it
    now_ms: int
    fanout: fanout_groups.Plan | None = None  # a big session's: its fan-out posts, to whom its shards' rows say


class SpeechDelivery(SerialWork):
    """Speaks a session's final segments; one per consumer invocation. ``close`` it at the end (or use it as a
    context manager): it waits for the speech in flight."""

    def __init__(self) -> None:
        super().__init__("speech")  # segments spoken one after another
        self._languages = ThreadPoolExecutor(limits.SPEECH_PARALLELISM, thread_name_prefix="speech-language")
        self._posts = ThreadPoolExecutor(limits.FANOUT_PARALLELISM, thread_name_prefix="speech-post")

    def close(self) -> None:
        """Finish the speech in flight, then stop the threads."""
        super().close()
        self._languages.shutdown()
        self._posts.shutdown()

    def speak(
        self,
        session: Session,
        segment: Segment,
        texts: dict[str, str],
        listeners: dict[str, list[str]],
        now_ms: int,
        fanout: fanout_groups.Plan | None = None,
    ) -> Future[SpeechReport] | None:
        """Start speaking ``segment`` (a final) in each language of ``texts`` (its captions' texts) that has
        ``listeners`` wanting audio; returns at once (None when there is nothing to speak). ``fanout``: a big
        session's plan (decision record 0040): every language it has listeners in is spoken (who of them wants audio
        is read by the fan-out's invocations, which post ``translatedAudio``)."""
        if segment.is_partial or not session.broadcast.forwards_audio:
            return None
        if fanout is not None:
            wanted = {
                language: text for language, text in texts.items() if text.strip() and language in fanout.languages
            }
            listeners = {language: [] for language in wanted}
        else:
            wanted = {language: text for language, text in texts.items() if text.strip() and listeners.get(language)}
        if not wanted:
            return None
        lease = session.transcriber
        job = _Segment(
            session.session_id,
            lease.lease_id if lease is not None else None,
            segment.segment_id,
            wanted,
            {language: list(listeners[language]) for language in wanted},
            now_ms,
            fanout,
        )
        return self.later(self._speak, job)

    def _speak(self, job: _Segment) -> SpeechReport:
        """One segment's speech, on the delivery's thread. Never raises: what failed is logged and counted."""
        report = SpeechReport(job.segment_id)
        try:
            self._speak_languages(job, report)
        except Exception:  # a bug: logged, and the consumer goes on
            logger.exception("segment not spoken", extra={"session_id": job.session_id, "segment_id": job.segment_id})
        for _language in report.failed:
            metrics.synthesis_failed()
        return report

    def _speak_languages(self, job: _Segment, report: SpeechReport) -> None:
        engine = voices.engine()
        if engine is None:
            return
        synthesizer, store = engine
        audio = self._made(job, synthesizer, store, report)
        if not audio:
            return
        # Numbered once the audio exists, so that a language whose audio failed leaves no gap in its numbers (the
        # listener app waits for the next number in order).
        extra = {"session_id": job.session_id, "segment_id": job.segment_id}
        try:
            numbers = runtime.sessions().draw_audio_sequence_numbers(job.session_id, job.lease_id, list(audio))
        except Exception:
            logger.exception("speech not numbered; the segment is not spoken", extra=extra)
            report.failed += list(audio)
            return
        if numbers is None:
            logger.info("speech not numbered: the consumer's lease is no longer its own", extra=extra)
            return
        self._post(job, audio, numbers, report)

    def _made(
        self, job: _Segment, synthesizer: Synthesizer, store: AudioStore, report: SpeechReport
    ) -> dict[str, tuple[str, SpokenText]]:
        """Each language the synthesizer speaks synthesized and stored, in parallel: its URL and audio by language
        (the others noted in ``report``)."""
        made: dict[str, Future[tuple[str, SpokenText] | None]] = {}
        for language in job.texts:
            if _speaks(synthesizer, language):
                made[language] = self._languages.submit(self._make, job, synthesizer, store, language)
            else:
                report.unspoken.append(language)
        audio: dict[str, tuple[str, SpokenText]] = {}
        for language, future in made.items():
            result = future.result()
            if result is None:
                report.failed.append(language)
            else:
                audio[language] = result
        return audio

    def _post(
        self, job: _Segment, audio: dict[str, tuple[str, SpokenText]], numbers: dict[str, int], report: SpeechReport
    ) -> None:
        """``translatedAudio`` to each language's listeners (all languages' posts in flight at once), or a big
        session's to the fan-out function, one invocation per group of shards with every language's message."""
        by_language = {
            language: messages.translated_audio(
                job.session_id,
                job.segment_id,
                language,
                url,
                spoken.duration_seconds,
                numbers[language],
                job.texts[language],
                job.now_ms,
            )
            for language, (url, spoken) in audio.items()
        }
        if job.fanout is not None:
            handed = fanout_groups.hand_off(job.fanout, by_language, job.now_ms)
            report.spoken += list(by_language)
            report.handed_off = handed.invocations - handed.failed
            return
        pending = []
        for language, message in by_language.items():
            try:
                broadcast = downstream.start_broadcast(
                    job.session_id, language, message, executor=self._posts, listeners=job.listeners[language]
                )
            except Exception:
                logger.exception(
                    "translatedAudio not posted", extra={"session_id": job.session_id, "target_language": language}
                )
                report.failed.append(language)
                continue
            pending.append(broadcast)
            report.spoken.append(language)
        for broadcast in pending:
            report.posted += broadcast.finish().delivered

    def _make(
        self, job: _Segment, synthesizer: Synthesizer, store: AudioStore, language: str
    ) -> tuple[str, SpokenText] | None:
        """Synthesize and store one language's speech: its URL and the audio; None when it failed (logged)."""
        extra = {
            "session_id": job.session_id,
            "segment_id": job.segment_id,
            "target_language": language,
            "synthesizer": synthesizer.name,
        }
        try:
            spoken = synthesizer.synthesize(job.texts[language], language)
            key = audio_key(job.session_id, language, job.segment_id)
            store.put(key, spoken.audio, spoken.content_type)
            return store.url(key, limits.AUDIO_URL_EXPIRY_SECONDS), spoken
        except SpeechUnavailable as unavailable:
            logger.warning(f"segment not spoken: {unavailable}", extra=extra)
        except Exception:
            logger.exception("segment not spoken", extra=extra)
        return None


def _speaks(synthesizer: Synthesizer, language: str) -> bool:
    try:
        return synthesizer.speaks(language)
    except Exception:
        logger.exception("could not ask the synthesizer about a language", extra={"target_language": language})
        return False
