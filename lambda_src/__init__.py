"""Session service for live speech translation: the code every Lambda function of the stack runs.

Layers, from the top down; each imports only the layers below it (``pyproject.toml``'s import contracts,
``make lint``):

- ``handlers`` (thin API Gateway, stream and schedule entry points) and ``downstream`` (the typed API of downstream
  processors);
- ``app``: the use cases (connections, the speaker's actions, the sweeper, audio, transcription, captions, status
  pushes, fan-out);
- ``runtime``: the composition root, the one owner of the process-wide objects (repositories, caches);
- ``adapters``: the outside world (the DynamoDB repositories, the ``@connections`` client, the recognizers, the
  translators, the token verifier, the consumer's starter);
- ``protocol``: reading requests, building replies;
- ``platform``: logging, metrics emission, tracing, the botocore session;
- ``model``: pure values and rules (session, broadcast state, partial-result settings and processor, caller, ids);
- ``contract``: what the stack, the client library, the tests and the functions share, standard library only
  (routes, errors, limits, function settings, schema, telemetry names, wire names, languages).
"""
