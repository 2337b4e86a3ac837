"""Human-friendly session ids such as ``golden-eagle-427``.

Ids are drawn with a cryptographic random source from two curated word lists; any id that contains a
blocked word (in a word, or across the joins) is drawn again. Uniqueness is not decided here: the Sessions
repository writes with ``attribute_not_exists`` and asks for a new id on collision.
"""

from __future__ import annotations

import secrets
from typing import Final

ADJECTIVES: Final = (
    "able", "agile", "amber", "ample", "azure", "balmy", "bold", "brave", "breezy", "bright",
    "brisk", "calm", "candid", "cheery", "civic", "clever", "cloudy", "coastal", "cosmic", "cozy",
    "crisp", "curious", "daring", "dapper", "dewy", "eager", "early", "earnest", "easy", "elegant",
    "epic", "even", "fair", "fancy", "fearless", "festive", "fluent", "flying", "fond", "frank",
    "fresh", "friendly", "frosty", "gentle", "gifted", "glad", "gleaming", "golden", "graceful", "grand",
    "green", "happy", "hardy", "hearty", "helpful", "honest", "hopeful", "humble", "jolly", "jovial",
    "joyful", "keen", "kind", "lively", "loyal", "lucky", "lunar", "merry", "mighty", "mellow",
    "modest", "noble", "nimble", "olive", "orange", "patient", "peaceful", "placid", "plucky", "polite",
    "proud", "quick", "quiet", "radiant", "rapid", "ready", "regal", "rosy", "royal", "rustic",
    "serene", "sharp", "shiny", "silver", "simple", "sincere", "smart", "snowy", "solar", "sparkly",
    "spry", "steady", "sunny", "swift", "tidy", "tranquil", "trusty", "upbeat", "valiant", "vivid",
    "warm", "wise", "witty", "zesty",
)

NOUNS: Final = (
    "acorn", "albatross", "alpaca", "antelope", "aspen", "badger", "beacon", "beaver", "birch", "bison",
    "brook", "buffalo", "canyon", "cardinal", "caribou", "cedar", "cheetah", "clover", "comet", "condor",
    "coral", "cougar", "coyote", "crane", "creek", "cypress", "dolphin", "dove", "eagle", "egret",
    "elk", "falcon", "fern", "finch", "fjord", "forest", "fox", "gazelle", "gecko", "glacier",
    "grove", "gull", "harbor", "hawk", "heron", "hill", "ibis", "island", "jaguar", "jay",
    "kestrel", "koala", "lagoon", "lake", "lark", "leopard", "lily", "lion", "llama", "lotus",
    "lynx", "magpie", "maple", "marlin", "meadow", "meerkat", "mesa", "moose", "oak", "ocean",
    "orca", "oriole", "osprey", "otter", "owl", "panda", "panther", "parrot", "pelican", "penguin",
    "pine", "plover", "puffin", "quail", "raven", "reef", "river", "robin", "salmon", "sequoia",
    "sparrow", "spruce", "starling", "stream", "summit", "swallow", "swan", "tiger", "toucan", "trout",
    "tulip", "valley", "walrus", "willow", "wolf", "wren", "yak", "zebra",
)

# Words that must not appear anywhere in an id, including across the joins ("...-ass..." etc.).
BLOCKLIST: Final = frozenset(
    {
        "anal", "anus", "arse", "ass", "bitch", "boob", "butt", "cock", "coon", "crap", "cum",
        "cunt", "damn", "dick", "die", "dildo", "dyke", "fag", "fuck", "gay", "gook", "hell", "hitler",
        "homo", "jew", "kike", "kill", "kkk", "nazi", "nig", "penis", "piss", "poo", "porn", "pussy",
        "rape", "sex", "shit", "slut", "spic", "suck", "tit", "twat", "wank", "whore",
    }
)
# Numbers with unwanted connotations.
BLOCKED_NUMBERS: Final = frozenset({666, 420, 911, 187, 148, 888})


def is_blocked(session_id: str) -> bool:
    """True when the id contains a blocked word (hyphens removed, so joins are checked too) or number."""
    letters = session_id.replace("-", "")
    number = session_id.rsplit("-", 1)[-1]
    return any(word in letters for word in BLOCKLIST) or (number.isdigit() and int(number) in BLOCKED_NUMBERS)


def new_session_id() -> str:
    """A fresh ``adjective-noun-NNN`` id (NNN from 100 to 999) that passes the blocklist."""
    while True:
        candidate = f"{secrets.choice(ADJECTIVES)}-{secrets.choice(NOUNS)}-{100 + secrets.randbelow(900)}"
        if not is_blocked(candidate):
            return candidate
