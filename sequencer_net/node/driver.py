"""The consensus driver: one trio task runs the consensus core; I/O happens around it.

Theory of operation
-------------------
Everything the core reacts to arrives on one bounded channel: consensus frames
from peers (decoded and validated before they are queued, so the core only sees
verified events), the round timer, and wake-ups (new transactions, the
heartbeat). One task takes events in order, calls ``core.handle`` and carries
out the actions in order: ``Persist`` is written to SQLite and *finished*
before any later send leaves; ``Commit`` is appended to the store and then
handed on (decryption); sends go through per-peer outboxes; ``ResetTimer``
re-arms the timer. Bad input is counted by reason and dropped. Cancelling
``run`` stops the node.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from logging import DEBUG
from typing import Any

import trio

from ordering.blocktree import RETENTION
from ordering.core import CoreConfig, PayloadApp
from ordering.events import (
    Action,
    Broadcast,
    Commit,
    CommitWitness,
    Event,
    Ignored,
    Persist,
    Rejected,
    ResetTimer,
    Send,
    TimerFired,
    Wakeup,
)
from ordering.leader import leader_of
from ordering.messages import CONSENSUS, Proposal, Timeout
from ordering.pacemaker import BASE_TIMEOUT_MS, PacemakerConfig
from ordering.recovery import recover_core
from ordering.validation import Invalid, MessageValidator
from p2p.host import CONSENSUS_PROTOCOL
from sequencer_net.base.codec import DecodeError
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import SigningKey
from sequencer_net.node.logs import event
from sequencer_net.node.metrics import NodeMetrics
from sequencer_net.node.offload import run_inline
from sequencer_net.node.storage import Store

log = logging.getLogger("seqnet.node")
QUEUE_DEPTH = 1024
OUTBOX_DEPTH = 256
# Each validator may hold at most its share of the event queue, so one that floods
# (even with valid, replayed messages) cannot crowd out the others.

SendFrame = Callable[[int, bytes, str], Awaitable[bool]]
Offload = Callable[..., Awaitable[Any]]  # runs a blocking call, e.g. in a worker thread


class Outboxes:
    """One bounded queue and sender task per (peer, protocol): a slow peer blocks nobody."""

    def __init__(
        self,
        peers: list[int],
        send: SendFrame,
        on_drop: Callable[[str], None] = lambda protocol: None,
    ) -> None:
        self.peers, self._send, self._on_drop = peers, send, on_drop
        self._queues: dict[tuple[int, str], trio.MemorySendChannel[bytes]] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def post(self, peer: int, data: bytes, protocol: str) -> None:
        """Queue a frame for ``peer``; drop it (counted) when that peer's queue is full."""
        queue = self._queues.get((peer, protocol))
        if queue is None:
            if self._nursery is None or peer not in self.peers:
                return
            queue, receive = trio.open_memory_channel[bytes](OUTBOX_DEPTH)
            self._queues[(peer, protocol)] = queue
            self._nursery.start_soon(self._deliver, peer, protocol, receive)
        try:
            queue.send_nowait(data)
        except trio.WouldBlock:
            self._on_drop(protocol)  # consensus re-sends what matters on the next timeout

    async def _deliver(
        self, peer: int, protocol: str, queue: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        async for data in queue:
            await self._send(peer, data, protocol)


class ConsensusDriver:
    def __init__(
        self,
        committee: Committee,
        me: int,
        key: SigningKey,
        app: PayloadApp,
        store: Store,
        outboxes: Outboxes,
        base_timeout_ms: int = BASE_TIMEOUT_MS,
        *,
        retention: int = RETENTION,
        metrics: NodeMetrics | None = None,
        on_commit: Callable[[Commit], None] | None = None,
        before_event: Callable[[], None] | None = None,
        ordered: Callable[[Commit], Sequence[bytes]] = lambda commit: (),
        offload: Offload = run_inline,
    ) -> None:
        """``ordered`` names the transactions a commit orders (indexed with it in the store).

        ``offload`` runs the safety-state write: inline by default, since the
        vote waits for it either way and a thread's hand-offs cost more than
        the write (``sequencer_net.node.offload``).
        """
        self._ordered, self._offload = ordered, offload
        self.committee, self.me, self.store, self.outboxes = committee, me, store, outboxes
        self.metrics = metrics or NodeMetrics()
        self._on_commit, self._before_event = on_commit, before_event
        config = CoreConfig(
            pacemaker=PacemakerConfig(base_timeout_ms=base_timeout_ms), retention=retention
        )
        self.core = recover_core(committee, me, key, app, config, store)
        self.validator = MessageValidator(committee)
        self._events_in, self._events = trio.open_memory_channel[Event](QUEUE_DEPTH)
        self._timer = trio.CancelScope()
        self._wakeup_queued = False
        self._queued: Counter[int] = Counter()  # events waiting in the queue, per sender
        self._fair_share = QUEUE_DEPTH // committee.n
        self.commits = 0
        self.last_commit_at = 0.0
        self.started_at = time.time()
        self._last_tc_round = 0

    # ------------------------------------------------------------ inputs

    async def on_frame(self, sender: int, data: bytes) -> None:
        """A consensus frame from validator ``sender``: decode, validate, queue (or count)."""
        try:
            event = self.validator.to_event(sender, CONSENSUS.decode(data))
        except DecodeError:
            return self.metrics.reject("consensus", "decode")
        except Invalid as exc:
            return self.metrics.reject("consensus", exc.reason)
        if self._queued[sender] >= self._fair_share:
            return self.metrics.ignore(
                "consensus", "sender-over-share"
            )  # it floods, or we are far behind
        try:
            self._events_in.send_nowait(event)
        except trio.WouldBlock:
            return self.metrics.ignore(
                "consensus", "queue-full"
            )  # back-pressure: the sender will retry or time out
        self._queued[sender] += 1

    @property
    def last_progress_at(self) -> float:
        """Unix time of the last commit, or of the start if none yet."""
        return max(self.last_commit_at, self.started_at)

    def wakeup(self) -> None:
        """Ask the core to retry a proposal its app declined (new work or heartbeat)."""
        if self._wakeup_queued:
            return
        try:
            self._events_in.send_nowait(Wakeup())
            self._wakeup_queued = True
        except trio.WouldBlock:
            pass  # the queue is busy anyway: the core will be asked again soon

    # ------------------------------------------------------------ the loop

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``task_status.started()`` once the core has started."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._tick()
            await self._execute(self.core.start())
            task_status.started()
            async for event in self._events:
                if isinstance(event, Wakeup):
                    self._wakeup_queued = False
                sender = getattr(event, "sender", None)
                if sender is not None:
                    self._queued[sender] -= 1
                self._tick()
                await self._execute(self.core.handle(event))

    def _tick(self) -> None:
        if self._before_event is not None:
            self._before_event()

    async def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Persist(state, blocks):
                    await self._offload(self.store.save_safety, state, blocks)
                case Commit():
                    self.store.append_commit(
                        action, self._ordered(action)
                    )  # not fsynced (see storage): no hand-off
                    self._committed(action)
                case CommitWitness():
                    self.store.save_commit_witness(action)  # a cache for receipts: no hand-off
                case Send(to, message):
                    self.outboxes.post(to, CONSENSUS.encode(message), CONSENSUS_PROTOCOL)
                case Broadcast(message):
                    data = CONSENSUS.encode(message)
                    if isinstance(message, Timeout):
                        self.metrics.timeouts.inc()
                    elif isinstance(message, Proposal):
                        block = message.block
                        event(log, "proposed", DEBUG, height=block.height, round=block.round,
                              bytes=len(block.payload))  # fmt: skip
                    for peer in self.outboxes.peers:
                        self.outboxes.post(peer, data, CONSENSUS_PROTOCOL)
                case ResetTimer(round_, duration_ms):
                    self._arm_timer(round_, duration_ms)
                case Rejected(_, reason, _):
                    self.metrics.reject("consensus", reason)
                case Ignored(_, reason, _):
                    self.metrics.ignore("consensus", reason)
        self._observe_core()

    def _committed(self, commit: Commit) -> None:
        event(log, "committed", DEBUG, height=commit.block.height, round=commit.block.round)
        self.commits += 1
        self.last_commit_at = time.time()
        self.metrics.blocks.inc()
        self.metrics.height.set(commit.block.height)
        self.metrics.last_commit.set(self.last_commit_at)
        if self._on_commit is not None:
            self._on_commit(commit)

    def _observe_core(self) -> None:
        self.metrics.set_round(self.core.round)
        tc = self.core.last_tc
        if tc is not None and tc.round > self._last_tc_round:
            self._last_tc_round = tc.round
            self.metrics.round_timed_out()
            leader = str(leader_of(tc.round, self.core.committee.n))
            cause = self.core.last_tc_cause
            self.metrics.labelled(self.metrics.round_failures, leader, cause).inc()

    def _arm_timer(self, round_: int, duration_ms: int) -> None:
        self._timer.cancel()
        self._timer = trio.CancelScope()
        self._nursery.start_soon(self._fire, self._timer, round_, duration_ms / 1000)

    async def _fire(self, scope: trio.CancelScope, round_: int, seconds: float) -> None:
        with scope:
            await trio.sleep(seconds)
            await self._events_in.send(TimerFired(round_))
