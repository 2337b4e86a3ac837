"""Human-friendly session ids such as ``golden-eagle-427``.

Ids are drawn with a cryptographic random source from two curated word lists, an adjective and a noun, of
the environment's vocabulary (``lambda_src.contract.session_id_words``); any id that contains a blocked word (in a
word, or across the joins) is drawn again, whatever the vocabulary. Uniqueness is not decided here: the Sessions
repository writes with ``attribute_not_exists`` and asks for a new id on collision.
"""

from __future__ import annotations

import secrets

from lambda_src.contract.session_id_words import BLOCKED_NUMBERS, BLOCKLIST, DEFAULT_VOCABULARY, VOCABULARIES


def is_blocked(session_id: str) -> bool:
    """True when the id contains a blocked word (hyphens removed, so joins are checked too) or number."""
    letters = session_id.replace("-", "")
    number = session_id.rsplit("-", 1)[-1]
    return any(word in letters for word in BLOCKLIST) or (number.isdigit() and int(number) in BLOCKED_NUMBERS)


def new_session_id(vocabulary: str = DEFAULT_VOCABULARY) -> str:
    """A fresh ``adjective-noun-NNN`` id (NNN from 100 to 999) from the named vocabulary that passes the
    blocklist."""
    words = VOCABULARIES[vocabulary]
    while True:
        candidate = f"{secrets.choice(words.adjectives)}-{secrets.choice(words.nouns)}-{100 + secrets.randbelow(900)}"
        if not is_blocked(candidate):
            return candidate
