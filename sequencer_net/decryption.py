"""After commit: make shares, collect ``t`` share batches, open the batch, store it.

Theory of operation
-------------------
Committed blocks arrive in height order. For each, the service rebuilds the
batch through ``CommittedBatch.from_commit`` (which re-checks the certificate:
nothing uncommitted can reach the share code), makes this validator's share
batch in a worker thread and sends it to every peer — one message per block per
peer. Share batches from peers are kept by block hash (at most one per sender
and block, only for a bounded window of blocks). With ``t`` of them the batch is
opened (optimistic combine; proofs checked only if a key check fails) and the
``DecryptedBatch`` stored. Blocks without transactions need no shares.

A node that restarts or syncs finds committed heights with no stored batch, and
a node that fell behind commits blocks whose shares went out long ago; it opens
them with the keys a peer stored for the same height (each key checked against
its ciphertext, so a lying peer is caught and another one is asked).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
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
from sequencer_net import codec
from sequencer_net.codec import DecodeError
from sequencer_net.logs import event
from sequencer_net.metrics import NodeMetrics
from sequencer_net.storage import Store
from sequencer_net.wire import SHARES, DecryptedBatch, DecryptedTx

log = logging.getLogger("seqnet.decrypt")
EARLY_WINDOW = 64  # blocks whose shares we keep before we have committed them
KEYS_RETRY_S = 1.0  # wait for shares this long, then ask peers for their stored keys
BEHIND_BLOCKS = 3  # this many newer commits queued: peers are past this height, ask at once

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
        is_checked: Callable[[Ciphertext], bool],
        on_decrypted: Callable[[DecryptedBatch], None],
        payload_of: Callable[[Commit], FairPayload] = lambda c: read_payload(c.block.payload),
    ) -> None:
        self._payload_of = payload_of
        self.decryptor, self.validator, self.store = decryptor, validator, store
        self.peers, self._post, self._fetch_batch = peers, post, fetch_batch
        self.metrics, self._is_checked, self._on_decrypted = metrics, is_checked, on_decrypted
        # unbounded: a catch-up may queue thousands of commits at once (small objects)
        self._commits_in, self._commits = trio.open_memory_channel[Commit](math.inf)
        self._shares: OrderedDict[bytes, dict[int, ShareBatch]] = OrderedDict()
        self._arrived = trio.Event()
        self._latest = 0  # highest height committed

    # ------------------------------------------------------------ inputs

    def on_commit(self, commit: Commit) -> None:
        """Queue a committed block (called right after it is stored)."""
        self._latest = max(self._latest, commit.block.height)
        self._commits_in.send_nowait(commit)

    def on_frame(self, sender: int, data: bytes) -> None:
        """A peer's share batch: keep one per sender and block, for a bounded window."""
        try:
            batch = SHARES.decode(data)
        except DecodeError:
            self.metrics.rejected.labels("shares", "decode").inc()
            return
        if not isinstance(batch, ShareBatch) or batch.node != sender:
            self.metrics.rejected.labels("shares", "wrong-sender").inc()
            return
        held = self._shares.setdefault(batch.batch_id, {})
        held.setdefault(sender, batch)
        while len(self._shares) > EARLY_WINDOW:
            self._shares.popitem(last=False)
        self._arrived.set()

    # ------------------------------------------------------------ the worker

    async def run(self) -> None:
        """Open every committed batch, in height order, forever."""
        await self._recover_missing()
        async for commit in self._commits:
            if self.store.batch(commit.block.height) is None:
                await self._open(commit)

    async def _recover_missing(self) -> None:
        """Heights committed before a crash (or by sync) whose batch was never stored."""
        for height in self.store.undecrypted_heights():
            for commit in self.store.commits(height, 1):
                self._latest = max(self._latest, height + BEHIND_BLOCKS)  # peers are past it
                await self._open(commit)

    async def _open(self, commit: Commit) -> None:
        """One worker-thread trip to verify and share, one to open and store (hand-offs cost)."""
        committed_at = time.monotonic()
        try:
            batch, shared = await trio.to_thread.run_sync(self._verify_and_share, commit)
        except NotCommitted as exc:
            log.error("committed block %d does not verify: %s", commit.block.height, exc)
            return
        if isinstance(shared, DecryptedBatch):
            result = shared  # nothing to decrypt: stored already
        else:
            result = await self._decrypt(batch, shared)
        took = time.monotonic() - committed_at
        self.metrics.commit_to_decrypt.observe(took)
        event(log, "decrypted", DEBUG, height=result.height, txs=len(result.txs), ms=took * 1000)
        self._shares.pop(batch.batch_id, None)
        self._on_decrypted(result)

    def _verify_and_share(
        self, commit: Commit
    ) -> tuple[CommittedBatch, ShareBatch | DecryptedBatch]:
        """(worker thread) The committed batch and our shares, or, when nothing in it can
        be decrypted, its (stored) result."""

        def ciphertexts(_: bytes) -> list[Ciphertext]:
            return [codec.decode(Ciphertext, tx) for tx in self._payload_of(commit).txs]

        batch = CommittedBatch.from_commit(
            commit, self.validator, self._is_checked, read_payload=ciphertexts
        )
        if not batch.decryptable:
            result = _assemble(batch, [], [])
            self.store.save_batch(result)
            return batch, result
        return batch, self.decryptor.share(batch)

    def _open_and_store(
        self, batch: CommittedBatch, shares: dict[int, ShareBatch]
    ) -> tuple[DecryptedBatch, list[int]]:
        """(worker thread) Combine, open and store; also who sent bad shares."""
        opening = self.decryptor.open(batch, shares)
        result = _assemble(batch, opening.plaintexts, opening.keys)
        self.store.save_batch(result)
        return result, opening.blamed

    async def _decrypt(self, batch: CommittedBatch, own: ShareBatch) -> DecryptedBatch:
        data = SHARES.encode(own)
        for peer in self.peers:
            self._post(peer, data)
        self._shares.setdefault(batch.batch_id, {})[own.node] = own
        while True:
            self._arrived = trio.Event()
            shares = dict(self._shares.get(batch.batch_id, {}))
            if len(shares) >= self.decryptor.public.threshold:
                try:
                    result, blamed = await trio.to_thread.run_sync(
                        self._open_and_store, batch, shares
                    )
                except NotEnoughShares:
                    pass  # bad shares among them: wait for more
                else:
                    if blamed:
                        self.metrics.rejected.labels("shares", "bad-share").inc(len(blamed))
                    return result
            from_peer = await self._wait_or_fetch(batch)
            if from_peer is not None:
                await trio.to_thread.run_sync(self.store.save_batch, from_peer)
                return from_peer

    async def _wait_or_fetch(self, batch: CommittedBatch) -> DecryptedBatch | None:
        """Wait for more shares; after a while (at once if behind), try a peer's stored keys."""
        behind = self._latest - batch.height >= BEHIND_BLOCKS
        with trio.move_on_after(0 if behind else KEYS_RETRY_S):
            await self._arrived.wait()
            return None
        return await self._open_from_peer(batch)

    async def _open_from_peer(self, batch: CommittedBatch) -> DecryptedBatch | None:
        stored = await self._fetch_batch(batch.height)
        if stored is None or stored.block_hash != batch.batch_id:
            return None
        if len(stored.keys) != len(batch.valid):
            self.metrics.rejected.labels("sync", "wrong-keys").inc()
            return None
        keys = [k for k, valid in zip(stored.keys, batch.valid, strict=True) if valid]
        chain_id = self.validator.committee.chain_id
        cts = batch.decryptable
        plaintexts = await trio.to_thread.run_sync(lambda: open_with_keys(chain_id, cts, keys))
        if plaintexts is None:  # some key does not match its ciphertext: the peer lied
            self.metrics.rejected.labels("sync", "wrong-keys").inc()
            return None
        return _assemble(batch, plaintexts, keys)


def _assemble(
    batch: CommittedBatch, plaintexts: Sequence[bytes | None], keys: Sequence[bytes | None]
) -> DecryptedBatch:
    """Put the opened plaintexts back at their positions among all ordered ciphertexts.

    ``K`` is kept for every checked ciphertext, also one whose payload did not
    open: a peer copying our keys must reach the same verdict, not take ours.
    """
    opened = iter(zip(plaintexts, keys, strict=True))
    txs, all_keys = [], []
    for ct, valid in zip(batch.ciphertexts, batch.valid, strict=True):
        plaintext, key = next(opened) if valid else (None, None)
        txs.append(DecryptedTx(ct.namespace, kem.digest(ct), plaintext))
        all_keys.append(key or b"")
    return DecryptedBatch(batch.height, batch.batch_id, tuple(txs), tuple(all_keys))
