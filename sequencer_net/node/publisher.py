"""Rollup delivery over libp2p, node side: publish certified heights, answer missed ones.

Each certified height's namespace batch is published on the namespace's
topic (``delivery.gossip.batch_topic``) as soon as the height is certified,
but only for topics some connected peer follows: a namespace nobody follows
costs nothing. Gossip is best effort (py-libp2p queues are bounded, a
subscriber may join late or lag), so when the publisher falls more than
``MAX_BEHIND`` heights behind it skips ahead, and subscribers ask for what
they missed on ``/seqnet/batch-fetch/1``: :meth:`BatchPublisher.answer`
serves any peer consecutive certified heights of one namespace from the
height it names.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from delivery.batch import NamespaceBatch
from delivery.gossip import FETCH, MAX_RANGE, BatchRangeReply, BatchRangeRequest, batch_topic
from mev.kem import MAX_NAMESPACE_CHARS
from p2p.gossip import Gossip
from sequencer_net.base.codec import DecodeError
from sequencer_net.node.batches import CertifiedBatches
from sequencer_net.node.metrics import NodeMetrics

log = logging.getLogger("seqnet.publisher")

MAX_BEHIND = 64  # heights the publisher may lag before it skips to the newest
MAX_REQUEST_BYTES = 4 * MAX_NAMESPACE_CHARS + 64  # the longest namespace, 4 bytes a character
MAX_REPLY_BYTES = 4 * 1024 * 1024  # a fetch answer stops adding heights past this


class BatchPublisher:
    """Publishes certified namespace batches and answers fetches of missed heights."""

    def __init__(
        self,
        gossip: Gossip,
        batches: CertifiedBatches,
        namespaces: Sequence[str],
        certified_height: Callable[[], int],
        wait_certified: Callable[[int], Awaitable[None]],
        metrics: NodeMetrics,
    ) -> None:
        self.gossip, self.batches, self.namespaces = gossip, batches, tuple(namespaces)
        self._certified_height, self._wait_certified = certified_height, wait_certified
        self.metrics = metrics

    async def run(self) -> None:
        """Publish every height certified from now on, in order."""
        height = self._certified_height() + 1
        while True:
            await self._wait_certified(height)
            newest = self._certified_height()
            if newest - height >= MAX_BEHIND:
                self.metrics.gossip_skipped.inc(newest - height)
                log.info("gossip fell behind: skipping heights %d..%d", height, newest - 1)
                height = newest
            await self._publish(height)
            height += 1

    async def _publish(self, height: int) -> None:
        for namespace in self.namespaces:
            topic = batch_topic(namespace)
            if not self.gossip.subscribers(topic):
                continue
            found = await self.batches.get(height, namespace)
            if found is None:  # pruned or damaged: subscribers fetch it elsewhere
                continue
            published = await self.gossip.publish(topic, found[1])
            self.metrics.gossip_published.labels("yes" if published else "given-up").inc()

    async def answer(self, data: bytes) -> bytes | None:
        """A :class:`BatchRangeReply` to a fetch request; None (no answer) if it is malformed."""
        try:
            request = FETCH.decode(data, max_bytes=MAX_REQUEST_BYTES)
        except DecodeError:
            self.metrics.reject("batch-fetch", "malformed")
            return None
        if not isinstance(request, BatchRangeRequest):
            self.metrics.reject("batch-fetch", "not-a-request")
            return None
        if request.namespace not in self.namespaces:
            self.metrics.ignore("batch-fetch", "unknown-namespace")
            return None
        self.metrics.served.labels("batch-fetch").inc()
        newest = self._certified_height()
        batches = await self._range(request, newest)
        return FETCH.encode(BatchRangeReply(tuple(batches), newest))

    async def _range(self, request: BatchRangeRequest, newest: int) -> list[NamespaceBatch]:
        """Consecutive certified batches from the height asked, within the byte budget."""
        batches: list[NamespaceBatch] = []
        size = 0
        last = min(newest, request.from_height + min(request.limit, MAX_RANGE) - 1)
        for height in range(request.from_height, last + 1):
            found = await self.batches.get(height, request.namespace)
            if found is None or (batches and size + len(found[1]) > MAX_REPLY_BYTES):
                break
            batches.append(found[0])
            size += len(found[1])
        return batches
