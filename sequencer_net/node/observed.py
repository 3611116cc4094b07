"""What this node sees of the committee's order, measured against its own view.

Two measures that a single-operator sequencer cannot give, both from this
node's point of view, exported as metrics (docs/metrics.md):

- **inclusion delay**: how many blocks were committed after a transaction
  reached this node until the block that ordered it (1 = the next block);
- **order inversions**: pairs of transactions in one block ordered against
  the order in which they reached this node. Fair ordering orders by the
  median of ``n - f`` validators' arrival times, so a pair that reached this
  node in another order than most validators may be inverted legitimately; a
  node that counts many more inversions than its peers is slow, or is being
  ordered against.

Transactions that reached this node only inside a block (never admitted here)
count in neither.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

MAX_TRACKED = 100_000  # transactions waiting for their commit; beyond it the oldest are dropped


def inversions(times: Sequence[int]) -> int:
    """Pairs ``i < j`` with ``times[i] > times[j]`` (equal times are not inverted)."""
    seen: list[int] = []
    count = 0
    for t in times:
        count += len(seen) - bisect.bisect_right(seen, t)
        bisect.insort(seen, t)
    return count


@dataclass(frozen=True, slots=True)
class BlockView:
    """One committed block against this node's arrival log."""

    delays: list[int]  # inclusion delay in blocks, per transaction seen here
    inversions: int
    pairs: int  # pairs of transactions seen here, that could have been inverted


class ArrivalLog:
    """When (local ms) and at which committed height each pending transaction arrived."""

    def __init__(self, max_tracked: int = MAX_TRACKED) -> None:
        self.max_tracked = max_tracked
        self._arrived: OrderedDict[bytes, tuple[int, int]] = OrderedDict()

    def arrived(self, digest: bytes, local_ms: int, committed_height: int) -> None:
        if digest in self._arrived:
            return
        self._arrived[digest] = (local_ms, committed_height)
        while len(self._arrived) > self.max_tracked:
            self._arrived.popitem(last=False)

    def committed(self, order: Sequence[bytes], height: int) -> BlockView:
        """The block at ``height`` ordered ``order``: measure it, forget those transactions."""
        pop = self._arrived.pop
        seen = [entry for d in order if (entry := pop(d, None)) is not None]
        times = [t for t, _ in seen]
        k = len(seen)
        return BlockView([height - h for _, h in seen], inversions(times), k * (k - 1) // 2)

    def __len__(self) -> int:
        return len(self._arrived)


class CertifyClock:
    """Submission times of decrypted transactions, held until their height is certified.

    Why: a rollup is served a batch with its proof only once a quorum certified
    it, so submit -> certified is the latency a rollup sees from this node.
    """

    def __init__(self, max_heights: int = 4096) -> None:
        self.max_heights = max_heights
        self._by_height: OrderedDict[int, list[tuple[str, float]]] = OrderedDict()

    def decrypted(self, height: int, stamps: list[tuple[str, float]]) -> None:
        """``stamps``: (namespace, submit time) of the height's transactions submitted here."""
        if stamps:
            self._by_height[height] = stamps
            while len(self._by_height) > self.max_heights:
                self._by_height.popitem(last=False)

    def certified(self, height: int) -> list[tuple[str, float]]:
        """Every height up to ``height`` is certified: their stamps, forgotten here."""
        out: list[tuple[str, float]] = []
        for h in [h for h in self._by_height if h <= height]:
            out.extend(self._by_height.pop(h))
        return out
