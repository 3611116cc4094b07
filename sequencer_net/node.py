"""The validator node: one trio task drives the consensus core; I/O happens around it.

Theory of operation
-------------------
Everything the core reacts to arrives on one bounded channel: frames from peers
(decoded and validated before they are queued, so the core only sees verified
events), and the round timer. One task takes events in order, calls
``core.handle`` and carries out the actions in order: ``Persist`` is written to
SQLite and *finished* before any later send leaves; ``Commit`` is appended to
the store; sends go to the transport; ``ResetTimer`` re-arms the timer. Bad
input is counted by reason and dropped. Cancelling ``run`` stops the node.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ordering.core import APP_REPLAY_COMMITS, ConsensusCore, CoreConfig, PayloadApp
from ordering.events import (
    Action,
    Broadcast,
    Commit,
    Event,
    Persist,
    Rejected,
    ResetTimer,
    Send,
    TimerFired,
)
from ordering.messages import CONSENSUS
from ordering.pacemaker import PacemakerConfig
from ordering.validation import Invalid, MessageValidator
from sequencer_net.codec import DecodeError
from sequencer_net.committee import Committee
from sequencer_net.signing import SigningKey
from sequencer_net.storage import Store

log = logging.getLogger("seqnet.node")
QUEUE_DEPTH = 1024
OUTBOX_DEPTH = 256

SendFrame = Callable[[int, bytes], Awaitable[bool]]


class Node:
    def __init__(
        self,
        committee: Committee,
        me: int,
        key: SigningKey,
        app: PayloadApp,
        store: Store,
        send: SendFrame,
        base_timeout_ms: int = 1000,
    ) -> None:
        self.committee, self.me, self.store, self._send = committee, me, store, send
        config = CoreConfig(pacemaker=PacemakerConfig(base_timeout_ms=base_timeout_ms))
        first = max(1, store.committed_tip().height - APP_REPLAY_COMMITS + 1)
        for commit in store.commits(first, APP_REPLAY_COMMITS):
            app.on_commit(commit.block, commit.block_hash)  # what the app knew was final
        self.core = ConsensusCore(committee, me, key, app, config, store.restored())
        self.validator = MessageValidator(committee)
        self._events_in, self._events = trio.open_memory_channel[Event](QUEUE_DEPTH)
        self._timer = trio.CancelScope()
        self._outboxes = {
            peer: trio.open_memory_channel[bytes](OUTBOX_DEPTH)
            for peer in range(committee.n)
            if peer != me
        }
        self.rejected: Counter[str] = Counter()
        self.dropped_sends = 0
        self.commits = 0
        self.last_commit_at = 0.0

    # ------------------------------------------------------------ inputs

    async def on_frame(self, sender: int, data: bytes) -> None:
        """A frame from validator ``sender``: decode, validate, queue (or count and drop)."""
        try:
            event = self.validator.to_event(sender, CONSENSUS.decode(data))
        except DecodeError:
            self.rejected["decode"] += 1
            return
        except Invalid as exc:
            self.rejected[exc.reason] += 1
            return
        try:
            self._events_in.send_nowait(event)
        except trio.WouldBlock:
            self.rejected["queue-full"] += 1  # back-pressure: the sender will retry or time out

    # ------------------------------------------------------------ the loop

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``task_status.started()`` once the core has started."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for peer, (_, outbox) in self._outboxes.items():
                nursery.start_soon(self._deliver, peer, outbox)
            await self._execute(self.core.start())
            task_status.started()
            async for event in self._events:
                await self._execute(self.core.handle(event))

    async def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Persist(state):
                    await trio.to_thread.run_sync(self.store.save_safety, state)
                case Commit():
                    await trio.to_thread.run_sync(self.store.append_commit, action)
                    self.commits += 1
                    self.last_commit_at = time.time()
                case Send(to, message):
                    self._post(to, CONSENSUS.encode(message))
                case Broadcast(message):
                    data = CONSENSUS.encode(message)
                    for peer in self._outboxes:
                        self._post(peer, data)
                case ResetTimer(round_, duration_ms):
                    self._arm_timer(round_, duration_ms)
                case Rejected(_, reason, _):
                    self.rejected[reason] += 1

    def _post(self, peer: int, data: bytes) -> None:
        """Hand a frame to the peer's sender task; never block the core on a slow peer."""
        outbox = self._outboxes.get(peer)
        if outbox is None:
            return
        try:
            outbox[0].send_nowait(data)
        except trio.WouldBlock:
            self.dropped_sends += 1  # consensus re-sends what matters on the next timeout

    async def _deliver(self, peer: int, outbox: trio.MemoryReceiveChannel[bytes]) -> None:
        async for data in outbox:
            await self._send(peer, data)

    def _arm_timer(self, round_: int, duration_ms: int) -> None:
        self._timer.cancel()
        self._timer = trio.CancelScope()
        self._nursery.start_soon(self._fire, self._timer, round_, duration_ms / 1000)

    async def _fire(self, scope: trio.CancelScope, round_: int, seconds: float) -> None:
        with scope:
            await trio.sleep(seconds)
            await self._events_in.send(TimerFired(round_))
