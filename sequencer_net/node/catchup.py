"""Catching up from peers' stores: committed blocks, certificates and opened batches.

Theory of operation
-------------------
``/seqnet/sync/1`` is request/response: ``SyncRequest(from_height, limit)`` gets
the peer's committed blocks from that height with their certificates and, where
it has them, its decrypted batches (served from SQLite, so history older than
any in-memory window is available). Nothing in a response is trusted:
:func:`verified_prefix` checks that the blocks extend our tip one height at a
time, that each certificate is a valid quorum for its block, and keeps only
blocks *proved committed* — those below a pair of certified blocks in
consecutive rounds (the two-chain commit rule). A certified block that was
never committed cannot slip in. Batches are only used through their keys, each
checked against its ciphertext (``sequencer_net.node.decryption``). A batch
certificate that comes with a block is stored only if it is a valid quorum
(``verify_certificate``) over a header of that very block and height; it counts
here only once this node opened the block to the same header
(``sequencer_net.node.attestation``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import trio

from delivery.header import BatchCertificate, Unverified, verify_certificate
from ordering.blocktree import CommittedTip
from ordering.events import Commit
from ordering.messages import block_hash
from ordering.validation import Invalid, MessageValidator
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError
from sequencer_net.node.storage import Store
from sequencer_net.node.wire import (
    MAX_SYNC_BLOCKS,
    MAX_SYNC_RESPONSE_BYTES,
    SYNC,
    DecryptedBatch,
    SyncedBlock,
    SyncRequest,
    SyncResponse,
)

log = logging.getLogger("seqnet.sync")
ASK_TIMEOUT_S = 3.0
Request = Callable[[int, bytes], Awaitable[bytes | None]]  # (peer, request) -> response


class SyncServer:
    """Answers sync requests from this node's store."""

    def __init__(self, store: Store, on_served: Callable[[], None] = lambda: None) -> None:
        self.store, self._on_served = store, on_served

    async def answer(self, data: bytes) -> bytes | None:
        try:
            request = SYNC.decode(data, max_bytes=256)
        except DecodeError:
            return None
        if not isinstance(request, SyncRequest):
            return None
        blocks = await trio.to_thread.run_sync(self._read, request)
        self._on_served()
        return SYNC.encode(SyncResponse(tuple(blocks)))

    def _read(self, request: SyncRequest) -> list[SyncedBlock]:
        """Up to ``limit + 1`` blocks (one more proves the last commit), within a byte budget."""
        commits = self.store.commits(request.from_height, request.limit + 1)
        batches = {b.height: b for b in self.store.batches(request.from_height, len(commits))}
        certs = {
            c.header.height: c
            for c in self.store.batch_certificates(request.from_height, len(commits))
        }
        out: list[SyncedBlock] = []
        size = 0
        for c in commits:
            height = c.block.height
            item = SyncedBlock(c.block, c.certificate, batches.get(height), certs.get(height))
            size += len(codec.encode(item))
            if out and size > MAX_SYNC_RESPONSE_BYTES:
                break
            out.append(item)
        return out


def verified_prefix(
    validator: MessageValidator, tip: CommittedTip, blocks: Sequence[SyncedBlock]
) -> list[SyncedBlock]:
    """The longest prefix of ``blocks`` that extends ``tip`` and is proved committed."""
    chain: list[SyncedBlock] = []
    parent = tip.block_hash
    for item in blocks:
        digest = block_hash(item.block)
        if (
            item.block.height != tip.height + len(chain) + 1
            or item.block.parent_qc.block_hash != parent
            or item.certificate.block_hash != digest
        ):
            break
        try:
            validator.check_qc(item.certificate)
        except Invalid:
            break
        chain.append(item)
        parent = digest
    proved = 0
    for j in range(len(chain) - 1):
        if chain[j + 1].block.round == chain[j].block.round + 1:
            proved = j + 1  # chain[j] has a certified child in the next round: committed
    return chain[:proved]


class CatchUp:
    """Fetches what peers committed beyond our tip into our store."""

    def __init__(
        self,
        validator: MessageValidator,
        store: Store,
        peers: list[int],
        request: Request,
        on_commit: Callable[[Commit], None] = lambda commit: None,
        ordered: Callable[[Commit], Sequence[bytes]] = lambda commit: (),
    ) -> None:
        self.validator, self.store, self.peers, self._request = validator, store, peers, request
        self._on_commit, self._ordered = on_commit, ordered
        self.batches: dict[int, DecryptedBatch] = {}  # peers' opened batches, for their keys
        self.certified_round = 0  # highest round seen certified in what was taken
        self.rejected = 0
        self._turn = 0

    async def run(self) -> int:
        """Fetch until no peer has more; the number of blocks added.

        Each step asks every peer at once (a peer that is down costs one connect
        timeout, not one per peer in turn) and applies the longest verified answer.
        """
        added = 0
        while best := await self._proved_above_tip(MAX_SYNC_BLOCKS):
            await self._apply(best)
            added += len(best)
        if added:
            log.info("caught up %d blocks; tip %d", added, self.store.committed_tip().height)
        return added

    async def peers_ahead(self) -> bool:
        """Whether some peer proves a commit above our tip (without taking anything)."""
        return bool(await self._proved_above_tip(2))

    async def _proved_above_tip(self, limit: int) -> list[SyncedBlock]:
        """Ask every peer at once for blocks above our tip; the longest proved answer."""
        tip = self.store.committed_tip()
        answers: list[list[SyncedBlock]] = []

        async def collect(peer: int) -> None:
            blocks = await self._ask(peer, tip.height + 1, limit)
            if blocks:
                answers.append(blocks)

        async with trio.open_nursery() as nursery:
            for peer in self.peers:
                nursery.start_soon(collect, peer)
        proved = (verified_prefix(self.validator, tip, blocks) for blocks in answers)
        return max(proved, key=len, default=[])

    async def _apply(self, blocks: list[SyncedBlock]) -> None:
        for item in blocks:
            commit = Commit(item.block, block_hash(item.block), item.certificate)
            ordered = self._ordered(commit)
            await trio.to_thread.run_sync(self._store, commit, ordered, item.batch_certificate)
            if item.batch is not None:
                self.batches[item.block.height] = item.batch
            # proved committed: its child, certified too, is in the next round
            self.certified_round = max(self.certified_round, item.block.round + 1)
            self._on_commit(commit)

    def _store(
        self, commit: Commit, ordered: Sequence[bytes], cert: BatchCertificate | None
    ) -> None:
        """(worker thread) The committed block, and its batch certificate if it holds."""
        self.store.append_commit(commit, ordered)
        if cert is None or self.store.certificate_on_file(commit.block.height) is not None:
            return
        header = cert.header
        if header.height != commit.block.height or header.block_hash != commit.block_hash:
            self.rejected += 1
            return
        try:
            verify_certificate(self.validator.committee, cert)
        except Unverified:
            self.rejected += 1
            return
        self.store.save_batch_certificate(cert)

    async def batch_from_peers(self, height: int) -> DecryptedBatch | None:
        """Some peer's opened batch for ``height`` (to be checked by the caller)."""
        held = self.batches.pop(height, None)
        if held is not None:
            return held
        self._turn += 1  # start with another peer each time: one liar cannot stall us
        for k in range(len(self.peers)):
            peer = self.peers[(self._turn + k) % len(self.peers)]
            blocks = await self._ask(peer, height, 1)
            if blocks and blocks[0].batch is not None and blocks[0].block.height == height:
                return blocks[0].batch
        return None

    async def _ask(self, peer: int, from_height: int, limit: int) -> list[SyncedBlock] | None:
        answer = None
        with trio.move_on_after(ASK_TIMEOUT_S):
            answer = await self._request(peer, SYNC.encode(SyncRequest(from_height, limit)))
        if answer is None:
            return None
        try:
            response = SYNC.decode(answer)
        except DecodeError:
            self.rejected += 1
            return None
        if not isinstance(response, SyncResponse):
            return None
        return list(response.blocks)
