"""Ordering policies: deterministic functions from ``n - f`` reports to an order.

Every replica recomputes the policy on the reports in a proposal and refuses a
block whose order differs. The set of transactions is the same for the fair
policies — every digest in at least ``f + 1`` of the reports (at least one
honest node saw it), minus what the branch already ordered — only the order
differs:

- ``median-timestamp`` (Pompē, Timeboost): a transaction's time is the median
  of its reported times (a missing report counts as "later than everything");
  order by (median, digest). With at most f lying reports the median lies
  between two honest times.
- ``batch-order-fair`` (Themis, γ = 1): edge a→b when at least f+1 reports saw
  a before b; strongly connected components become batches, batches follow
  the condensation's topological order, and inside a batch (median, digest).
  Needs n >= 4f+1.
- ``arrival``: the leader's own order, and the leader may add what only it saw:
  the unfair baseline of a single-operator sequencer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Mapping, Sequence
from typing import Protocol

from ordering.fair.reports import OrderReport

INFINITY = 2**63


class Policy(Protocol):
    name: str

    def order(
        self, reports: Sequence[OrderReport], proposer: int, exclude: Container[bytes]
    ) -> list[bytes]:
        """The block's order of digests, given the included reports."""
        ...


def candidates(reports: Sequence[OrderReport], f: int, exclude: Container[bytes]) -> list[bytes]:
    """Digests seen in at least f+1 reports and not yet ordered: the block must hold them."""
    counts = Counter(d for r in reports for d in r.digest_list())
    return sorted(d for d, c in counts.items() if c >= f + 1 and d not in exclude)


def median_times(reports: Sequence[OrderReport], digests: Sequence[bytes]) -> dict[bytes, int]:
    """Lower median of each digest's reported times, a missing report counting as infinity."""
    views = [r.times_by_digest() for r in reports]
    middle = (len(views) - 1) // 2
    return {d: sorted(v.get(d, INFINITY) for v in views)[middle] for d in digests}


class _ForCommittee:
    """A policy sized for a committee of ``n`` validators tolerating ``f`` faults."""

    def __init__(self, n: int, f: int) -> None:
        self.n, self.f = n, f


class MedianTimestamp(_ForCommittee):
    name = "median-timestamp"

    def order(
        self, reports: Sequence[OrderReport], proposer: int, exclude: Container[bytes]
    ) -> list[bytes]:
        chosen = candidates(reports, self.f, exclude)
        medians = median_times(reports, chosen)
        return sorted(chosen, key=lambda d: (medians[d], d))


DEFAULT_POLICY = MedianTimestamp.name  # what a node and the simulator use unless told


class Arrival(_ForCommittee):
    name = "arrival"

    def order(
        self, reports: Sequence[OrderReport], proposer: int, exclude: Container[bytes]
    ) -> list[bytes]:
        own = next((r.times_by_digest() for r in reports if r.node == proposer), {})
        chosen = set(candidates(reports, self.f, exclude)) | {d for d in own if d not in exclude}
        return sorted(chosen, key=lambda d: (own.get(d, INFINITY), d))


class BatchOrderFair(_ForCommittee):
    name = "batch-order-fair"

    def __init__(self, n: int, f: int) -> None:
        if n < 4 * f + 1:
            raise ValueError(f"batch-order-fair needs n >= 4f+1 (n={n}, f={f})")
        super().__init__(n, f)

    def order(
        self, reports: Sequence[OrderReport], proposer: int, exclude: Container[bytes]
    ) -> list[bytes]:
        chosen = candidates(reports, self.f, exclude)
        medians = median_times(reports, chosen)
        edges = self._edges(reports, chosen)
        batches = strongly_connected(chosen, edges)
        ordered_batches = _topological(batches, edges, medians)
        return [
            d for batch in ordered_batches for d in sorted(batch, key=lambda d: (medians[d], d))
        ]

    def _edges(
        self, reports: Sequence[OrderReport], chosen: list[bytes]
    ) -> dict[bytes, set[bytes]]:
        """a→b when at least f+1 reports put a before b (unseen counts as last)."""
        ranks = []
        for r in reports:
            times = r.times_by_digest()
            ranks.append({d: (times.get(d, INFINITY), d) for d in chosen})
        edges: dict[bytes, set[bytes]] = {d: set() for d in chosen}
        for i, a in enumerate(chosen):
            for b in chosen[i + 1 :]:
                before = sum(1 for rank in ranks if rank[a] < rank[b])
                if before >= self.f + 1:
                    edges[a].add(b)
                if len(ranks) - before >= self.f + 1:
                    edges[b].add(a)
        return edges


def strongly_connected(nodes: list[bytes], edges: Mapping[bytes, set[bytes]]) -> list[list[bytes]]:
    """Tarjan's algorithm, iterative, visiting in sorted order for determinism."""
    index: dict[bytes, int] = {}
    low: dict[bytes, int] = {}
    on_stack: set[bytes] = set()
    stack: list[bytes] = []
    out: list[list[bytes]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
    return out


def _topological(
    batches: list[list[bytes]], edges: Mapping[bytes, set[bytes]], medians: Mapping[bytes, int]
) -> list[list[bytes]]:
    """Order batches so every edge points forward; ties by earliest median, then digest."""
    where = {d: i for i, batch in enumerate(batches) for d in batch}
    incoming = {i: 0 for i in range(len(batches))}
    after: dict[int, set[int]] = {i: set() for i in range(len(batches))}
    for a, targets in edges.items():
        for b in targets:
            if where[a] != where[b] and where[b] not in after[where[a]]:
                after[where[a]].add(where[b])
                incoming[where[b]] += 1

    def key(i: int) -> tuple[int, bytes]:
        return min((medians[d], d) for d in batches[i])

    ready = sorted((i for i, c in incoming.items() if c == 0), key=key)
    out = []
    while ready:
        i = ready.pop(0)
        out.append(batches[i])
        for j in sorted(after[i]):
            incoming[j] -= 1
            if incoming[j] == 0:
                ready.append(j)
        ready.sort(key=key)
    return out


POLICIES = {p.name: p for p in (MedianTimestamp, Arrival, BatchOrderFair)}


def make_policy(name: str, n: int, f: int) -> Policy:
    """The named policy for a committee; raises ValueError for an unknown name or unsafe n."""
    if name not in POLICIES:
        raise ValueError(f"unknown ordering policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    policy: Policy = POLICIES[name](n, f)
    return policy
