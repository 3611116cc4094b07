"""Fetching missing blocks: what we asked for, whom to ask next, what to accept.

Theory of operation: a block is wanted once a verified certificate or proposal
names a hash we lack. We ask one peer per round for it (and up to 63 of its
ancestors); on each timer expiry we ask the next peer in turn. A response is
accepted only if its first block hashes to a wanted digest and each later block
is the parent of the one before — hashes alone make them authentic, so nothing
in a response needs a signature check. Answering others is a lookup in the tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ordering.blocktree import BlockLookup, BlockTree
from ordering.messages import MAX_SYNC_BLOCKS, BlockRequest, BlockResponse, block_hash


@dataclass
class BlockFetcher:
    me: int
    n: int
    wanted: dict[bytes, int] = field(default_factory=dict)  # hash -> round last requested

    def __post_init__(self) -> None:
        self._peer = self.me  # the first peer asked is the one after us

    def request(
        self, tree: BlockTree, digest: bytes, peer: int, round_: int
    ) -> tuple[int, BlockRequest] | None:
        """``(peer, request)`` for the lowest missing block under ``digest``, once per round."""
        missing = tree.first_missing(digest)
        if missing is None or self.wanted.get(missing) == round_:
            return None
        self.wanted[missing] = round_
        return (self.next_peer() if peer == self.me else peer), BlockRequest(
            missing, MAX_SYNC_BLOCKS
        )

    def next_peer(self) -> int:
        """Peers in turn, never ourselves."""
        self._peer = (self._peer + 1) % self.n
        if self._peer == self.me:
            self._peer = (self._peer + 1) % self.n
        return self._peer

    def accept(self, tree: BlockTree, response: BlockResponse) -> tuple[str, bytes | None]:
        """Insert an authentic chain of blocks; (verdict, parent hash still missing).

        The verdict is ``"accepted"``; ``"unrequested"`` when the first block is
        not one we want (a late answer: an honest peer may send it); or
        ``"broken-chain"`` when a block is not its successor's parent (no honest
        peer sends that). Blocks before the break are kept: their hashes prove them.
        """
        if response.blocks and block_hash(response.blocks[0]) in tree:
            return "accepted", None  # a duplicate answer: the blocks arrived by another way
        expected: bytes | None = None
        for block in response.blocks:
            digest = block_hash(block)
            if expected is None and digest not in self.wanted:
                return "unrequested", None
            if expected is not None and digest != expected:
                return "broken-chain", None
            if block.height != block.parent_qc.height + 1:
                return "broken-chain", None
            self.wanted.pop(digest, None)
            tree.insert(digest, block)
            expected = block.parent_qc.block_hash
        return "accepted", (expected if expected is not None and expected not in tree else None)

    def forget_known(self, tree: BlockTree) -> None:
        self.wanted = {d: r for d, r in self.wanted.items() if d not in tree}


def serve(
    tree: BlockTree, request: BlockRequest, committed: BlockLookup | None = None
) -> BlockResponse | None:
    """The requested block and its known ancestors, newest first.

    ``committed`` finds committed blocks the tree no longer holds (the driver's
    store): after a restart, or past the tree's retention, a peer can still be
    given the blocks it lacks.
    """
    blocks = tree.ancestors(request.block_hash, request.max_blocks)
    if committed is not None and len(blocks) < request.max_blocks:
        digest = blocks[-1].parent_qc.block_hash if blocks else request.block_hash
        while len(blocks) < request.max_blocks and (block := committed(digest)) is not None:
            blocks.append(block)
            digest = block.parent_qc.block_hash
    return BlockResponse(tuple(blocks)) if blocks else None
