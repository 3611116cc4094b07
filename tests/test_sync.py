"""Block requests are answered from memory, then from the committed store."""

from __future__ import annotations

from ordering.blocktree import BlockTree, CommittedTip
from ordering.messages import BlockRequest, block_hash
from ordering.sync import serve
from tests.factory import Net


def test_a_restarted_tree_serves_committed_blocks_from_the_store() -> None:
    net = Net()
    chain, parent = [], net.genesis_qc
    for r in range(1, 7):
        block = net.block(r, parent)
        chain.append(block)
        parent = net.qc(block)
    store = {block_hash(b): b for b in chain[:4]}  # heights 1-4 committed on disk
    tip = CommittedTip(block_hash(chain[3]), 4, 4)
    tree = BlockTree(net.chain_id, tip)  # after a restart: only what is above the tip
    for b in chain[4:]:
        tree.insert(block_hash(b), b)
    request = BlockRequest(block_hash(chain[5]), 10)
    assert serve(tree, request) is not None
    assert [b.height for b in serve(tree, request).blocks] == [6, 5]  # type: ignore[union-attr]
    answer = serve(tree, request, store.get)
    assert answer is not None and [b.height for b in answer.blocks] == [6, 5, 4, 3, 2, 1]
    only_disk = serve(tree, BlockRequest(block_hash(chain[2]), 2), store.get)
    assert only_disk is not None and [b.height for b in only_disk.blocks] == [3, 2]
    assert serve(tree, BlockRequest(bytes(32), 5), store.get) is None
