"""Human-friendly session ids: format, word lists and blocklist."""

from __future__ import annotations

import re

import pytest

from lambda_src import session_ids
from lambda_src.session_ids import ADJECTIVES, BLOCKED_NUMBERS, BLOCKLIST, NOUNS, is_blocked, new_session_id
from lambda_src.validation import SESSION_ID_PATTERN

CONTRACT_PATTERN = re.compile(r"[a-z]+-[a-z]+-[1-9][0-9]{2}")


def test_generated_ids_have_the_contract_format_and_are_never_blocked():
    # Given a few thousand freshly drawn ids
    ids = [new_session_id() for _ in range(3000)]
    # Then each is adjective-noun-NNN from the lists, with NNN in 100..999, and none is blocked
    for session_id in ids:
        assert CONTRACT_PATTERN.fullmatch(session_id), session_id
        assert SESSION_ID_PATTERN.match(session_id)
        adjective, noun, number = session_id.split("-")
        assert adjective in ADJECTIVES and noun in NOUNS
        assert 100 <= int(number) <= 999
        assert not is_blocked(session_id)
    # And they are spread over the space (not a constant or a tiny cycle)
    assert len(set(ids)) > 2900


@pytest.mark.parametrize("words", [ADJECTIVES, NOUNS], ids=["adjectives", "nouns"])
def test_word_lists_are_large_unique_lowercase_and_clean(words):
    assert len(set(words)) >= 100
    assert len(set(words)) == len(words)
    for word in words:
        assert re.fullmatch(r"[a-z]+", word), word
        assert not any(blocked in word for blocked in BLOCKLIST), word


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
