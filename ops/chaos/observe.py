"""Watching a cluster from outside while it is broken: public interfaces only.

A thread per node polls its ``/v1/status`` every ``POLL_S`` (a node that does
not answer within ``STATUS_TIMEOUT_S`` is recorded as down); another reads
what it serves for every height it has certified (``/v1/batches/{h}``: the committed
block and the decrypted transactions; ``/v1/namespaces/{ns}/batches/{h}``: the
certified batch header's hash) and scrapes its ``/metrics`` every
``SCRAPE_S``. At the end, each node's heights are read up to the one it has
decrypted, certified or not: a node whose batches never certify (its own
history) is compared too. A rollup follower (``ops.load.RollupFollower``: the client
library's verifying subscription, in a child process, failing over between
nodes) takes every namespace's batches as a rollup would, each recorded with
the time it arrived. Nothing reads a node's database: what a rollup or an
operator cannot see does not count.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ops import health
from ops.chaos.history import BatchSeen, BlockSeen, Delivery, Held, History, Scrape, Status
from ops.load import RollupFollower
from ops.soak import UNANSWERED
from sequencer_net.client.http import ClientError, get_json
from sequencer_net.node.network import Member

POLL_S = 0.25  # every node's status this often (an idle leader proposes at 4 Hz)
STATUS_TIMEOUT_S = 1.0  # a node silent this long is down (SIGSTOP: it never answers)
FETCH_TIMEOUT_S = 3.0
FETCH_PER_PASS = 25  # heights read per poll at most, so status samples stay frequent
SCRAPE_S = 2.0  # /metrics this often
FOLLOW_STALL_S = 3.0  # the follower leaves a node that sends no new height this long
FINAL_FETCH_S = 30.0  # at the end, at most this long to read the heights not yet read
NOT_FOUND = 404  # a height not certified (or not decrypted) yet
CHAIN_CHECKS = 20  # at the end, /v1/blocks/{h} of at most this many heights where batches differ
LOCATED = 500  # at the end, every node asked about at most this many undelivered transactions
LOCATE_S = 20.0  # ... for at most this long


class DeliveryLog(RollupFollower):
    """The rollup follower, keeping every batch it took (not only each digest's first)."""

    def __init__(
        self,
        genesis_path: Path,
        namespaces: Sequence[str],
        from_height: int,
        nodes: Sequence[str],
    ) -> None:
        self.log: list[Delivery] = []
        super().__init__(genesis_path, namespaces, from_height, nodes, stall_s=FOLLOW_STALL_S)

    def _on_message(self, message: dict[str, Any]) -> None:
        super()._on_message(message)
        if "cpu" not in message:
            t, digests = message["t"], tuple(message["d"])  # the machine's monotonic clock
            self.log.append(Delivery(t, message["ns"], message["h"], message.get("b", ""), digests))


def read_status(member: Member, index: int, clock: Callable[[], float]) -> Status:
    """One poll of ``/v1/status`` (down if it does not answer in time)."""
    try:
        s = get_json(member.api, "/v1/status", timeout=STATUS_TIMEOUT_S)
    except UNANSWERED:
        return Status(clock(), index, None)
    if not isinstance(s, dict) or "height" not in s:
        return Status(clock(), index, None)
    return Status(
        t=clock(),
        node=index,
        height=int(s["height"]),
        round=int(s.get("round", 0)),
        leader=s.get("leader"),
        decrypted=int(s.get("decrypted_height", 0)),
        certified=int(s.get("certified_height", 0)),
        syncing=bool(s.get("syncing", False)),
    )


def read_metrics(member: Member, index: int, clock: Callable[[], float]) -> Scrape | None:
    """One scrape of ``/metrics``: heights and decrypted transactions; None if unanswered."""
    try:
        page = health.metric_page(member, timeout=STATUS_TIMEOUT_S)
    except UNANSWERED:
        return None

    def one(name: str) -> float | None:
        samples = page.get(name)
        return samples[0].value if samples else None

    def by(name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for sample in page.get(name, []):
            key = sample.labels.get(label, "")
            out[key] = out.get(key, 0.0) + sample.value
        return out

    return Scrape(
        clock(),
        index,
        one("seqnet_height"),
        one("seqnet_certified_height"),
        by("seqnet_transactions_decrypted_total", "namespace"),
        by("seqnet_decryption_shares_received_total", "sender"),
        by("seqnet_decryption_shares_invalid_total", "sender"),
        by("seqnet_round_failures_total", "leader"),
        by("seqnet_round_failures_total", "cause"),
    )


class NodeWatcher:
    """One node's status, from a thread of its own; its batches and metrics from another.

    Two threads, so that reads that wait out a silent node's timeouts never
    leave a gap in the status samples: a paused node shows as down at once.
    """

    def __init__(
        self,
        member: Member,
        index: int,
        namespace: str,
        from_height: int,
        clock: Callable[[], float],
    ) -> None:
        self.member, self.index, self.namespace, self.clock = member, index, namespace, clock
        self.next_height = from_height
        self.statuses: list[Status] = []
        self.batches: list[BatchSeen] = []
        self.scrapes: list[Scrape] = []
        self.last_scrape = time.monotonic()  # the observer scraped every node just before
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll_loop, daemon=True),
            threading.Thread(target=self._read_loop, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.poll()
            self._stop.wait(max(0.0, began + POLL_S - time.monotonic()))

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            last = self.statuses[-1] if self.statuses else None
            if last is not None and last.committing and last.certified is not None:
                self.fetch(last.certified, FETCH_PER_PASS)
            if time.monotonic() - self.last_scrape >= SCRAPE_S:
                self.last_scrape = time.monotonic()
                self.scrape()
            self._stop.wait(max(0.0, began + POLL_S - time.monotonic()))

    def poll(self) -> Status:
        status = read_status(self.member, self.index, self.clock)
        self.statuses.append(status)
        return status

    def scrape(self) -> Scrape | None:
        scrape = read_metrics(self.member, self.index, self.clock)
        if scrape is not None:
            self.scrapes.append(scrape)
        return scrape

    def fetch(
        self,
        upto: int,
        limit: int | None = None,
        deadline: float | None = None,
        *,
        certified: bool = True,
    ) -> None:
        """Read heights from ``next_height`` through ``upto``; stops at the first unanswered.

        ``certified``: each with its certified header; else a height not certified
        yet is read without (its header None).
        """
        read = 0
        while self.next_height <= upto and (limit is None or read < limit):
            if deadline is not None and time.monotonic() > deadline:
                return
            seen = self._read(self.next_height, certified)
            if seen is None:
                return
            self.batches.append(seen)
            self.next_height += 1
            read += 1

    def _read(self, height: int, certified: bool = True) -> BatchSeen | None:
        api = self.member.api
        try:
            batch = get_json(api, f"/v1/batches/{height}", timeout=FETCH_TIMEOUT_S)
        except UNANSWERED:
            return None
        try:
            header = get_json(
                api, f"/v1/namespaces/{self.namespace}/batches/{height}", timeout=FETCH_TIMEOUT_S
            )
            batch_hash = header["batch_hash"]
        except ClientError as exc:
            if certified or exc.status != NOT_FOUND:
                return None
            batch_hash = None  # decrypted, not certified (yet, or ever)
        except UNANSWERED:
            return None
        txs = tuple(
            (tx["namespace"], tx["digest"], tx["plaintext"] is not None)
            for tx in batch["transactions"]
        )
        return BatchSeen(self.clock(), self.index, height, batch["block_hash"], batch_hash, txs)


class Observer:
    """Every node's watcher and the rollup follower, started and stopped together.

    Times are recorded on the machine's monotonic clock and made relative to
    ``origin`` (when the load started) in :meth:`history`.
    """

    def __init__(
        self, members: Sequence[Member], genesis_path: Path, namespaces: Sequence[str]
    ) -> None:
        self.members = list(members)
        self.genesis_path = genesis_path
        self.namespaces = tuple(namespaces)
        self.clock = time.monotonic
        self.baseline: dict[int, Status] = {}
        self.final: dict[int, Status] = {}
        self.blocks: list[BlockSeen] = []
        self.held: list[Held] = []
        self.watchers: list[NodeWatcher] = []
        self.follower: DeliveryLog | None = None
        self.start_height = 1
        self._baseline_scrapes: list[Scrape] = []

    def take_baseline(self) -> int:
        """Each node's status and metrics before anything happens; the first height compared."""
        for i, m in enumerate(self.members):
            self.baseline[i] = read_status(m, i, self.clock)
            scrape = read_metrics(m, i, self.clock)
            if scrape is not None:
                self._baseline_scrapes.append(scrape)
        certified = [s.certified for s in self.baseline.values() if s.committing and s.certified]
        self.start_height = min(certified, default=0) + 1
        return self.start_height

    def follow(self, nodes: Sequence[int]) -> None:
        """Start the rollup follower on every namespace, trying ``nodes`` in that order."""
        apis = [self.members[i].api for i in nodes]
        self.follower = DeliveryLog(self.genesis_path, self.namespaces, self.start_height, apis)

    def following(self, timeout_s: float) -> bool:
        """Whether the rollup follower delivered every namespace within ``timeout_s``."""
        return self.follower is not None and self.follower.wait_following(
            self.namespaces, timeout_s
        )

    def start(self) -> None:
        """Start watching every node."""
        for i, m in enumerate(self.members):
            w = NodeWatcher(m, i, self.namespaces[0], self.start_height, self.clock)
            w.scrapes.extend(s for s in self._baseline_scrapes if s.node == i)
            self.watchers.append(w)
            w.start()

    def scrape_all(self) -> None:
        """Scrape every node's ``/metrics`` now (before a Byzantine fault is healed)."""
        for w in self.watchers:
            w.scrape()

    def scrape_in(self, seconds: float) -> None:
        """Have every watcher's next scrape come ``seconds`` from now (after a fault's start,
        once what was in flight has landed)."""
        for w in self.watchers:
            w.last_scrape = time.monotonic() - SCRAPE_S + seconds

    def delivered(self) -> set[str]:
        if self.follower is None:
            return set()
        return {digest for d in list(self.follower.log) for digest in d.digests}

    def stop(self) -> None:
        """Stop watching and following at once (a run cut short: no final reads)."""
        for w in self.watchers:
            w.stop()
        if self.follower is not None:
            self.follower.stop()

    def finish(self) -> None:
        """Stop watching; then each node's final status, the heights not yet read, metrics."""
        for w in self.watchers:
            w.stop()
        deadline = time.monotonic() + FINAL_FETCH_S
        for w in self.watchers:
            status = w.poll()
            self.final[w.index] = status
            if status.committing and status.certified is not None:
                w.fetch(status.certified, deadline=deadline)
                w.fetch(max(status.decrypted or 0, status.certified), deadline=deadline,
                        certified=False)  # fmt: skip
            w.scrape()
        self.read_chain(self.disputed()[:CHAIN_CHECKS], deadline)
        if self.follower is not None:
            self.follower.stop()

    def locate(self, digests: Sequence[str]) -> None:
        """Ask every node where each of ``digests`` is (``/v1/transactions/{digest}``)."""
        deadline = time.monotonic() + LOCATE_S
        for digest in digests[:LOCATED]:
            for i, m in enumerate(self.members):
                if time.monotonic() > deadline:
                    return
                try:
                    found = get_json(m.api, f"/v1/transactions/{digest}", FETCH_TIMEOUT_S)
                except UNANSWERED:
                    continue
                self.held.append(Held(self.clock(), i, digest, str(found.get("status"))))

    def disputed(self) -> list[int]:
        """Heights where the nodes serve more than one block or batch, lowest first."""
        versions: dict[int, set[tuple[str, tuple[str, ...]]]] = {}
        for w in self.watchers:
            for b in w.batches:
                versions.setdefault(b.height, set()).add((b.block_hash, b.digests))
        return sorted(h for h, v in versions.items() if len(v) > 1)

    def read_chain(self, heights: Sequence[int], deadline: float) -> None:
        """Each node's committed block (``/v1/blocks/{h}``) at ``heights``."""
        for height in heights:
            for w in self.watchers:
                if time.monotonic() > deadline:
                    return
                try:
                    block = get_json(w.member.api, f"/v1/blocks/{height}", FETCH_TIMEOUT_S)
                except UNANSWERED:
                    continue
                self.blocks.append(BlockSeen(self.clock(), w.index, height, block["block_hash"]))

    def history(self, origin: float, **fields: Any) -> History:
        """Everything recorded, times made relative to ``origin``; ``fields``: the run's own."""

        def at(record: Any) -> Any:
            return dataclasses.replace(record, t=record.t - origin)

        statuses = (s for w in self.watchers for s in w.statuses)
        scrapes = (s for w in self.watchers for s in w.scrapes)
        return History(
            start_height=self.start_height,
            namespaces=self.namespaces,
            statuses=sorted((at(s) for s in statuses), key=lambda s: s.t),
            batches=[at(b) for w in self.watchers for b in w.batches],
            deliveries=[at(d) for d in (self.follower.log if self.follower else [])],
            scrapes=sorted((at(s) for s in scrapes), key=lambda s: s.t),
            baseline={i: at(s) for i, s in self.baseline.items()},
            final={i: at(s) for i, s in self.final.items()},
            blocks=[at(b) for b in self.blocks],
            held=[at(x) for x in self.held],
            **fields,
        )
