"""From the speaker's audio to transcript segments and captions: the session's transcription consumer and what it
delivers. The partial-result processor it runs is pure (``lambda_src.model.partial_result_processor``); the
recognizers that feed it are adapters (``lambda_src.adapters.transcription``)."""
