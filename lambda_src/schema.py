"""Key, index and TTL names of the two tables. The CDK tables construct and the repositories both
read them from here, so a deployed table and the code that uses it cannot disagree."""

from __future__ import annotations

from typing import Final

SESSIONS_PARTITION_KEY: Final = "sessionId"
SESSIONS_TTL_ATTRIBUTE: Final = "expiresAt"

CONNECTIONS_PARTITION_KEY: Final = "connectionId"
CONNECTIONS_TTL_ATTRIBUTE: Final = "expiresAt"
# Listeners of a session by target language, for fan-out. Speaker and plain connections have no
# ``targetLanguage`` and so stay out of the index.
CONNECTIONS_BY_SESSION_INDEX: Final = "bySessionLanguage"
CONNECTIONS_BY_SESSION_PARTITION_KEY: Final = "sessionId"
CONNECTIONS_BY_SESSION_SORT_KEY: Final = "targetLanguage"
