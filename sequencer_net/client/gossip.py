"""Following a rollup over libp2p gossip, fetching by request whatever gossip missed.

A subscriber runs its own libp2p node (``p2p.peer``), dials the validators of
the genesis (and any relays it is given), follows the namespace's topic
(``delivery.gossip.batch_topic``) and may listen so that other subscribers
relay through it. Every gossiped message is verified against the genesis
before py-libp2p delivers or relays it (:meth:`GossipFeed.offer`, the topic
validator): a forged batch goes no further than the first honest subscriber.

Gossip alone cannot promise every height (bounded queues drop, a subscriber
joins late, a relay lags). The height due next is taken from the feed if it
arrived; if it has not within ``GAP_S`` of a later one arriving (or within
``IDLE_S`` at all), the subscriber asks a validator for the heights from it on
``/seqnet/batch-fetch/1``. Those answers are verified like everything else; a
validator whose answer does not verify is named in the subscription's
``bad_nodes`` and not asked again. Delivery order, chaining and resumption
are the :class:`~sequencer_net.client.subscribe.Subscription`'s.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
from libp2p.peer.peerinfo import PeerInfo

from delivery.batch import VerifiedBatch, decode_namespace_batch, verify_namespace_batch
from delivery.gossip import FETCH, MAX_RANGE, BatchRangeReply, BatchRangeRequest, batch_topic
from delivery.gossip import message_id as batch_message_id
from delivery.header import Unverified
from p2p.host import FETCH_PROTOCOL
from p2p.peer import GossipPeer, peer_info
from sequencer_net.base.codec import DecodeError
from sequencer_net.base.committee import Committee
from sequencer_net.client.http import ClientError
from sequencer_net.node.genesis import Genesis

if TYPE_CHECKING:
    from sequencer_net.client.subscribe import Subscription

log = logging.getLogger("seqnet.subscribe.gossip")

WINDOW = 1024  # heights ahead of the one due that the feed keeps
GAP_S = 0.3  # a later height arrived but the one due did not: fetch after this long
IDLE_S = 1.5  # nothing arrived for the height due: fetch after this long


def validator_peers(genesis: Genesis) -> list[PeerInfo]:
    """The validators of the genesis as libp2p peers."""
    return [peer_info(f"{v.address}/p2p/{v.peer_id}") for v in genesis.validators]


class GossipFeed:
    """Verified gossiped batches of one namespace, by height, within a window of the one due."""

    def __init__(self, committee: Committee, namespace: str) -> None:
        self.committee, self.namespace = committee, namespace
        self.due = 1
        self.batches: dict[int, VerifiedBatch] = {}
        self.refused: Counter[str] = Counter()  # gossiped messages that did not verify, by reason
        self.arrived = trio.Event()

    def offer(self, data: bytes) -> bool:
        """py-libp2p's topic validator: True (deliver and relay) only for a batch that verifies."""
        try:
            batch = verify_namespace_batch(
                self.committee, decode_namespace_batch(data), self.namespace
            )
        except Unverified as exc:
            self.refused[exc.reason] += 1
            log.info("refused a gossiped batch: %s", exc)
            return False
        if self.due <= batch.height < self.due + WINDOW:
            self.batches.setdefault(batch.height, batch)
            self.arrived.set()
        return True

    def take(self, height: int) -> VerifiedBatch | None:
        """The batch at ``height`` if it arrived; forget everything below it."""
        self.due = height
        for old in [h for h in self.batches if h < height]:
            del self.batches[old]
        return self.batches.pop(height, None)

    def ahead(self) -> bool:
        """Whether a height after the one due has arrived (so the one due was missed)."""
        return any(h > self.due for h in self.batches)

    async def wait(self, timeout_s: float) -> None:
        """Return when a new batch arrives or ``timeout_s`` passes."""
        self.arrived = trio.Event()
        with trio.move_on_after(timeout_s):
            await self.arrived.wait()


@dataclass(frozen=True)
class GossipOptions:
    """Where a gossip subscriber connects; every address a multiaddr ending ``/p2p/<id>``.

    ``peers``: whom to dial and keep dialling (None: the genesis validators).
    ``fetch_from``: whom to ask for missed heights (None: the validators; empty:
    never ask, gossip only). ``listen``: accept other subscribers here (relay).
    """

    peers: Sequence[str] | None = None
    fetch_from: Sequence[str] | None = None
    listen: str | None = None


class GossipCarrier:
    """Feeds a subscription from gossip, fetching missed heights from validators."""

    def __init__(self, subscription: Subscription, options: GossipOptions) -> None:
        self.sub = subscription
        validators = validator_peers(subscription.genesis)
        known = _peers(options.peers, validators)
        # whom to ask for missed heights, by the name bad_nodes would give them
        self.fetch_from = {_name(info): info for info in _peers(options.fetch_from, validators)}
        self.peer = GossipPeer(known, batch_message_id, listen=options.listen)
        self.feed = GossipFeed(subscription.committee, subscription.namespace)

    async def follow(self, send: trio.MemorySendChannel[VerifiedBatch]) -> None:
        """Hand every height on from ``next_height``, forever, or until no node is left.

        That :class:`ClientError` is raised once the peer's tasks are gone, so it
        comes out as itself rather than inside their exception groups.
        """
        async with self.peer.running(), trio.open_nursery() as nursery:
            subscription = await self.peer.gossip.subscribe(
                batch_topic(self.sub.namespace), self.feed.offer
            )
            nursery.start_soon(_drain, subscription)
            left = await self._hand_on_every_height(send)
            nursery.cancel_scope.cancel()
        raise left

    async def _hand_on_every_height(
        self, send: trio.MemorySendChannel[VerifiedBatch]
    ) -> ClientError:
        """Gossip when it has the height due, else fetch; returns when no node is left."""
        while True:
            batch = self.feed.take(self.sub.next_height)
            if batch is not None and self.sub.extends(batch):
                await self.sub.hand_on(batch, send, "gossip")
                continue
            if batch is None:
                await self.feed.wait(GAP_S if self.feed.ahead() else IDLE_S)
                if self.sub.next_height in self.feed.batches:
                    continue
            # missed, or gossiped but not on our chain (more than f validators lied)
            if self.fetch_from:
                try:
                    await self._fetch(send)
                except ClientError as exc:  # every validator asked served something unverified
                    return exc

    async def _fetch(self, send: trio.MemorySendChannel[VerifiedBatch]) -> None:
        """Missed heights from the next validator not caught lying, handed on in order."""
        node = self.sub.next_good(list(self.fetch_from))
        info = self.fetch_from[node]
        height = self.sub.next_height
        request = FETCH.encode(BatchRangeRequest(self.sub.namespace, height, MAX_RANGE))
        answer = await self.peer.request(info, FETCH_PROTOCOL, request)
        reply = _reply(answer)
        if reply is None:
            if answer is not None:
                self.sub.condemn(node, Unverified("decode", "not a batch-fetch reply"))
            return
        for batch in reply.batches:
            verified = self.sub.accept(node, batch)
            if verified is None:
                return
            await self.sub.hand_on(verified, send, "fetch")


def _peers(addresses: Sequence[str] | None, default: list[PeerInfo]) -> list[PeerInfo]:
    return default if addresses is None else [peer_info(address) for address in addresses]


def _reply(answer: bytes | None) -> BatchRangeReply | None:
    if answer is None:
        return None
    try:
        reply = FETCH.decode(answer)
    except DecodeError:
        return None
    return reply if isinstance(reply, BatchRangeReply) else None


def _name(info: PeerInfo) -> str:
    return f"{info.addrs[0]}/p2p/{info.peer_id}" if info.addrs else str(info.peer_id)


async def _drain(subscription: object) -> None:
    """Read py-libp2p's delivery channel (the feed already has each batch): it drops when full."""
    while True:
        await subscription.get()  # type: ignore[attr-defined]
