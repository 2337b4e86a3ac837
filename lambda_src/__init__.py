"""Session service for live speech translation: the code every Lambda function of the stack runs.

Layers, from the outside in: ``handlers`` (thin API Gateway entry points) -> ``validation`` and
``sessions_logic`` (rules, no AWS) -> ``repositories`` (one per DynamoDB table).
"""
