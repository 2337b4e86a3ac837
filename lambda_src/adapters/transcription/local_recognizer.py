"""The local run's recognizer: pocketsphinx, whose US-English model ships inside its wheel (no download).

pocketsphinx gives a hypothesis that it revises as audio arrives, and nothing like Amazon Transcribe's
per-word stability, so stability is derived from how long a word has survived: a word (with every word before
it unchanged) seen in ``n`` successive hypotheses has stability ``1 - 0.5 ** n`` — 0.5 when it first
appears, 0.875 after three hypotheses, 0.97 after five — so the session's threshold (0.70–0.95) decides, as it
does with Transcribe, how long a word must hold before it is shown. Utterances are cut by pocketsphinx's
voice-activity endpointer; each is one result (``u1``, ``u2``, …), partial until the speech ends, then final.

Only US English is available offline; other source languages are refused (:func:`supported_languages`).
pocketsphinx is a dependency of the local run only, not of the deployed functions' layer.
"""

from __future__ import annotations

import re
from typing import Any

from lambda_src.contract.limits import SAMPLE_RATE_HZ
from lambda_src.model.partial_result_processor import Item, RecognitionResult
from lambda_src.model.partial_results import PartialResultConfig
from lambda_src.model.recognizer import unsupported_language

LANGUAGES = ("en", "en-US")
NAME = "local (pocketsphinx, US English)"
_FRAMES_PER_SECOND = 100  # pocketsphinx's segment times are in 10 ms frames
_FILLER = re.compile(r"^(<.*>|\[.*\])$")
_ALTERNATE = re.compile(r"\(\d+\)$")  # "read(2)": the second pronunciation of "read"


class PocketsphinxRecognizer:
    """One audio stream decoded by pocketsphinx, with survival-derived stability."""

    def __init__(self, language: str) -> None:
        if language not in LANGUAGES:
            raise unsupported_language(language, NAME, LANGUAGES)
        import pocketsphinx  # the local run's dependency only (not in the functions' layer)

        self._endpointer = pocketsphinx.Endpointer(sample_rate=SAMPLE_RATE_HZ)
        self._decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE_HZ, loglevel="FATAL")
        self._pending = b""
        self._samples = 0  # audio processed so far, for the results' times
        self._utterance = 0
        self._utterance_start = 0.0
        self._survivals: list[tuple[str, int]] = []  # (word, hypotheses it survived) of the open utterance
        self._last_hypothesis: tuple[str, ...] | None = None

    def feed(self, pcm: bytes) -> list[RecognitionResult]:
        results: list[RecognitionResult] = []
        self._pending += pcm
        size = self._endpointer.frame_bytes
        speech_seen = False
        while len(self._pending) >= size:
            frame, self._pending = self._pending[:size], self._pending[size:]
            was_in_speech = self._endpointer.in_speech
            speech = self._endpointer.process(frame)
            self._samples += size // 2
            if speech is None:
                continue
            if not was_in_speech:
                self._start_utterance(self._endpointer.speech_start)
            self._decoder.process_raw(speech, False, False)
            speech_seen = True
            if not self._endpointer.in_speech:
                results.extend(self._end_utterance())
                speech_seen = False
        if speech_seen:
            results.extend(self._partial())
        return results

    def close(self) -> list[RecognitionResult]:
        speech = self._endpointer.end_stream(self._pending) if self._pending else None
        self._pending = b""
        if speech is not None and self._last_hypothesis is not None:
            self._decoder.process_raw(speech, False, False)
        return self._end_utterance() if self._last_hypothesis is not None else []

    def fits(self, config: PartialResultConfig) -> bool:
        return True  # its stability is derived, whatever the threshold: opened with nothing the settings decide

    # -- utterances ------------------------------------------------------------------------------------
    def _start_utterance(self, start_seconds: float) -> None:
        self._utterance += 1
        self._utterance_start = start_seconds
        self._survivals = []
        self._last_hypothesis = ()
        self._decoder.start_utt()

    def _partial(self) -> list[RecognitionResult]:
        words = self._words()
        hypothesis = tuple(word for word, _start, _end in words)
        if not hypothesis or hypothesis == self._last_hypothesis:
            if hypothesis:  # unchanged: every word survived one more hypothesis
                self._survivals = [(word, n + 1) for word, n in self._survivals]
            return [] if not hypothesis else [self._result(words, partial=True)]
        survivals: list[tuple[str, int]] = []
        for index, word in enumerate(hypothesis):
            same = index < len(self._survivals) and self._survivals[index][0] == word and len(survivals) == index
            survivals.append((word, self._survivals[index][1] + 1 if same else 1))
            if not same:  # a changed word resets every word after it
                survivals.extend((later, 1) for later in hypothesis[index + 1 :])
                break
        self._survivals = survivals
        self._last_hypothesis = hypothesis
        return [self._result(words, partial=True)]

    def _end_utterance(self) -> list[RecognitionResult]:
        self._decoder.end_utt()
        words = self._words()
        self._last_hypothesis = None
        return [self._result(words, partial=False)] if words else []

    def _words(self) -> list[tuple[str, float, float]]:
        """(word, start, end) of the current hypothesis, fillers left out, times in seconds of the stream."""
        segments: Any = self._decoder.seg() if self._decoder.hyp() is not None else []
        words = []
        for segment in segments:
            if _FILLER.match(segment.word):
                continue
            start = self._utterance_start + segment.start_frame / _FRAMES_PER_SECOND
            end = self._utterance_start + (segment.end_frame + 1) / _FRAMES_PER_SECOND
            words.append((_ALTERNATE.sub("", segment.word), start, end))
        return words

    def _result(self, words: list[tuple[str, float, float]], *, partial: bool) -> RecognitionResult:
        items = tuple(
            Item(
                word,
                start,
                end,
                stability=round(1 - 0.5 ** self._survivals[index][1], 3)
                if partial and index < len(self._survivals)
                else None,
            )
            for index, (word, start, end) in enumerate(words)
        )
        return RecognitionResult(f"u{self._utterance}", items[0].start_time, items[-1].end_time, partial, items)
