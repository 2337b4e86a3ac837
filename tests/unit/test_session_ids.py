"""Human-friendly session ids: format, word lists of each vocabulary, blocklist, and the setting that picks
the vocabulary."""

from __future__ import annotations

import itertools
import re

import pytest

from lambda_src import runtime
from lambda_src.contract import function_settings, session_id_words
from lambda_src.contract.session_id_words import ADJECTIVES, BLOCKED_NUMBERS, BLOCKLIST, NOUNS, VOCABULARIES
from lambda_src.model import session_ids
from lambda_src.model.session_ids import is_blocked, new_session_id
from lambda_src.protocol.validation import SESSION_ID_PATTERN
from tests.unit.flows import create_session

CONTRACT_PATTERN = re.compile(r"[a-z]+-[a-z]+-[1-9][0-9]{2}")
WORD = re.compile(r"[a-z]+")  # a word of the id format: lowercase ASCII letters only


def test_the_general_vocabulary_is_the_default_and_a_themed_one_exists():
    assert session_id_words.DEFAULT_VOCABULARY == "general"
    assert VOCABULARIES["general"] == session_id_words.Vocabulary(ADJECTIVES, NOUNS)
    assert set(VOCABULARIES) == {"general", "themed"}
    assert function_settings.SESSION_ID_VOCABULARY.default == "general"
    assert function_settings.SESSION_ID_VOCABULARY.choices == ("general", "themed")


@pytest.mark.parametrize("vocabulary", sorted(VOCABULARIES))
def test_generated_ids_have_the_contract_format_and_are_never_blocked(vocabulary):
    words = VOCABULARIES[vocabulary]
    # Given a few thousand freshly drawn ids
    ids = [new_session_id(vocabulary) for _ in range(3000)]
    # Then each is adjective-noun-NNN from the vocabulary's lists, with NNN in 100..999, and none is blocked
    for session_id in ids:
        assert CONTRACT_PATTERN.fullmatch(session_id), session_id
        assert SESSION_ID_PATTERN.match(session_id)
        adjective, noun, number = session_id.split("-")
        assert adjective in words.adjectives and noun in words.nouns
        assert 100 <= int(number) <= 999
        assert not is_blocked(session_id)
    # And they are spread over the space (not a constant or a tiny cycle)
    assert len(set(ids)) > 2900


@pytest.mark.parametrize(
    ("vocabulary", "part"), list(itertools.product(sorted(VOCABULARIES), ["adjectives", "nouns"])), ids="-".join
)
def test_word_lists_are_large_unique_lowercase_and_clean(vocabulary, part):
    words = getattr(VOCABULARIES[vocabulary], part)
    assert len(set(words)) >= 100
    assert len(set(words)) == len(words)
    for word in words:
        assert WORD.fullmatch(word) and word.isascii(), word
        assert not any(blocked in word for blocked in BLOCKLIST), word


def test_the_themed_vocabulary_is_christian_and_biblical():
    themed = VOCABULARIES["themed"]
    # (the words the product names; some plain virtues and creatures are in the general lists too)
    assert {"faithful", "blessed", "gracious", "righteous", "holy", "merciful"} <= set(themed.adjectives)
    assert {"shepherd", "covenant", "temple", "lamb", "gospel"} <= set(themed.nouns)
    # Words said aloud in one slot do not collide with each other's sound or spelling (kept out on purpose)
    for left_out in ("prophet", "psalm", "peace", "morning", "graceful", "lamp", "forgiven"):
        assert left_out not in themed.adjectives + themed.nouns, left_out


@pytest.mark.parametrize("vocabulary", sorted(VOCABULARIES))
def test_every_blocked_join_of_a_vocabulary_is_drawn_again(vocabulary, monkeypatch):
    # Given every adjective-noun pair of the vocabulary that spells a blocked word across the join
    words = VOCABULARIES[vocabulary]
    blocked = [(a, n) for a in words.adjectives for n in words.nouns if is_blocked(f"{a}-{n}-427")]
    clean = (words.adjectives[0], words.nouns[0])
    assert not is_blocked(f"{clean[0]}-{clean[1]}-427")
    # When each is the draw, followed by a clean one
    for pair in blocked:
        draws = iter([*pair, *clean])
        monkeypatch.setattr(session_ids.secrets, "choice", lambda _seq, draws=draws: next(draws))
        monkeypatch.setattr(session_ids.secrets, "randbelow", lambda _n: 327)
        # Then the blocked candidate is discarded and the clean one returned
        assert new_session_id(vocabulary) == f"{clean[0]}-{clean[1]}-427", pair
    # (the general vocabulary has a few such joins, e.g. cloudy-kestrel; the themed one was chosen to have none)
    assert (len(blocked) > 0) == (vocabulary == "general")


@pytest.mark.parametrize("vocabulary", sorted(VOCABULARIES))
def test_the_setting_selects_the_vocabulary_of_new_sessions(vocabulary, tables, gateway, monkeypatch):
    # Given the functions configured with a vocabulary
    monkeypatch.setenv(function_settings.ENV_SESSION_ID_VOCABULARY, vocabulary)
    runtime.reset()
    # When sessions are created
    ids = [create_session(f"speaker-{index}")[0] for index in range(20)]  # (each under its active-session limit)
    # Then their ids are drawn from that vocabulary's lists
    words = VOCABULARIES[vocabulary]
    others = [VOCABULARIES[name] for name in VOCABULARIES if name != vocabulary]
    for session_id in ids:
        adjective, noun, _number = session_id.split("-")
        assert adjective in words.adjectives and noun in words.nouns, session_id
    # And not from another's (the words both share aside)
    assert any(all(session_id.split("-")[0] not in other.adjectives for other in others) for session_id in ids), ids


def test_an_unknown_vocabulary_fails_the_functions_settings_loudly(monkeypatch):
    monkeypatch.setenv(function_settings.ENV_SESSION_ID_VOCABULARY, "klingon")
    runtime.reset()
    with pytest.raises(ValueError, match="SESSION_ID_VOCABULARY must be one of general, themed, got 'klingon'"):
        function_settings.load()
    monkeypatch.delenv(function_settings.ENV_SESSION_ID_VOCABULARY)
    runtime.reset()


@pytest.mark.parametrize(
    "session_id",
    [
        "cloudy-kestrel-123",  # "dyke" across the join
        "lunar-sequoia-123",  # "arse" across the join
        "brass-owl-123",  # "ass" inside a word
        "fa-gull-123",  # "fag" across the join
        "shell-oak-123",  # "hell" inside a word
        "golden-eagle-666",
        "golden-eagle-420",
        "golden-eagle-911",
    ],
)
def test_blocked_words_across_joins_and_blocked_numbers_are_caught(session_id):
    assert is_blocked(session_id)


@pytest.mark.parametrize("session_id", ["golden-eagle-427", "brave-fox-100", "lunar-owl-999"])
def test_clean_ids_are_not_blocked(session_id):
    assert not is_blocked(session_id)


def test_blocked_numbers_are_three_digit_ids():
    # Every blocked number is one the generator could draw, so the check is not dead code
    assert all(100 <= number <= 999 for number in BLOCKED_NUMBERS)


def test_a_blocked_draw_is_drawn_again(monkeypatch):
    # Given a random source whose first draw spells a blocked id across the join
    draws = iter(["cloudy", "kestrel", "golden", "eagle"])
    numbers = iter([327, 327])
    monkeypatch.setattr(session_ids.secrets, "choice", lambda _seq: next(draws))
    monkeypatch.setattr(session_ids.secrets, "randbelow", lambda _n: next(numbers))
    # When an id is drawn
    # Then the blocked candidate is discarded and the next one returned
    assert new_session_id() == "golden-eagle-427"


def test_a_blocked_number_is_drawn_again(monkeypatch):
    draws = iter(["golden", "eagle", "golden", "eagle"])
    numbers = iter([566, 327])  # 100 + 566 = 666
    monkeypatch.setattr(session_ids.secrets, "choice", lambda _seq: next(draws))
    monkeypatch.setattr(session_ids.secrets, "randbelow", lambda _n: next(numbers))
    assert new_session_id() == "golden-eagle-427"
