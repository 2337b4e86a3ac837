"""What each function may do to each table: exactly the DynamoDB actions its code calls, and nothing else.

Read off ``lambda_src/handlers`` and ``lambda_src/adapters/repositories`` (keep them in step when either changes):

- A transaction (``TransactWriteItems``) needs no action of its own: IAM authorizes each of its items, so a
  ``Put`` needs ``PutItem``, an ``Update`` ``UpdateItem``, a ``Delete`` ``DeleteItem`` and a
  ``ConditionCheck`` ``ConditionCheckItem``, each on the item's table.
- ``Query`` and ``Scan`` are granted on the one index they read (``<table arn>/index/<name>``), never on
  every index; on a table itself only where its own key is what is read (the audio buffer, by session and order).
- Every function that tells listeners something may find some of them gone (410) and clean up after them
  with the ``$disconnect`` logic (read the row, remove it, count the listener out), so each of them holds
  those actions too.

Adding a table to a function is one line: ``TableAccess(schema.NEW_TABLE, {UPDATE})`` in its tuple below.

With customer managed keys (``customer_managed_keys``), DynamoDB encrypts each table's data keys under a table
key, itself encrypted with the KMS key, and decrypts that table key with the *caller's* permission when it serves
the caller (refreshed every few minutes per caller with traffic): every request on an item or an index, read or
write, needs ``kms:Decrypt`` on the key, and nothing more (the table key is generated, and DynamoDB's grants
created, by whoever creates the table: the deployment). ``TABLE_KEY_ACTIONS`` is granted on the tables' key,
only through DynamoDB (``kms:ViaService``), to every role with any item or index action. A stream reader needs
``STREAM_KEY_ACTIONS`` (the records are encrypted with the table key too), granted without a ``kms:ViaService``
condition, as CDK's own stream grant does: the service name DynamoDB Streams presents to KMS is not documented.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Final

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

from cdk_app import nag
from lambda_src.contract import schema

GET: Final = "dynamodb:GetItem"
BATCH_GET: Final = "dynamodb:BatchGetItem"
PUT: Final = "dynamodb:PutItem"
UPDATE: Final = "dynamodb:UpdateItem"
DELETE: Final = "dynamodb:DeleteItem"
CONDITION_CHECK: Final = "dynamodb:ConditionCheckItem"
QUERY: Final = "dynamodb:Query"
SCAN: Final = "dynamodb:Scan"
BATCH_WRITE: Final = "dynamodb:BatchWriteItem"

KMS_DECRYPT: Final = "kms:Decrypt"
# What a role with item or index actions on a table with a customer managed key needs of that key.
TABLE_KEY_ACTIONS: Final = frozenset({KMS_DECRYPT})
# What a stream reader (the welcome function's event source) needs of that key.
STREAM_KEY_ACTIONS: Final = frozenset({KMS_DECRYPT})


@dataclass(frozen=True)
class TableAccess:
    """``actions`` on a table's items, and ``index_actions`` (index name -> actions) on named indexes."""

    table: schema.TableDefinition
    actions: AbstractSet[str] = frozenset()
    index_actions: Mapping[str, AbstractSet[str]] = field(default_factory=dict)


_LISTENERS_INDEX: Final = schema.CONNECTIONS_BY_SESSION_INDEX
_SWEEP_INDEX: Final = schema.SESSIONS_BY_SWEEP_TIME_INDEX

# Handler module (``lambda_src.handlers.<module>``) -> its function's access. A module not listed (the
# authorizer) gets none; the stream functions read the Connections stream through their event sources.
FUNCTION_TABLE_ACCESS: Final[Mapping[str, tuple[TableAccess, ...]]] = {
    # createSession / joinSession / refreshConnection / resumeSession / a plain connection, each one
    # transaction (session Put or Update, or a ConditionCheck that the session is live on a listener's
    # refresh; the connection's row Put, and the old listener row's Delete on a refresh; the rate-limit
    # counters' Update); a GetItem for the session first on join, refresh and resume;
    # speakerReconnected to the listeners on resume (index Query, cleanup of the gone); the secret that keys
    # source addresses (GetItem, and a conditional PutItem by the first process that finds none); the speaker's
    # active sessions (Update, in the create transaction; at the limit, the listed sessions read with BatchGet
    # and the gone ones taken out with an Update).
    "connect": (
        TableAccess(schema.SESSIONS, {GET, BATCH_GET, PUT, UPDATE, CONDITION_CHECK}),
        TableAccess(schema.CONNECTIONS, {GET, PUT, DELETE}, {_LISTENERS_INDEX: {QUERY}}),
        TableAccess(schema.RATE_LIMITS, {GET, PUT, UPDATE}),
    ),
    # The message routes: createSession / joinSession on an open connection (session Put or Update, the row
    # attached by Update, rate-limit counters' Update), heartbeat (the row's refresh notice, Update),
    # leaveSession (row read, detached and counted out), updateSessionConfig / endSession (row read for the
    # session, session Update), getSessionStatus (session read, listeners by index Query), endSession's
    # fan-out (index Query, cleanup of the gone); the speaker's active sessions (Update, in the create and end
    # transactions; at the limit, the listed sessions read with BatchGet and the gone ones taken out); sendAudio
    # (session read, the chunk's conditional Put into the audio buffer).
    "message": (
        TableAccess(schema.SESSIONS, {GET, BATCH_GET, PUT, UPDATE}),
        TableAccess(schema.CONNECTIONS, {GET, UPDATE, DELETE}, {_LISTENERS_INDEX: {QUERY}}),
        TableAccess(schema.RATE_LIMITS, {UPDATE}),
        TableAccess(schema.AUDIO_CHUNKS, {PUT}),
    ),
    # $disconnect: read the row; delete it and count the listener out (the session's or its seat's Update), or
    # open the speaker's resume window (session Update); speakerDisconnected to the listeners (index Query, the
    # session read when nobody is under its own key: its seat shards' keys, then its seats' BatchGet to query only
    # the occupied ones; cleanup of the gone).
    "disconnect": (
        TableAccess(schema.SESSIONS, {GET, BATCH_GET, UPDATE}),
        TableAccess(schema.CONNECTIONS, {GET, DELETE}, {_LISTENERS_INDEX: {QUERY}}),
    ),
    # Scheduled: the sparse sweep index (Scan); due sessions read and ended, or revisited (Update), their
    # listeners told and dismissed, the indexed sessions' activity read for the gauges (BatchGet), and a share
    # of the others' listeners probed (index Query; a vanished listener's row read, removed and counted out:
    # Delete + session Update in one transaction); ending a session takes it out of its speaker's active
    # sessions in the same transaction (RateLimits Update); an ended session's seats closed (Update, or a Put
    # replacing a seat an earlier session of the id left) and every sharded session's seats read for the gauges.
    "sweeper": (
        TableAccess(schema.SESSIONS, {GET, BATCH_GET, PUT, UPDATE}, {_SWEEP_INDEX: {SCAN}}),
        TableAccess(schema.CONNECTIONS, {GET, DELETE}, {_LISTENERS_INDEX: {QUERY}}),
        TableAccess(schema.RATE_LIMITS, {UPDATE}),
    ),
    # The HTTP session API: POST /sessions as createSession without a connection (session Put, the speaker's
    # active sessions and creation count Update in the one transaction; at the limit, the listed sessions read
    # with BatchGet and the gone ones taken out), GET (session read), PATCH (session Update), DELETE (session read,
    # the end Update with the active sessions' Update, the listeners told by index Query and closed, a vanished
    # one's row read and removed and counted out); the session's transcript read (Query on the table's own key)
    # and deleted (BatchWriteItem of deletes) by its owner.
    "http_api": (
        TableAccess(schema.SESSIONS, {GET, BATCH_GET, PUT, UPDATE}),
        TableAccess(schema.CONNECTIONS, {GET, DELETE}, {_LISTENERS_INDEX: {QUERY}}),
        TableAccess(schema.RATE_LIMITS, {UPDATE}),
        TableAccess(schema.TRANSCRIPTS, {QUERY, BATCH_WRITE}),
    ),
    # First messages: the listener counts of a batch's sessions for its sessionJoined messages (BatchGet).
    "welcome": (TableAccess(schema.SESSIONS, {BATCH_GET}),),
    # The speaker's status on a change of its audience: the session read (GetItem), the push recorded on it
    # (conditional Update), its listeners by language (index Query; a session with seat shards: its seats' BatchGet).
    "status": (
        TableAccess(schema.SESSIONS, {GET, BATCH_GET, UPDATE}),
        TableAccess(schema.CONNECTIONS, index_actions={_LISTENERS_INDEX: {QUERY}}),
    ),
    # The transcription consumer: its lease on the session (conditional Update returning the item; a GetItem-free
    # renewal), the audio buffer read in order (Query on the table's own key), what a fan-out to listeners
    # needs to clean up after a gone one (row read and removed, the session counted down), the listeners' delivery
    # choices read with the audience (BatchGetItem of their rows: the index projects keys only), the spoken
    # segments' sequence numbers (the session's Update), and the final segments recorded in the session's transcript
    # (BatchWriteItem of puts; never a read).
    # The audience read also reads the session when it finds nobody under its own key and does not know whether
    # its listeners are under seat shards' keys (GetItem), and a sharded session's seats (BatchGet: which shards to
    # query, or to hand to the fan-out function).
    "transcriber": (
        TableAccess(schema.SESSIONS, {GET, BATCH_GET, UPDATE}),
        TableAccess(schema.AUDIO_CHUNKS, {QUERY}),
        TableAccess(schema.CONNECTIONS, {GET, BATCH_GET, DELETE}, {_LISTENERS_INDEX: {QUERY}}),
        TableAccess(schema.TRANSCRIPTS, {BATCH_WRITE}),
    ),
    # The fan-out per shard (decision record 0040): its shards' listeners (index Query on each shard's key) and their
    # delivery choices (BatchGet of their rows), and for a listener found gone what its $disconnect does (the row
    # read, then removed with its seat counted down, in one transaction). It never reads the session.
    "fanout": (
        TableAccess(schema.SESSIONS, {UPDATE}),
        TableAccess(schema.CONNECTIONS, {GET, BATCH_GET, DELETE}, {_LISTENERS_INDEX: {QUERY}}),
    ),
}

# A downstream processor (transcription, translation): a session's settings (``lambda_src.downstream``)
# and its listeners by target language (the listeners index).
DOWNSTREAM_READ: Final = (
    TableAccess(schema.SESSIONS, {GET, BATCH_GET}),
    TableAccess(schema.CONNECTIONS, index_actions={_LISTENERS_INDEX: {QUERY}}),
)

# A downstream stage that posts to listeners (``lambda_src.downstream.broadcast``, captions): the listeners of a
# session or language (the listeners index), and, for a listener found gone, what its ``$disconnect`` does: read its
# row, then remove it and count it out (the row's Delete and the session's or its seat's Update, in one transaction);
# the session read when nobody is under its own key (its listeners may be under its seat shards' keys), and then its
# seats (BatchGet: only the occupied ones are queried). With ``execute-api:ManageConnections`` on the stage
# (``SessionServiceStack.grant_downstream``).
DOWNSTREAM_BROADCAST: Final = (
    TableAccess(schema.SESSIONS, {GET, BATCH_GET, UPDATE}),
    TableAccess(schema.CONNECTIONS, {GET, DELETE}, {_LISTENERS_INDEX: {QUERY}}),
)

TRANSLATE_TEXT: Final = "translate:TranslateText"
# Why it is granted on "*" (the cdk-nag acknowledgement's reason).
TRANSLATE_TEXT_ON_STAR: Final = (
    f"{TRANSLATE_TEXT} has no resource to scope it to but custom terminologies, which captions do not use"
)


def grant_translate(function: lambda_.IFunction, *, acknowledge: bool = True) -> None:
    """Let ``function`` translate captions with Amazon Translate (``TranslateText``, and nothing else of it).

    ``TranslateText`` names a resource only for custom terminologies, which captions do not use, so it is granted
    on ``*``, and the cdk-nag finding acknowledged on the function's role with that reason (``acknowledge=False``:
    the caller acknowledges it together with the role's other unscoped actions, under one finding)."""
    iam.Grant.add_to_principal(grantee=function, actions=[TRANSLATE_TEXT], resource_arns=["*"])
    assert function.role is not None, "a function with a role of its own"
    if acknowledge:
        nag.acknowledge_wildcard_resource(function.role, "*", TRANSLATE_TEXT_ON_STAR)


SYNTHESIZE_SPEECH: Final = "polly:SynthesizeSpeech"
# Why it is granted on "*" (the cdk-nag acknowledgement's reason).
SYNTHESIZE_SPEECH_ON_STAR: Final = (
    f"{SYNTHESIZE_SPEECH} names a resource only for pronunciation lexicons, which the service does not use"
)
# What the transcriber does with the audio bucket: PutObject (each spoken segment) and GetObject (the presigned URLs
# carry its credentials: S3 authorizes a listener's GET as the signer's), on the objects under audio/ only.
AUDIO_OBJECT_ACTIONS: Final = ("s3:GetObject", "s3:PutObject")
# With the bucket on a customer managed key: a new object's data key (under the bucket key) on put, and its
# decryption on a get, through S3 only.
AUDIO_KEY_ACTIONS: Final = ("kms:Decrypt", "kms:GenerateDataKey")


def grant_synthesize_speech(function: lambda_.IFunction) -> None:
    """Let ``function`` speak with Amazon Polly (``SynthesizeSpeech``, and nothing else of it), on ``*``: the caller
    acknowledges the cdk-nag finding with :data:`SYNTHESIZE_SPEECH_ON_STAR`, with the role's other unscoped actions."""
    iam.Grant.add_to_principal(grantee=function, actions=[SYNTHESIZE_SPEECH], resource_arns=["*"])


def grant_audio_objects(function: lambda_.IFunction, bucket: s3.IBucket, key: kms.IKey | None) -> None:
    """Let ``function`` put and get the objects under ``audio/`` of ``bucket`` (exactly :data:`AUDIO_OBJECT_ACTIONS`)
    and, with ``key``, use it through S3 (:data:`AUDIO_KEY_ACTIONS`)."""
    assert function.role is not None, "a function with a role of its own"
    objects = bucket.arn_for_objects("audio/*")
    iam.Grant.add_to_principal(grantee=function, actions=list(AUDIO_OBJECT_ACTIONS), resource_arns=[objects])
    nag.acknowledge_wildcard_resource(
        function.role,
        objects,
        "the objects under audio/ of the audio bucket: the rest of each key is a session, a language and a segment "
        "known at run time",
    )
    if key is not None:
        function.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(AUDIO_KEY_ACTIONS),
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            )
        )
