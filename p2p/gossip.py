"""GossipSub on a host, with py-libp2p's silent defaults set on purpose.

Theory of operation
-------------------
py-libp2p 0.8.1's GossipSub ships with settings that lose traffic without a
word: a 120 s heartbeat (meshes repair once in two minutes), adaptive gossip
that stretches it further, a spam limit of 10 messages per second per topic
(own messages included: the rest dropped), "eclipse protection" that wants
three distinct IP addresses in a mesh (every local peer shares 127.0.0.1) and
per-peer send queues of 32 RPCs that drop when full while ``publish`` never
blocks. :func:`gossip_router` sets each explicitly; :meth:`Gossip.publish`
paces itself on the peers' queues instead of overrunning them, and gives up
(returns False) rather than wait without bound, because a subscriber that
misses a message fetches it by request (``delivery.gossip``).

Messages are signed by their publisher and unsigned ones refused (StrictSign,
the spec's default). py-libp2p also remembers each message id's validation
verdict for five minutes and answers later copies from it: since our ids name
the batch, not the bytes, one forged copy would get every honest copy of that
batch refused. :class:`Gossip` turns that cache off (a message that fails is
not marked seen either, so the honest copy is then validated on its own).
Only the meshsub versions other implementations speak
(1.0, 1.1, 1.2) are offered. A message's id comes from the caller (the batch
it carries, not who published it), and is cached by the data's hash:
py-libp2p asks for it several times per message.

The pubsub services must run before the host dials or accepts anything, and
outside ``host.run()`` (the other nesting can crash at exit): use
``async with gossip.running(), host.run(...)``.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

log = logging.getLogger("seqnet.p2p.gossip")

MESHSUB_PROTOCOLS = tuple(
    TProtocol(f"/meshsub/{version}") for version in ("1.2.0", "1.1.0", "1.0.0")
)
DEGREE, DEGREE_LOW, DEGREE_HIGH = 6, 4, 12  # the spec's D, D_lo, D_hi
HEARTBEAT_S = 1  # the spec's recommendation (py-libp2p: 120)
MAX_MESSAGE_BYTES = 1024 * 1024  # py-libp2p's largest inbound RPC; larger is not published
QUEUE_DEPTH = 32  # py-libp2p's per-peer send queue (not configurable)
PACE_DEPTH = 24  # publish only while every subscriber's queue holds fewer RPCs than this
PACE_TIMEOUT_S = 2.0  # ... and give up on a message after waiting this long
PACE_POLL_S = 0.005
CACHED_IDS = 4096
# py-libp2p queues every message for each connected peer whose subscriptions it has
# not heard yet (validators follow no topic, so every validator peer, always), 30 s
# and 100 messages deep, warning on each overflow; a subscription arrives within
# milliseconds of a connection, so a second covers the race it is there for.
PENDING_TTL_S = 1.0

MessageId = Callable[[bytes], bytes]
Accept = Callable[[bytes], bool]


def content_id(data: bytes) -> bytes:
    """A message named by its bytes (SHA-256): the default where no better name exists."""
    return hashlib.sha256(data).digest()


def gossip_router() -> GossipSub:
    """A GossipSub router with the spec's mesh degrees and nothing that drops traffic unasked."""
    return GossipSub(
        list(MESHSUB_PROTOCOLS),
        DEGREE,
        DEGREE_LOW,
        DEGREE_HIGH,
        heartbeat_interval=HEARTBEAT_S,
        adaptive_gossip_enabled=False,
        spam_protection_enabled=False,
        eclipse_protection_enabled=False,
        pending_messages_ttl=PENDING_TTL_S,
    )


class Gossip:
    """Publish and subscribe over one host (see the module docstring)."""

    def __init__(self, host: Any, message_id: MessageId) -> None:
        self.router = gossip_router()
        self._ids: OrderedDict[bytes, bytes] = OrderedDict()
        self._message_id = message_id
        self.pubsub = Pubsub(
            host,
            self.router,
            strict_signing=True,
            msg_id_constructor=self._id_of,
            max_inbound_rpc_size=MAX_MESSAGE_BYTES + 64 * 1024,
        )
        self.pubsub.validation_cache = _NoVerdicts()  # type: ignore[assignment]  # see above
        self.unpublished = 0  # messages given up on: too large, or subscribers' queues full

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the pubsub services while the block runs (start before the host listens)."""
        async with background_trio_service(self.pubsub), background_trio_service(self.router):
            await self.pubsub.wait_until_ready()
            yield

    def _id_of(self, message: Any) -> bytes:
        """The caller's id of a message's data, computed once per distinct data.

        Keyed by the data's hash, not by (publisher, sequence number): py-libp2p
        asks for the id before it checks the signature, so an unsigned copy
        claiming a validator's next sequence number must not name that
        validator's real message.
        """
        key = hashlib.sha256(message.data).digest()
        found = self._ids.get(key)
        if found is None:
            found = self._message_id(message.data)
            self._ids[key] = found
            if len(self._ids) > CACHED_IDS:
                self._ids.popitem(last=False)
        return found

    def subscribers(self, topic: str) -> set[ID]:
        """Peers that told us they follow ``topic``."""
        return set(self.pubsub.peer_topics.get(topic, ()))

    async def publish(self, topic: str, data: bytes) -> bool:
        """Publish once no subscriber's queue is nearly full; False if given up on."""
        if len(data) > MAX_MESSAGE_BYTES:
            self.unpublished += 1
            return False
        with trio.move_on_after(PACE_TIMEOUT_S):
            while self._crowded(topic):  # noqa: ASYNC110 (py-libp2p's queues signal no drain)
                await trio.sleep(PACE_POLL_S)
            await self.pubsub.publish(topic, data)
            return True
        self.unpublished += 1
        log.info("gave up publishing on %s: subscribers' queues stayed full", topic)
        return False

    def _crowded(self, topic: str) -> bool:
        queues = self.pubsub.peer_queues
        return any(
            len(queue) >= PACE_DEPTH
            for peer in self.subscribers(topic)
            if (queue := queues.get(peer)) is not None
        )

    async def subscribe(self, topic: str, accept: Accept) -> Any:
        """Follow ``topic``; only messages ``accept`` approves are delivered and relayed.

        ``accept`` runs inline for every new message (not for copies already
        seen): keep it quick. Read the returned subscription's ``get()``
        promptly: py-libp2p drops what does not fit in its 32-deep channel.
        """
        self.pubsub.set_topic_validator(topic, lambda _peer, message: accept(message.data), False)
        return await self.pubsub.subscribe(topic)


class _NoVerdicts:
    """Stands in for py-libp2p's ``ValidationCache``: every copy is validated on its own."""

    def get(self, msg_id: bytes) -> None:
        return None

    def put(self, msg_id: bytes, result: Any) -> None:
        return None

    def clear_expired(self) -> None:
        return None
