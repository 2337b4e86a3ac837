"""The speech adapters (decision record 0039): Amazon Polly's request, voices and errors (botocore's Stubber, no
network), the MP3 duration they report, espeak-ng's real MP3 (the local stand-in), the S3 store's upload and
presigned URL, and which of them the environment and the runtime build."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from lambda_src import runtime
from lambda_src.adapters import speech
from lambda_src.adapters.speech import mp3, s3_store
from lambda_src.adapters.speech.espeak import EspeakSynthesizer
from lambda_src.adapters.speech.polly import PollySynthesizer
from lambda_src.adapters.speech.s3_store import S3AudioStore
from lambda_src.contract import function_settings, languages, voices
from lambda_src.model.speech import SpeechUnavailable
from lambda_src.platform import aws
from tests.support.helpers import REGION

BUCKET = "audio-bucket"

# Frame headers: MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, mono, no padding (417 bytes, 1152 samples); MPEG-2
# Layer III, 48 kbit/s, 24 kHz, mono (144 bytes, 576 samples: Polly's neural MP3).
MPEG1_HEADER = bytes([0xFF, 0xFB, 0x90, 0xC4])
MPEG1_FRAME_BYTES = 417
MPEG2_HEADER = bytes([0xFF, 0xF3, 0x64, 0xC4])
MPEG2_FRAME_BYTES = 144


def frames(header: bytes, length: int, count: int) -> bytes:
    return (header + bytes(length - len(header))) * count


def info_frame(header: bytes, length: int, side_information: int) -> bytes:
    """A Xing/Info frame, as LAME and Polly put first: the tag after the header and the side information."""
    body = bytearray(length - len(header))
    body[side_information : side_information + 4] = b"Info"
    return header + bytes(body)


# -- the MP3 duration ---------------------------------------------------------------------------------


def test_the_duration_of_an_mp3_is_its_frames_samples_over_its_rate() -> None:
    assert mp3.duration_seconds(frames(MPEG1_HEADER, MPEG1_FRAME_BYTES, 100)) == pytest.approx(100 * 1152 / 44100)
    assert mp3.duration_seconds(frames(MPEG2_HEADER, MPEG2_FRAME_BYTES, 250)) == pytest.approx(250 * 576 / 24000)


def test_tags_and_the_info_frame_add_nothing_to_the_duration() -> None:
    id3v2 = b"ID3\x04\x00\x00" + bytes([0, 0, 1, 0]) + bytes(128)  # a 128-byte tag (syncsafe size)
    audio = info_frame(MPEG2_HEADER, MPEG2_FRAME_BYTES, 9) + frames(MPEG2_HEADER, MPEG2_FRAME_BYTES, 50)
    id3v1 = b"TAG" + bytes(125)
    assert mp3.duration_seconds(id3v2 + audio + id3v1) == pytest.approx(50 * 576 / 24000)


def test_what_is_not_mp3_has_no_duration() -> None:
    with pytest.raises(ValueError, match="no MP3 frame"):
        mp3.duration_seconds(b"RIFF" + bytes(100))
    with pytest.raises(ValueError, match="no MP3 audio frame"):
        mp3.duration_seconds(b"")
    with pytest.raises(ValueError, match="no MP3 frame at byte 417"):
        mp3.duration_seconds(frames(MPEG1_HEADER, MPEG1_FRAME_BYTES, 1) + b"garbage!")


# -- Amazon Polly -----------------------------------------------------------------------------------------


@pytest.fixture
def polly() -> Iterator[tuple[PollySynthesizer, Stubber]]:
    client = aws.create_client("polly", region_name=REGION)
    with Stubber(client) as stubber:
        yield PollySynthesizer(client), stubber
        stubber.assert_no_pending_responses()


def polly_answer(audio: bytes) -> dict[str, object]:
    return {
        "AudioStream": StreamingBody(io.BytesIO(audio), len(audio)),
        "ContentType": "audio/mpeg",
        "RequestCharacters": 12,
    }


def test_polly_speaks_with_the_languages_neural_voice_in_mp3(polly) -> None:
    synthesizer, stubber = polly
    audio = frames(MPEG2_HEADER, MPEG2_FRAME_BYTES, 125)
    stubber.add_response(
        "synthesize_speech",
        polly_answer(audio),
        expected_params={
            "Text": "Good morning",
            "TextType": "text",
            "VoiceId": "Joanna",
            "Engine": "neural",
            "OutputFormat": "mp3",
        },
    )

    spoken = synthesizer.synthesize("Good morning", "en")

    assert spoken.audio == audio
    assert spoken.content_type == "audio/mpeg"
    assert spoken.duration_seconds == pytest.approx(125 * 576 / 24000)


def test_polly_uses_the_standard_engine_for_a_voice_without_a_neural_one(polly) -> None:
    synthesizer, stubber = polly
    assert voices.POLLY_VOICES["ro"].neural is False
    stubber.add_response(
        "synthesize_speech",
        polly_answer(frames(MPEG2_HEADER, MPEG2_FRAME_BYTES, 10)),
        expected_params={
            "Text": "Bună dimineața",
            "TextType": "text",
            "VoiceId": "Carmen",
            "Engine": "standard",
            "OutputFormat": "mp3",
        },
    )
    synthesizer.synthesize("Bună dimineața", "ro")


def test_polly_asks_a_bilingual_voice_for_the_language_it_should_speak(polly) -> None:
    synthesizer, stubber = polly
    stubber.add_response(
        "synthesize_speech",
        polly_answer(frames(MPEG2_HEADER, MPEG2_FRAME_BYTES, 10)),
        expected_params={
            "Text": "नमस्ते",
            "TextType": "text",
            "VoiceId": "Kajal",
            "Engine": "neural",
            "OutputFormat": "mp3",
            "LanguageCode": "hi-IN",
        },
    )
    synthesizer.synthesize("नमस्ते", "hi")


def test_polly_cannot_speak_a_language_without_a_voice_and_does_not_ask(polly) -> None:
    synthesizer, _ = polly  # no response queued: a request would fail the Stubber
    assert not synthesizer.speaks("zu")
    with pytest.raises(SpeechUnavailable) as refused:
        synthesizer.synthesize("Sawubona", "zu")
    assert refused.value.language == "zu"


def test_a_refusal_by_polly_names_the_language_the_voice_and_the_error(polly) -> None:
    synthesizer, stubber = polly
    stubber.add_client_error(
        "synthesize_speech", service_error_code="ThrottlingException", service_message="Rate exceeded"
    )
    with pytest.raises(RuntimeError, match=r"refused to speak es \(Lupe, neural\): ThrottlingException"):
        synthesizer.synthesize("Hola", "es")


# -- the voices' configuration (pollyVoices) -------------------------------------------------------------------


def test_overrides_name_a_voice_and_its_engine_neural_unless_said() -> None:
    assert voices.parse_polly_voices(" es:Lucia , fr:Remi:neural,ro:Carmen:standard,hi:Aditi:standard:hi-IN ") == {
        "es": voices.PollyVoice("Lucia", neural=True),
        "fr": voices.PollyVoice("Remi", neural=True),
        "ro": voices.PollyVoice("Carmen", neural=False),
        "hi": voices.PollyVoice("Aditi", neural=False, language_code="hi-IN"),
    }
    assert voices.parse_polly_voices("") == voices.parse_polly_voices(" , ") == {}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("es", "is not language:VoiceId"),
        ("es:Lucia:neural:es-ES:more", "is not language:VoiceId"),
        ("xx:Lucia", "not a language the service supports"),
        ("ES:Lucia", "not a language the service supports"),
        ("es:Lucia,es:Lupe", "'es' is given a voice twice"),
        ("es:lucia", "not a Polly voice id"),
        ("es:", "not a Polly voice id"),
        ("es:Lucía", "not a Polly voice id"),
        ("es:Lucia:generative", "the engine must be one of neural, standard"),
        ("es:Lucia:", "the engine must be one of neural, standard"),
        ("es:Lucia:neural:es_ES", "not a Polly language code"),
    ],
)
def test_a_bad_override_is_refused_saying_why(raw: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        voices.parse_polly_voices(raw)


def test_the_voice_id_form_admits_every_voice_polly_has_and_every_default() -> None:
    # botocore's model of Polly lists its voices and language codes (the form is checked at synth, where botocore is
    # not needed, and new voices need no new botocore)
    model = aws.create_client("polly", region_name=REGION).meta.service_model
    for voice_id in [*model.shape_for("VoiceId").enum, *(v.voice_id for v in voices.POLLY_VOICES.values())]:
        assert voices.parse_polly_voices(f"en:{voice_id}")["en"].voice_id == voice_id
    for code in model.shape_for("LanguageCode").enum:
        assert voices.parse_polly_voices(f"en:Joanna:neural:{code}")["en"].language_code == code
    assert set(model.shape_for("Engine").enum) >= set(voices.POLLY_ENGINES)


def test_overrides_are_merged_over_the_defaults() -> None:
    merged = voices.merged_polly_voices(voices.parse_polly_voices("es:Sergio,ro:Carmen:standard,hi:Kajal"))
    # The languages named get their voice; the others keep the table's; none is added or lost
    assert merged["es"] == voices.PollyVoice("Sergio", neural=True)
    assert merged["ro"] == voices.PollyVoice("Carmen", neural=False)
    assert {language: merged[language] for language in merged if language not in ("es", "ro", "hi")} == {
        language: voice for language, voice in voices.POLLY_VOICES.items() if language not in ("es", "ro", "hi")
    }
    assert set(merged) == set(voices.POLLY_VOICES)
    # And the default's own bilingual voice keeps the language it is asked to speak
    assert merged["hi"] == voices.POLLY_VOICES["hi"] == voices.PollyVoice("Kajal", neural=True, language_code="hi-IN")
    assert voices.merged_polly_voices({}) == voices.POLLY_VOICES


def test_the_runtimes_polly_speaks_with_the_environments_override(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a function whose environment overrides the Spanish voice and gives Polly's standard Catalan voice
    monkeypatch.delenv(speech.ENV_SYNTHESIZER, raising=False)
    monkeypatch.setenv(function_settings.ENV_POLLY_VOICES, "es:Sergio:neural,ca:Arlet:standard")
    runtime.reset()
    synthesizer = runtime.synthesizer()
    assert isinstance(synthesizer, PollySynthesizer)
    audio = frames(MPEG2_HEADER, MPEG2_FRAME_BYTES, 10)
    with Stubber(synthesizer.client()) as stubber:
        for text, voice, engine in (("Hola", "Sergio", "neural"), ("Bon dia", "Arlet", "standard")):
            stubber.add_response(
                "synthesize_speech",
                polly_answer(audio),
                expected_params={
                    "Text": text,
                    "TextType": "text",
                    "VoiceId": voice,
                    "Engine": engine,
                    "OutputFormat": "mp3",
                },
            )
        stubber.add_response(  # a language not overridden: the table's voice
            "synthesize_speech",
            polly_answer(audio),
            expected_params={
                "Text": "Bonjour",
                "TextType": "text",
                "VoiceId": "Lea",
                "Engine": "neural",
                "OutputFormat": "mp3",
            },
        )
        # When it speaks Spanish, Catalan and French
        for text, language in (("Hola", "es"), ("Bon dia", "ca"), ("Bonjour", "fr")):
            synthesizer.synthesize(text, language)
        # Then Polly was asked for each override's voice and engine, and the table's voice elsewhere
        stubber.assert_no_pending_responses()
    # And the environment was read once: the same synthesizer until the runtime is reset
    monkeypatch.setenv(function_settings.ENV_POLLY_VOICES, "es:Lucia")
    assert runtime.synthesizer() is synthesizer


def test_a_bad_override_in_the_environment_stops_the_function_at_its_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(function_settings.ENV_POLLY_VOICES, "es:Lucia:loud")
    runtime.reset()
    with pytest.raises(ValueError, match="POLLY_VOICES: 'es:Lucia:loud': the engine must be one of neural, standard"):
        runtime.synthesizer()


def test_every_voice_speaks_a_supported_language() -> None:
    assert set(voices.POLLY_VOICES) <= languages.SUPPORTED_LANGUAGES
    assert set(voices.ESPEAK_VOICES) <= languages.SUPPORTED_LANGUAGES
    # Every language Polly speaks, the local stand-in speaks too (what works in the cloud can be tried locally).
    assert set(voices.POLLY_VOICES) <= set(voices.ESPEAK_VOICES)


# -- espeak-ng, the local stand-in --------------------------------------------------------------------------


def test_every_espeak_voice_is_one_espeak_ng_has() -> None:
    listed = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    installed = {line.split()[1] for line in listed.splitlines()[1:]}
    assert set(voices.ESPEAK_VOICES.values()) - installed == set()


def test_espeak_speaks_real_mp3_that_plays_as_long_as_it_says(tmp_path: Path) -> None:
    spoken = EspeakSynthesizer().synthesize("One, two, three, four, five, six, seven, eight, nine, ten.", "en")

    assert spoken.content_type == "audio/mpeg"
    # What LAME decodes it to plays as long as the synthesizer said (give or take the encoder's padding)
    (tmp_path / "spoken.mp3").write_bytes(spoken.audio)
    subprocess.run(
        ["lame", "--quiet", "--decode", str(tmp_path / "spoken.mp3"), str(tmp_path / "decoded.wav")], check=True
    )
    with wave.open(str(tmp_path / "decoded.wav"), "rb") as decoded:
        played = decoded.getnframes() / decoded.getframerate()
    assert spoken.duration_seconds == pytest.approx(played, abs=0.1)
    assert mp3.duration_seconds(spoken.audio) == pytest.approx(played, abs=0.1)
    # And ten words take seconds, not milliseconds
    assert 2 < spoken.duration_seconds < 10


def test_espeak_speaks_text_that_looks_like_an_option() -> None:
    spoken = EspeakSynthesizer().synthesize("--help me", "en")
    assert spoken.duration_seconds > 0.3


def test_espeak_cannot_speak_a_language_without_a_voice() -> None:
    synthesizer = EspeakSynthesizer()
    assert synthesizer.speaks("es") and not synthesizer.speaks("so")
    with pytest.raises(SpeechUnavailable):
        synthesizer.synthesize("Subax wanaagsan", "so")


def test_espeak_without_lame_fails_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "lame" else real_which(tool))
    with pytest.raises(RuntimeError, match="lame missing"):
        EspeakSynthesizer().synthesize("Hello", "en")


# -- the S3 audio store ---------------------------------------------------------------------------------


@pytest.fixture
def store() -> Iterator[tuple[S3AudioStore, Stubber]]:
    client = aws.create_client("s3", region_name=REGION, config=s3_store.CLIENT_CONFIG)
    with Stubber(client) as stubber:
        yield S3AudioStore(BUCKET, client), stubber
        stubber.assert_no_pending_responses()


def test_the_store_puts_the_audio_with_its_content_type(store) -> None:
    audio_store, stubber = store
    stubber.add_response(
        "put_object",
        {"ETag": '"abc"'},
        expected_params={
            "Bucket": BUCKET,
            "Key": "audio/s-1/es/seg-1.mp3",
            "Body": b"\xff\xf3mp3",
            "ContentType": "audio/mpeg",
        },
    )
    audio_store.put("audio/s-1/es/seg-1.mp3", b"\xff\xf3mp3", "audio/mpeg")


def test_the_stores_url_is_a_signed_get_of_the_object_for_the_time_asked(store) -> None:
    audio_store, _ = store  # signing makes no request
    url = urlsplit(audio_store.url("audio/s-1/es/seg-1.mp3", 300))
    query = parse_qs(url.query)

    assert url.scheme == "https"
    assert f"{url.netloc}{url.path}".endswith("/audio/s-1/es/seg-1.mp3")
    assert BUCKET in f"{url.netloc}{url.path}"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["300"]
    assert "X-Amz-Signature" in query


# -- which ones a function gets ---------------------------------------------------------------------------


def test_the_environment_chooses_espeak_locally_and_polly_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(speech.ENV_SYNTHESIZER, speech.ESPEAK)
    assert isinstance(speech.from_environment(), EspeakSynthesizer)
    monkeypatch.delenv(speech.ENV_SYNTHESIZER)
    assert isinstance(speech.from_environment(), PollySynthesizer)


def test_the_runtime_builds_each_once_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(speech.ENV_SYNTHESIZER, speech.ESPEAK)
    monkeypatch.setenv(function_settings.ENV_AUDIO_BUCKET, BUCKET)
    synthesizer, store = runtime.synthesizer(), runtime.audio_store()

    assert synthesizer is runtime.synthesizer() and store is runtime.audio_store()
    assert isinstance(store, S3AudioStore) and store.bucket == BUCKET
    assert synthesizer.name.startswith("espeak-ng")

    monkeypatch.delenv(speech.ENV_SYNTHESIZER)
    runtime.reset()
    assert isinstance(runtime.synthesizer(), PollySynthesizer)


def test_a_function_without_the_bucket_has_no_audio_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(function_settings.ENV_AUDIO_BUCKET, raising=False)
    with pytest.raises(RuntimeError, match="AUDIO_BUCKET is not set"):
        runtime.audio_store()
