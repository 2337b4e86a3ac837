"""Where the consumer's forwarded segments go: the speaker's ``transcript``, each listener's ``caption`` in
its own language (``lambda_src.app.captions``), from the same segment with the same ``segmentId``, each final
spoken to the listeners who want audio (``lambda_src.app.speech``: ``translatedAudio``, with the captions' texts,
once they are posted, on its own thread), and each final into the session's transcript
(``lambda_src.app.transcripts``), with the captions' texts."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from lambda_src.adapters import translation
from lambda_src.adapters.translation import Translator
from lambda_src.app import fanout
from lambda_src.app.captions import CaptionDelivery
from lambda_src.app.speech import SpeechDelivery
from lambda_src.app.transcripts import TranscriptRecorder
from lambda_src.model.partial_result_processor import Segment
from lambda_src.model.session import Session
from lambda_src.protocol import messages


class SegmentDelivery:
    """One consumer's delivery (it keeps the session's audience and its threads between segments); a context
    manager that stops its threads at the end."""

    def __init__(self, translator: Callable[[], Translator] = translation.from_environment) -> None:
        self._translator = translator
        self._captions: CaptionDelivery | None = None
        self._speech = SpeechDelivery()
        self._transcript = TranscriptRecorder()

    def __call__(self, session: Session, segment: Segment, now_ms: int) -> None:
        """``transcript`` to the session's speaker while it is connected (a dropped speaker misses what is said in
        its absence: nothing is queued), then the captions, then (a final) its speech, handed to the speech's
        thread, and the transcript's record of it, queued for its writer thread."""
        if session.speaker_connected:
            fanout.post_quietly(session.speaker_connection_id, messages.transcript(session.session_id, segment, now_ms))
        if self._captions is None:
            self._captions = CaptionDelivery(
                session.session_id, session.source_language, self._translator(), seating=session.seating
            )
        report = self._captions.deliver(segment, now_ms)
        if not segment.is_partial:
            self._speech.speak(
                session,
                segment,
                report.texts,
                self._captions.audio_listeners(),
                now_ms,
                fanout=self._captions.fanout_plan,
            )
        self._transcript.record(session, segment, report.texts, now_ms)

    def settle(self) -> None:
        """Wait for what the segments delivered so far still have in flight (their speech, their transcript
        records): the consumer does before it lets go of its lease, so that a successor's speech is numbered after
        its own and a transcript read once the lease is free is whole."""
        self._speech.settle()
        self._transcript.settle()

    def __enter__(self) -> SegmentDelivery:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if self._captions is not None:
                self._captions.close()
        finally:
            try:
                self._speech.close()
            finally:
                self._transcript.close()
