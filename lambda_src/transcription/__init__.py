"""From the speaker's audio to transcript segments: the partial-result processor (pure) and, behind small
interfaces, the recognizers that feed it."""
