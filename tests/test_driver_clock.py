"""Four consensus drivers in one process, on trio's virtual clock: quorum or nothing.

The drivers are the real ones (SQLite stores, outboxes, round timers); only the
network is a function call between them and the clock is trio's ``MockClock``
with ``autojump_threshold=0`` (pytest-trio's ``autojump_clock``): when every task
waits, time jumps to the next timer. A minute of rounds takes milliseconds, and
the verdict does not depend on how busy the machine is.

The drivers persist their safety state inline (the default ``offload``): had
the write run in a worker thread, virtual time would pass while it writes (trio
cannot see into a thread), timers could fire "during" a disk write and runs
would differ.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import trio
import trio.testing

from ops.sim.node import LabelPayload
from ordering.events import Commit
from sequencer_net.node.driver import ConsensusDriver, Outboxes
from sequencer_net.node.metrics import NodeMetrics
from sequencer_net.node.storage import Store
from tests.factory import Net

N = 4
TIMEOUT_S = 1.0  # the drivers' base round timeout
T = TypeVar("T")


class InProcessCommittee:
    """N drivers whose outboxes call each other's ``on_frame``; only nodes in ``up`` talk."""

    def __init__(self, tmp_path: pathlib.Path, net: Net) -> None:
        self.up: set[int] = set()
        self.commits: dict[int, list[tuple[float, Commit]]] = {i: [] for i in range(N)}
        self.drivers = [
            ConsensusDriver(
                net.committee,
                i,
                net.keys[i],
                LabelPayload(str(i)),  # always has a payload: leaders propose at once
                Store(tmp_path / f"node-{i}.db", net.chain_id),
                Outboxes([p for p in range(N) if p != i], self._sender(i)),
                int(TIMEOUT_S * 1000),
                metrics=NodeMetrics(),
                on_commit=self._recorder(i),
            )
            for i in range(N)
        ]

    def _sender(self, me: int) -> Callable[[int, bytes, str], Awaitable[bool]]:
        async def send(peer: int, data: bytes, protocol: str) -> bool:
            if me in self.up and peer in self.up:  # a node that is down hears nothing
                await self.drivers[peer].on_frame(me, data)
            return True

        return send

    def _recorder(self, me: int) -> Callable[[Commit], None]:
        def record(commit: Commit) -> None:
            self.commits[me].append((trio.current_time(), commit))

        return record

    async def start(self, nursery: trio.Nursery, i: int) -> None:
        self.up.add(i)
        await nursery.start(self.drivers[i].outboxes.run)
        await nursery.start(self.drivers[i].run)

    def timeouts(self, i: int) -> float:
        return float(self.drivers[i].metrics.timeouts._value.get())

    def chain(self, i: int) -> list[bytes]:
        return [c.block_hash for _, c in self.commits[i]]

    def close(self) -> None:
        for driver in self.drivers:
            driver.store.close()


@asynccontextmanager
async def committee(
    tmp_path: pathlib.Path,
) -> AsyncIterator[tuple[InProcessCommittee, trio.Nursery]]:
    nodes = InProcessCommittee(tmp_path, Net(N))
    try:
        async with trio.open_nursery() as nursery:
            yield nodes, nursery
            nursery.cancel_scope.cancel()
    finally:
        nodes.close()


async def test_two_of_four_never_commit_and_three_commit_within_bounded_virtual_time(
    tmp_path: pathlib.Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with committee(tmp_path) as (nodes, nursery):
        for i in (0, 1):  # 1 leads round 1 and proposes; 0 votes; 2 and 3 are down
            await nodes.start(nursery, i)
        await trio.sleep(60)

        # No quorum: no QC, so no commit; and no TC either (2 timeouts of the 3 needed),
        # so the round cannot advance. The timers kept firing and re-sending timeouts.
        for i in (0, 1):
            assert nodes.commits[i] == [], f"node {i} committed without a quorum"
            assert nodes.drivers[i].store.committed_tip().height == 0
            assert nodes.drivers[i].core.round == 1
            assert nodes.timeouts(i) >= 10  # the round timer keeps firing (one a second here)
            assert nodes.drivers[i].core.last_tc is None

        started_third = trio.current_time()
        await nodes.start(nursery, 2)
        with trio.fail_after(30):  # virtual: a handful of timeouts and leader rotations
            while min(len(nodes.commits[i]) for i in (0, 1, 2)) < 10:  # noqa: ASYNC110
                await trio.sleep(0.1)

    first = min(t for i in (0, 1, 2) for t, _ in nodes.commits[i][:1])
    assert first - started_third <= 5 * TIMEOUT_S  # a few timeouts (observed: 2.5 s)
    assert nodes.commits[3] == []
    height = min(len(nodes.chain(i)) for i in (0, 1, 2))
    assert nodes.chain(0)[:height] == nodes.chain(1)[:height] == nodes.chain(2)[:height]
    heights = [c.block.height for _, c in nodes.commits[0]]
    assert heights == list(range(1, len(heights) + 1))
