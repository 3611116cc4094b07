"""After commit: make shares, collect ``t`` share batches, open the batch, store it.

Theory of operation
-------------------
Committed blocks arrive in height order. For each, the service rebuilds the
batch through ``CommittedBatch.from_commit`` (which re-checks the certificate:
nothing uncommitted can reach the share code), makes this validator's share
batch in a worker thread and sends it to every peer — one message per block per
peer — as soon as the block is committed, up to ``SHARE_AHEAD`` blocks ahead of
the one being opened. Share batches from peers are kept by block hash (at most
one per sender and block, only for a bounded window of blocks). Blocks are
opened in height order: with ``t`` share batches the batch is opened
(optimistic combine; proofs checked only if a key check fails) and the
``DecryptedBatch`` stored. Since every validator shares ahead, a block's shares
are usually here when its turn comes, so a busy chain decrypts at the speed of
its CPU, not one network round trip per block. Blocks without transactions
need no shares (their empty batch is stored when they are shared).

A node that restarts or syncs finds committed heights with no stored batch, and
a node that fell behind commits blocks whose shares went out long ago. It first
tries the keys a peer stored for the same height: each is checked against its
ciphertext's key check, which proves a key right. A ciphertext whose payload
opens to nothing has no key that passes its check, so a peer's key for it
proves nothing; then the node sends a :class:`ShareRequest` and peers send
their share batches for that committed block again. The node combines them
like everyone did live (verified shares give exactly ``x·u``), so it reaches the
same verdict — "invalid" — and never waits on keys nobody can prove.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from logging import DEBUG

import trio

from mev import kem
from mev.combine import NotEnoughShares, open_with_keys
from mev.committed import CommittedBatch, NotCommitted
from mev.decryptor import Decryptor
from mev.kem import Ciphertext
from mev.shares import ShareBatch
from ordering.events import Commit
from ordering.fair.app import FairPayload
from ordering.validation import MessageValidator
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError
from sequencer_net.node.logs import event
from sequencer_net.node.metrics import NodeMetrics
from sequencer_net.node.offload import run_sized
from sequencer_net.node.storage import Store
from sequencer_net.node.wire import (
    SHARES,
    AttestationMessage,
    BatchVote,
    CertificateReply,
    CertificateRequest,
    DecryptedBatch,
    DecryptedTx,
    ShareRequest,
)

log = logging.getLogger("seqnet.decrypt")
EARLY_WINDOW = 64  # blocks whose shares we keep before we have committed them
KEYS_RETRY_S = 1.0  # wait for shares this long, then ask peers for their stored keys
LATE_SHARES_S = KEYS_RETRY_S  # a share batch arriving this long after our commit is late
BEHIND_BLOCKS = 3  # this many newer commits queued: peers are past this height, ask at once
STUCK_LOG_S = 10.0  # a height still not opened after this long is logged as a warning
REQUESTS_QUEUED = 16  # share requests from peers waiting to be served; more are ignored
# estimated costs, to run small batches inline (sequencer_net.node.offload): making a
# share (~70 µs) for a ~400-byte transaction; combining and opening one (~60 µs)
SHARE_US_PER_BYTE = 0.2
OPEN_US = 60
DECODED_KEPT = 64  # committed blocks whose ciphertexts the mempool handed over, not yet opened
SHARE_AHEAD = 8  # committed blocks shared, waiting to be opened (well inside EARLY_WINDOW)
OWN_KEPT = 32  # our own recent share batches, to answer a lagging peer without recomputing

Post = Callable[[int, bytes], None]
FetchBatch = Callable[[int], Awaitable[DecryptedBatch | None]]  # a peer's stored batch


def read_payload(block_payload: bytes) -> FairPayload:
    """A fair-ordering block's payload (raises DecodeError)."""
    payload: FairPayload = codec.decode(FairPayload, block_payload)
    return payload


class DecryptionService:
    def __init__(
        self,
        decryptor: Decryptor,
        validator: MessageValidator,
        store: Store,
        peers: list[int],
        post: Post,
        fetch_batch: FetchBatch,
        metrics: NodeMetrics,
        is_checked: Callable[[Ciphertext, bytes], bool],
        on_decrypted: Callable[[DecryptedBatch], None],
        payload_of: Callable[[Commit], FairPayload] = lambda c: read_payload(c.block.payload),
        on_attestation: Callable[[int, AttestationMessage], None] | None = None,
    ) -> None:
        """``on_attestation`` takes the batch votes and certificate messages that share
        this protocol (``sequencer_net.node.attestation``)."""
        self._payload_of, self._on_attestation = payload_of, on_attestation
        self.decryptor, self.validator, self.store = decryptor, validator, store
        self.peers, self._post, self._fetch_batch = peers, post, fetch_batch
        self.metrics, self._is_checked, self._on_decrypted = metrics, is_checked, on_decrypted
        # unbounded: a catch-up may queue thousands of commits at once (small objects)
        self._commits_in, self._commits = trio.open_memory_channel[Commit](math.inf)
        self._shares: OrderedDict[bytes, dict[int, ShareBatch]] = OrderedDict()
        self._arrived = trio.Event()
        self._latest = 0  # highest height committed
        self._opening = b""  # block hash of the batch being opened now
        self._own: OrderedDict[bytes, ShareBatch] = OrderedDict()  # our recent share batches
        self._decoded: OrderedDict[bytes, Mapping[bytes, Ciphertext]] = OrderedDict()
        self._committed_at: OrderedDict[bytes, float] = OrderedDict()  # block hash -> when
        self._requests_in, self._requests = trio.open_memory_channel[tuple[int, ShareRequest]](
            REQUESTS_QUEUED
        )
        self._requesters: set[int] = set()  # peers with a request queued or being served

    # ------------------------------------------------------------ inputs

    def on_commit(self, commit: Commit, decoded: Mapping[bytes, Ciphertext] | None = None) -> None:
        """Queue a committed block (called right after it is stored).

        ``decoded``: ciphertexts of the block already decoded (the mempool's, by
        digest), so that opening it need not decode its bodies again.
        """
        self._latest = max(self._latest, commit.block.height)
        self._committed_at[commit.block_hash] = time.monotonic()
        while len(self._committed_at) > EARLY_WINDOW:
            self._committed_at.popitem(last=False)
        if decoded:
            self._decoded[commit.block_hash] = decoded
            while len(self._decoded) > DECODED_KEPT:
                self._decoded.popitem(last=False)
        self._commits_in.send_nowait(commit)

    def on_frame(self, sender: int, data: bytes) -> None:
        """A peer's share batch, or its request for ours; batch votes and certificate
        requests and replies go on to ``on_attestation``."""
        try:
            message = SHARES.decode(data)
        except DecodeError:
            self.metrics.reject("shares", "decode")
            return
        if isinstance(message, BatchVote | CertificateRequest | CertificateReply):
            if self._on_attestation is not None:
                self._on_attestation(sender, message)
        elif isinstance(message, ShareRequest):
            self._on_request(sender, message)
        elif message.node != sender:
            self.metrics.reject("shares", "wrong-sender")
        else:
            self._count_arrival(sender, message.batch_id)
            self._keep(sender, message)

    def _count_arrival(self, sender: int, batch_id: bytes) -> None:
        """Per sender: every share batch, and those that came late (a slow or withholding
        validator shows here before it costs anyone a fallback)."""
        label = str(sender)
        self.metrics.labelled(self.metrics.shares_received, label).inc()
        committed = self._committed_at.get(batch_id)
        if committed is not None and time.monotonic() - committed > LATE_SHARES_S:
            self.metrics.labelled(self.metrics.shares_late, label).inc()

    def _keep(self, sender: int, batch: ShareBatch) -> None:
        """Keep one share batch per sender and block, for a bounded window of blocks.

        The block being opened is never the one evicted: while this node lags,
        shares of newer blocks keep arriving and must not push out the answers
        to its own share request.
        """
        held = self._shares.setdefault(batch.batch_id, {})
        held.setdefault(sender, batch)
        while len(self._shares) > EARLY_WINDOW:
            oldest = next(iter(self._shares))
            if oldest == self._opening:
                self._shares.move_to_end(oldest)
                oldest = next(iter(self._shares))
            del self._shares[oldest]
        self._arrived.set()

    def _on_request(self, sender: int, request: ShareRequest) -> None:
        """Queue a peer's share request (one per sender at a time; ignored when busy)."""
        if sender in self._requesters:
            self.metrics.ignore("shares", "request-pending")
            return
        try:
            self._requests_in.send_nowait((sender, request))
        except trio.WouldBlock:
            self.metrics.ignore("shares", "busy")
            return
        self._requesters.add(sender)

    # ------------------------------------------------------------ the worker

    async def run(self) -> None:
        """Open every committed batch, in height order, and serve peers' share requests.

        Two stages: one shares each committed block as soon as it is committed (up to
        ``SHARE_AHEAD`` blocks ahead), the other opens them in height order. Every
        validator shares ahead, so the shares of the next block are usually here
        when its turn comes: opening costs no network round trip per block.
        """
        shared_in, shared = trio.open_memory_channel[Shared](SHARE_AHEAD)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve_requests)
            nursery.start_soon(self._open_in_order, shared)
            async with shared_in:
                await self._recover_missing(shared_in)
                async for commit in self._commits:
                    if self.store.batch(commit.block.height) is None:
                        await self._share(commit, shared_in)

    async def _serve_requests(self) -> None:
        """Answer share requests one at a time: our share batch for a committed block."""
        async for sender, request in self._requests:
            try:
                share = await self._own_share(request)
            finally:
                self._requesters.discard(sender)
            if share is None:
                self.metrics.ignore("shares", "unknown-block")  # it may be ahead of us
                continue
            self.metrics.served.labels("shares").inc()
            self._post(sender, SHARES.encode(share))

    async def _own_share(self, request: ShareRequest) -> ShareBatch | None:
        """Our share batch for a block we committed (kept, or made again), else None."""
        kept = self._own.get(request.block_hash)
        if kept is not None:
            return kept
        commits = await trio.to_thread.run_sync(self.store.commits, request.height, 1)
        if not commits or commits[0].block_hash != request.block_hash:
            return None  # not committed here (yet): the requester will ask again
        try:
            return await trio.to_thread.run_sync(self._share_for_peer, commits[0])
        except NotCommitted:
            return None

    async def _recover_missing(self, shared: trio.MemorySendChannel[Shared]) -> None:
        """Heights committed before a crash (or by sync) whose batch was never stored."""
        for height in self.store.undecrypted_heights():
            for commit in self.store.commits(height, 1):
                self._latest = max(self._latest, height + BEHIND_BLOCKS)  # peers are past it
                await self._share(commit, shared)

    async def _share(self, commit: Commit, shared: trio.MemorySendChannel[Shared]) -> None:
        """Verify the commit, make and send our share batch (a worker thread's job unless
        small: hand-offs cost), and pass it on to be opened in turn."""
        committed_at = time.monotonic()
        try:
            cost_us = SHARE_US_PER_BYTE * len(commit.block.payload)
            batch, own = await run_sized(self._verify_and_share, commit, cost_us=cost_us)
        except NotCommitted as exc:
            log.error("committed block %d does not verify: %s", commit.block.height, exc)
            return
        if isinstance(own, ShareBatch):
            self._keep_own(own)
            self._broadcast(SHARES.encode(own))
            self._shares.setdefault(batch.batch_id, {})[own.node] = own
        await shared.send(Shared(batch, own, committed_at))

    async def _open_in_order(self, shared: trio.MemoryReceiveChannel[Shared]) -> None:
        """Open each shared block in height order, then hand the result on."""
        async for item in shared:
            batch = item.batch
            if isinstance(item.own, DecryptedBatch):
                result = item.own  # nothing to decrypt: stored already
            else:
                result = await self._decrypt(batch)
            took = time.monotonic() - item.committed_at
            for namespace in {tx.namespace for tx in result.txs}:
                self.metrics.labelled(self.metrics.commit_to_decrypt, namespace).observe(took)
            event(log, "decrypted", DEBUG, height=result.height, txs=len(result.txs),
                  ms=took * 1000)  # fmt: skip
            self._shares.pop(batch.batch_id, None)
            self._on_decrypted(result)

    def _verify_and_share(
        self, commit: Commit
    ) -> tuple[CommittedBatch, ShareBatch | DecryptedBatch]:
        """(worker thread) The committed batch and our shares, or, when nothing in it can
        be decrypted, its (stored) result."""
        batch = self._committed_batch(commit, self._decoded.pop(commit.block_hash, None))
        if not batch.decryptable:
            result = _assemble(batch, [], [])
            self.store.save_batch(result)
            return batch, result
        return batch, self.decryptor.share(batch)

    def _committed_batch(
        self, commit: Commit, decoded: Mapping[bytes, Ciphertext] | None = None
    ) -> CommittedBatch:
        """(worker thread) The block's ciphertexts, certificate checked (raises NotCommitted).

        A body whose digest (as the block's order names it) is in ``decoded`` is
        taken from there; the others are decoded and hashed from the bytes.
        """

        def ciphertexts(_: bytes) -> list[tuple[Ciphertext, bytes]]:
            payload = self._payload_of(commit)
            if not decoded or len(payload.order) != len(payload.txs):
                return [_decode_body(tx) for tx in payload.txs]
            return [
                (ct, digest) if (ct := decoded.get(digest)) is not None else _decode_body(tx)
                for tx, digest in zip(payload.txs, payload.order, strict=True)
            ]

        return CommittedBatch.from_commit(
            commit, self.validator, self._is_checked, read_payload=ciphertexts
        )

    def _share_for_peer(self, commit: Commit) -> ShareBatch | None:
        """(worker thread) Our share batch for a committed block; None if it has nothing to open."""
        batch = self._committed_batch(commit)
        return self.decryptor.share(batch) if batch.decryptable else None

    def _open_and_store(
        self, batch: CommittedBatch, shares: dict[int, ShareBatch]
    ) -> tuple[DecryptedBatch, list[int]]:
        """(worker thread) Combine, open and store; also who sent bad shares."""
        opening = self.decryptor.open(batch, shares)
        result = _assemble(batch, opening.plaintexts, opening.keys)
        self.store.save_batch(result)
        return result, opening.blamed

    async def _decrypt(self, batch: CommittedBatch) -> DecryptedBatch:
        """Combine ``t`` share batches; when they do not come, a peer's keys, then a request."""
        self._opening = batch.batch_id
        started, patience, warned = time.monotonic(), self._first_patience(batch), False
        while True:
            self._arrived = trio.Event()
            opened = await self._combine(batch)
            if opened is not None:
                return opened
            if await self._shares_arrived_within(patience):
                continue
            patience = KEYS_RETRY_S  # from now on: one peer fetch and one request per second
            from_peer = await self._open_from_peer(batch)
            if from_peer is not None:
                await trio.to_thread.run_sync(self.store.save_batch, from_peer)
                return from_peer
            self._request_shares(batch)
            if not warned and time.monotonic() - started > STUCK_LOG_S:
                warned = True
                held = sorted(self._shares.get(batch.batch_id, {}))
                event(log, "decryption-waiting", logging.WARNING, height=batch.height,
                      shares_from=held, need=self.decryptor.public.threshold)  # fmt: skip

    def _first_patience(self, batch: CommittedBatch) -> float:
        """How long to wait for live shares before asking peers (not at all when behind)."""
        return 0.0 if self._latest - batch.height >= BEHIND_BLOCKS else KEYS_RETRY_S

    async def _combine(self, batch: CommittedBatch) -> DecryptedBatch | None:
        """Open and store the batch if ``t`` usable share batches are here."""
        shares = dict(self._shares.get(batch.batch_id, {}))
        if len(shares) < self.decryptor.public.threshold:
            return None
        try:
            cost_us = OPEN_US * len(batch.decryptable)
            result, blamed = await run_sized(self._open_and_store, batch, shares, cost_us=cost_us)
        except NotEnoughShares as exc:
            self._blame(batch.batch_id, exc.blamed)
            return None  # bad shares among them: wait for more
        self._blame(batch.batch_id, blamed)
        return result

    def _blame(self, batch_id: bytes, senders: list[int]) -> None:
        """Count bad share batches per sender, once: theirs are dropped, not checked again."""
        held = self._shares.get(batch_id, {})
        for sender in senders:
            held.pop(sender, None)
            self.metrics.reject("shares", "bad-share")
            self.metrics.labelled(self.metrics.shares_invalid, str(sender)).inc()

    async def _shares_arrived_within(self, seconds: float) -> bool:
        with trio.move_on_after(seconds):
            await self._arrived.wait()
            return True
        return False

    def _keep_own(self, own: ShareBatch) -> None:
        self._own[own.batch_id] = own
        while len(self._own) > OWN_KEPT:
            self._own.popitem(last=False)

    def _request_shares(self, batch: CommittedBatch) -> None:
        """Ask every peer for its share batch of this committed block."""
        self._broadcast(SHARES.encode(ShareRequest(batch.height, batch.batch_id)))

    def _broadcast(self, data: bytes) -> None:
        for peer in self.peers:
            self._post(peer, data)

    async def _open_from_peer(self, batch: CommittedBatch) -> DecryptedBatch | None:
        """The batch opened with a peer's stored keys, when every key proves itself.

        A key is proved by its ciphertext's key check. A payload that opens to
        nothing has no such key (the peer's is ``x·u``, which matches no check),
        so such a batch is left to the shares: the caller requests them.
        """
        stored = await self._fetch_batch(batch.height)
        if stored is None or stored.block_hash != batch.batch_id:
            return None
        if len(stored.keys) != len(batch.valid):
            self.metrics.reject("sync", "wrong-keys")
            return None
        keys = [k for k, valid in zip(stored.keys, batch.valid, strict=True) if valid]
        public, chain_id = self.decryptor.public, self.decryptor.chain_id
        cts = batch.decryptable
        plaintexts = await trio.to_thread.run_sync(
            lambda: open_with_keys(public, chain_id, cts, keys)
        )
        if plaintexts is None:
            event(log, "peer-keys-unproved", DEBUG, height=batch.height)
            return None
        return _assemble(batch, plaintexts, keys)


@dataclass(frozen=True, slots=True)
class Shared:
    """A committed block whose share batch went out, waiting for its turn to be opened."""

    batch: CommittedBatch
    own: ShareBatch | DecryptedBatch  # a DecryptedBatch when it had nothing to decrypt
    committed_at: float


def _decode_body(body: bytes) -> tuple[Ciphertext, bytes]:
    """A block body as a ciphertext and its digest (raises DecodeError)."""
    return codec.decode(Ciphertext, body), kem.digest_of_encoding(body)


def _assemble(
    batch: CommittedBatch, plaintexts: Sequence[bytes | None], keys: Sequence[bytes | None]
) -> DecryptedBatch:
    """Put the opened plaintexts back at their positions among all ordered ciphertexts.

    ``K`` is kept for every checked ciphertext, also one whose payload did not
    open: a peer copying our keys must reach the same verdict, not take ours.
    """
    opened = iter(zip(plaintexts, keys, strict=True))
    txs, all_keys = [], []
    for ct, digest, valid in zip(batch.ciphertexts, batch.digests, batch.valid, strict=True):
        plaintext, key = next(opened) if valid else (None, None)
        txs.append(DecryptedTx(ct.namespace, digest, plaintext))
        all_keys.append(key or b"")
    return DecryptedBatch(batch.height, batch.batch_id, tuple(txs), tuple(all_keys))
