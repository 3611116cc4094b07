"""The tree of known blocks above the last committed one, and the committed chain.

Theory of operation: blocks enter only when they are authentic — a verified
proposal, or a sync response whose first block is named by a certificate we hold
and whose later blocks follow parent links. Committing walks from a certified
block down to the committed tip; if a block on the way is missing, the tree says
which hash to fetch. Committed blocks stay for ``retention`` heights so peers
can sync from us; forks below the committed height are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ordering.messages import Block, genesis_hash

BlockLookup = Callable[[bytes], Block | None]  # a block by hash, or None


@dataclass(frozen=True, slots=True)
class CommittedTip:
    """The last committed block: its hash, height and round."""

    block_hash: bytes
    height: int
    round: int


RETENTION = 1024  # committed blocks kept in memory to serve peers' block requests


class BlockTree:
    """Known blocks by hash, with the committed chain indexed by height."""

    def __init__(self, chain_id: str, tip: CommittedTip | None = None, retention: int = RETENTION):
        genesis = CommittedTip(genesis_hash(chain_id), 0, 0)
        self.tip = tip or genesis
        self.retention = retention
        self._blocks: dict[bytes, Block] = {}
        self._by_height: dict[int, list[bytes]] = {}
        self._clean_height = self.tip.height  # forks at or below are pruned
        self._floor = 0  # committed blocks below are pruned
        self._committed: dict[int, bytes] = {genesis.height: genesis.block_hash}
        self._committed[self.tip.height] = self.tip.block_hash

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._blocks or digest == self.tip.block_hash

    def get(self, digest: bytes) -> Block | None:
        return self._blocks.get(digest)

    def insert(self, digest: bytes, block: Block) -> bool:
        """Add an authentic block; False if it is already decided or known."""
        if block.height <= self.tip.height or digest in self._blocks:
            return False
        self._blocks[digest] = block
        self._by_height.setdefault(block.height, []).append(digest)
        return True

    def is_connected(self, digest: bytes) -> bool:
        """True when every block from ``digest`` down to the committed tip is known."""
        return self.path_to_commit(digest) is not None

    def first_missing(self, digest: bytes) -> bytes | None:
        """The lowest unknown hash on the way from ``digest`` to the committed tip."""
        while digest != self.tip.block_hash:
            block = self._blocks.get(digest)
            if block is None:
                return digest
            if block.height <= self.tip.height + 1:
                return None  # at the tip, or a fork of the committed chain
            digest = block.parent_qc.block_hash
        return None

    def path_to_commit(self, digest: bytes) -> list[tuple[bytes, Block]] | None:
        """Blocks from just above the tip up to ``digest``, or None if not connected."""
        path: list[tuple[bytes, Block]] = []
        while digest != self.tip.block_hash:
            block = self._blocks.get(digest)
            if block is None or block.height <= self.tip.height:
                return None
            path.append((digest, block))
            digest = block.parent_qc.block_hash
        path.reverse()
        return path

    def mark_committed(self, digest: bytes, block: Block) -> None:
        """Advance the committed tip to ``digest`` (its ancestors already are)."""
        self.tip = CommittedTip(digest, block.height, block.round)
        self._committed[block.height] = digest
        self._prune()

    def _prune(self) -> None:
        """Drop forks at or below the tip, and committed blocks past retention."""
        for height in range(self._clean_height + 1, self.tip.height + 1):
            committed = self._committed.get(height)
            for digest in self._by_height.pop(height, []):
                if digest == committed:
                    self._by_height[height] = [digest]
                else:
                    del self._blocks[digest]
        self._clean_height = self.tip.height
        for height in range(self._floor, self.tip.height - self.retention):
            for digest in self._by_height.pop(height, []):
                del self._blocks[digest]
        self._floor = max(self._floor, self.tip.height - self.retention)

    def ancestors(self, digest: bytes, limit: int) -> list[Block]:
        """``digest`` and its known ancestors, newest first, at most ``limit`` blocks."""
        out: list[Block] = []
        block = self._blocks.get(digest)
        while block is not None and len(out) < limit:
            out.append(block)
            block = self._blocks.get(block.parent_qc.block_hash)
        return out
