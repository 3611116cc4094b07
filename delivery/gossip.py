"""Rollup delivery over libp2p: the topic of a namespace, a message's id, fetching heights.

Every validator publishes each certified height's namespace batch (the bytes
``GET /v1/namespaces/{ns}/batches/{h}`` serves as CBOR) on the namespace's
gossipsub topic, :func:`batch_topic`. Validators gather different quorums of
signatures, so their copies of one height differ in bytes; :func:`message_id`
names a message by what it certifies (the namespace and the header's
``batch_hash``), so the network carries each height once whoever published it.

Gossip may drop a message (py-libp2p's queues are bounded; a subscriber may
join late), so a subscriber that misses a height asks a validator for it on a
request/response protocol with :class:`BatchRangeRequest`; the answer is a
:class:`BatchRangeReply`. Both are verified by the receiver exactly like a
gossiped batch: nothing here is trusted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from delivery.batch import NamespaceBatch
from delivery.header import batch_hash
from delivery.nmt import Namespace
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError, IntRange, MaxItems

TOPIC_PREFIX = "/seqnet/batches/"
TOPIC_VERSION = "/1"
MESSAGE_ID_DOMAIN = b"seqnet/batch-message/v1\x00"
UNDECODABLE_DOMAIN = b"seqnet/batch-message/undecodable\x00"
MAX_RANGE = 32  # heights per fetch request
Height = Annotated[int, IntRange(1, 2**62)]


def batch_topic(namespace: str) -> str:
    """The gossipsub topic of a namespace's certified batches."""
    return f"{TOPIC_PREFIX}{namespace}{TOPIC_VERSION}"


def topic_namespace(topic: str) -> str | None:
    """The namespace a batch topic carries; None for any other topic."""
    if not (topic.startswith(TOPIC_PREFIX) and topic.endswith(TOPIC_VERSION)):
        return None
    namespace = topic[len(TOPIC_PREFIX) : -len(TOPIC_VERSION)]
    return namespace or None


def message_id(data: bytes) -> bytes:
    """``SHA-256(domain || batch_hash || namespace)`` of a gossiped namespace batch.

    The same height and namespace get the same id from any publisher, whatever
    quorum of signatures its certificate holds. Bytes that do not decode get an
    id of their own (their hash): they are rejected by validation anyway.
    """
    try:
        batch: NamespaceBatch = codec.decode(NamespaceBatch, data)
    except DecodeError:
        return hashlib.sha256(UNDECODABLE_DOMAIN + data).digest()
    header_hash = batch_hash(batch.certificate.header)
    return hashlib.sha256(MESSAGE_ID_DOMAIN + header_hash + batch.namespace.encode()).digest()


@dataclass(frozen=True, slots=True)
class BatchRangeRequest:
    """Send me ``namespace``'s certified batches from ``from_height``, at most ``limit``."""

    namespace: Namespace
    from_height: Height
    limit: Annotated[int, IntRange(1, MAX_RANGE)]


@dataclass(frozen=True, slots=True)
class BatchRangeReply:
    """Consecutive certified batches from the height asked for (none if it is not certified
    yet), and the highest height this node has certified."""

    batches: Annotated[tuple[NamespaceBatch, ...], MaxItems(MAX_RANGE)]
    certified_height: Annotated[int, IntRange(0, 2**62)]


FETCH = codec.Family("batch-fetch", [BatchRangeRequest, BatchRangeReply])
