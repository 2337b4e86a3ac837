"""Session service for live speech translation: the code every Lambda function of the stack runs.

Layers, from the outside in: ``handlers`` (thin API Gateway entry points) -> ``validation``, ``service``,
``session_control``, ``fanout`` and ``rate_limits`` (the rules) -> ``repositories`` (one per DynamoDB table)
and ``connections_api`` (posts to connections).
"""
