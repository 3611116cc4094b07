"""Transaction ingress: admit ciphertexts from clients and peers, relay them in batches.

Theory of operation
-------------------
A submission (HTTP) or a peer's ``TxBatch`` goes through the mempool's cheap
checks at once (size, strict decode, namespace, duplicate). What survives waits
for the checker task, which runs the ciphertext checks of *everything waiting*
in one worker-thread call (libsecp256k1 releases the GIL, so the event loop keeps
running consensus meanwhile; a handful is checked inline, cheaper than the
thread's hand-offs), then admits the good ones. The same call asks the
store which of them were committed at any height: the mempool remembers only
the most recent commits, the store every one, so a replay of old bytes is a
duplicate however long ago, and across restarts.

Check time is shared fairly between sources: every client connection and every
peer has its own queue, and each thread call takes at most ``SLICE`` items from
each queue in turn. A source that floods (thousands of bad proofs in one
request) waits behind itself; an honest transaction from anyone else is
checked in the next call, not after the whole flood. Each admitted
transaction is reported to the fair-ordering app with its local arrival time
and queued for relay; every ``RELAY_TICK_S`` one ``TxBatch`` per peer carries
what is due to it.

A transaction from a client goes to every peer at once. One from a peer is
relayed ``RELAY_LATER_S`` later, and only to the peers that still seem to lack
it: not to one that sent us a copy, nor to one whose newest order report lists
it, nor at all once it has left our mempool (ordered). Relaying everything at
once had every node receive each transaction about three times (the entry
node's copy and every other node's relay); the delayed relay keeps what it was
for, that a transaction which reached one honest validator reaches all even
when the validator it was submitted to sends it to only some. Any transaction
still in our mempool is offered again every ``RELAY_AGAIN_S`` to the peers
whose newest report does not list it: a relay frame lost on the way (a bad
link, a partition) would otherwise leave it stranded at one validator, never
in f+1 reports and so never ordered.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import trio

from mev import kem
from mev.kem import Ciphertext
from mev.mempool import Admission, EncryptedMempool, check_ciphertext
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError
from sequencer_net.node.metrics import NodeMetrics
from sequencer_net.node.offload import run_sized
from sequencer_net.node.wire import TX, TxBatch

RELAY_TICK_S = 0.005
RELAY_LATER_S = 0.5  # a peer's transaction is relayed this much later, where still missing
RELAY_AGAIN_S = 1.0  # then again, as long as a peer's newest report does not list it
MAX_RELAY_LATER = 50_000  # transactions waiting for that; beyond it the oldest go unrelayed
MAX_WAITING = 20_000  # admissions queued for the checker before new ones are refused
MAX_WAITING_PER_SOURCE = 5_000  # one source (client connection or peer) may hold this many
SLICE = 64  # proofs checked per source per thread call (~40 ms at most, then the next source)
CHECK_US = 50  # one ciphertext's signature check and its store lookup, about
# digests whose proof we checked, so decryption need not redo it (it comes within a second
# or two of admission; one that fell out is checked again, ~35 µs)
REMEMBER_CHECKED = 50_000

Post = Callable[[int, bytes], None]  # (peer, frame) -> queued for that peer


@dataclass
class _Waiting:
    ct: Ciphertext
    data: bytes
    digest: bytes
    source: int | None  # validator index, None for a client
    verdict: Admission | None = None
    done: trio.Event = field(default_factory=trio.Event)


class TxIngress:
    """Admission, proof checks in batches, and relay; also the app's ``TxBodies``."""

    def __init__(
        self,
        mempool: EncryptedMempool,
        peers: list[int],
        post: Post,
        on_admitted: Callable[[bytes, Ciphertext], None],
        metrics: NodeMetrics,
        committed: Callable[[list[bytes]], set[bytes]] = lambda digests: set(),
        peer_has: Callable[[int, bytes], bool] = lambda peer, digest: False,
    ) -> None:
        """``peer_has(peer, digest)``: the peer's newest order report lists the digest."""
        self.mempool, self.peers, self._post = mempool, peers, post
        self._committed = committed  # (worker thread) which digests the store holds
        self._peer_has = peer_has
        self._later: deque[tuple[float, bytes, bytes]] = deque()  # (due, digest, data)
        self._copies_from: dict[bytes, set[int]] = {}  # digest in _later -> peers that sent it
        self._on_admitted, self.metrics = on_admitted, metrics
        self._waiting: dict[Hashable, deque[_Waiting]] = {}  # per source, in arrival order
        self._waiting_count = 0
        self._in_check: set[bytes] = set()
        self._wake = trio.Event()
        self._outgoing: list[bytes] = []  # clients' transactions, for every peer
        self._checked: OrderedDict[bytes, None] = OrderedDict()

    # ------------------------------------------------------------ inputs

    async def submit(self, data: bytes, client: Hashable = "client") -> Admission:
        """A client's transaction: the verdict once its proof has been checked."""
        return (await self.submit_many([data], client))[0]

    async def submit_many(self, txs: list[bytes], client: Hashable = "client") -> list[Admission]:
        """A client's transactions: one verdict each, in order. ``client`` names its
        connection; each has its own queue (see the module docstring)."""
        items = [self._enqueue(data, None, ("client", client)) for data in txs]
        verdicts = []
        for item in items:
            if isinstance(item, _Waiting):
                await item.done.wait()
                assert item.verdict is not None
                item = item.verdict
            verdicts.append(item)
        return verdicts

    def on_frame(self, sender: int, data: bytes) -> None:
        """A peer's ``TxBatch``: queue its new transactions for checking."""
        try:
            batch = TX.decode(data)
        except DecodeError:
            self.metrics.reject("tx", "decode")
            return
        assert isinstance(batch, TxBatch)
        for tx in batch.txs:
            self._enqueue(tx, sender, ("peer", sender))

    def _enqueue(self, data: bytes, source: int | None, queue: Hashable) -> _Waiting | Admission:
        digest = kem.digest_of_encoding(data)
        if digest in self._in_check or self.mempool.is_known(digest):
            # a copy of what we hold is refused before decoding: its digest is all it costs
            senders = self._copies_from.get(digest)
            if senders is not None and source is not None:
                senders.add(source)  # it has it: no need to relay it there
            return self._count(Admission(False, "duplicate", digest), source)
        screened = self.mempool.screen(data)
        if isinstance(screened, Admission):
            return self._count(screened, source)
        held = len(self._waiting.get(queue, ()))
        if self._waiting_count >= MAX_WAITING or held >= MAX_WAITING_PER_SOURCE:
            return self._count(Admission(False, "overloaded", digest), source)
        item = _Waiting(screened, data, digest, source)
        self._in_check.add(digest)
        self._waiting.setdefault(queue, deque()).append(item)
        self._waiting_count += 1
        self._wake.set()
        return item

    def _count(self, verdict: Admission, source: int | None) -> Admission:
        label = "client" if source is None else "peer"
        self.metrics.labelled(self.metrics.admissions, label, verdict.reason).inc()
        return verdict

    # ------------------------------------------------------------ tasks

    async def check_loop(self) -> None:
        """Check every waiting proof in one call (a thread's, unless they are few), then
        admit; forever."""
        chain_id = self.mempool.chain_id
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            batch = self._next_slice()
            if self._waiting_count:
                self._wake.set()  # more waits: come back after this slice
            cost_us = CHECK_US * len(batch)
            verdicts = await run_sized(self._check_all, chain_id, batch, cost_us=cost_us)
            for item, refused in zip(batch, verdicts, strict=True):
                self._admit(item, refused)

    def _next_slice(self) -> list[_Waiting]:
        """Up to ``SLICE`` waiting items from each source's queue, round robin."""
        batch: list[_Waiting] = []
        for queue, waiting in list(self._waiting.items()):
            for _ in range(min(SLICE, len(waiting))):
                batch.append(waiting.popleft())
            if not waiting:
                del self._waiting[queue]
        self._waiting_count -= len(batch)
        return batch

    def _check_all(self, chain_id: str, batch: list[_Waiting]) -> list[Admission | None]:
        """Refuse what was committed long ago, then check the proofs (a worker thread's
        job, or the event loop's for a few)."""
        old = self._committed([w.digest for w in batch])
        return [
            Admission(False, "duplicate", w.digest)
            if w.digest in old
            else check_ciphertext(self.mempool.threshold_key, chain_id, w.ct)
            for w in batch
        ]

    def _admit(self, item: _Waiting, refused: Admission | None) -> None:
        digest = item.digest
        self._in_check.discard(digest)
        verdict = refused or self.mempool.insert_checked(item.ct, item.data, digest)
        item.verdict = self._count(verdict, item.source)
        item.done.set()
        if verdict.accepted:
            self._remember_checked(digest)
            if item.source is None:
                self._outgoing.append(item.data)  # from a client: to every peer now
            self._relay_later(digest, item.data, item.source)  # and again where missing
            self._on_admitted(digest, item.ct)
        self.metrics.mempool_size.set(len(self.mempool))
        self.metrics.mempool_bytes.set(self.mempool.size_bytes)

    def _remember_checked(self, digest: bytes) -> None:
        self._checked[digest] = None
        if len(self._checked) > REMEMBER_CHECKED:
            self._checked.popitem(last=False)

    def was_checked(self, digest: bytes) -> bool:
        """Its proof passed here (it may have left the mempool since, by commit)."""
        return digest in self._checked

    def _relay_later(
        self, digest: bytes, data: bytes, source: int | None, after_s: float = RELAY_LATER_S
    ) -> None:
        if len(self._later) >= MAX_RELAY_LATER:
            _, oldest, _ = self._later.popleft()
            self._copies_from.pop(oldest, None)
        self._later.append((trio.current_time() + after_s, digest, data))
        self._copies_from.setdefault(digest, set()).update(() if source is None else (source,))

    async def relay_loop(self) -> None:
        """Every tick, one ``TxBatch`` per peer with what is due to it."""
        while True:
            await trio.sleep(RELAY_TICK_S)
            due = self._due_to_peers()
            outgoing, self._outgoing = self._outgoing, []
            for peer in self.peers:
                txs = outgoing + due.get(peer, [])
                for start in range(0, len(txs), 1024):
                    self._post(peer, TX.encode(TxBatch(tuple(txs[start : start + 1024]))))

    def _due_to_peers(self) -> dict[int, list[bytes]]:
        """Peers' transactions whose relay is due, for each peer that still seems to lack them."""
        now = trio.current_time()
        due: dict[int, list[bytes]] = {}
        while self._later and self._later[0][0] <= now:
            _, digest, data = self._later.popleft()
            senders = self._copies_from.pop(digest, set())
            if digest not in self.mempool:
                continue  # ordered (or evicted) meanwhile
            lacking = [p for p in self.peers if p not in senders and not self._peer_has(p, digest)]
            for peer in lacking:
                due.setdefault(peer, []).append(data)
            if lacking:  # a frame may have been lost: look again until all report it
                self._copies_from[digest] = senders
                self._later.append((now + RELAY_AGAIN_S, digest, data))
        return due

    # ------------------------------------------------------------ TxBodies (for the app)

    def body(self, digest: bytes) -> bytes | None:
        entry = self.mempool.get(digest)
        return None if entry is None else entry.data

    def digest_of(self, body: bytes) -> bytes | None:
        digest = kem.digest_of_encoding(body)
        if digest in self.mempool:
            return digest  # the same bytes we admitted: well formed
        try:
            codec.decode(Ciphertext, body)
        except DecodeError:
            return None
        return digest


def now_ms() -> int:
    return time.time_ns() // 1_000_000
