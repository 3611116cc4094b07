"""A decrypted batch as rollup delivery sees it: its leaves, its header, a namespace's slice.

The opened batch of a committed block (:class:`~sequencer_net.node.wire.DecryptedBatch`)
becomes one leaf per ordered transaction — namespace, digest, plaintext (None
where it opened to nothing) — in tree order (``delivery.nmt.tree_order``: by
namespace, block order within one). The header validators sign commits to those
leaves through their namespace root; a rollup's slice of a certified height is
built from the certificate and the same leaves.
"""

from __future__ import annotations

from delivery.batch import NamespaceBatch, build_namespace_batch
from delivery.header import BatchCertificate, BatchHeader
from delivery.nmt import Leaf, namespace_root, tree_order
from sequencer_net.node.storage import Store
from sequencer_net.node.wire import DecryptedBatch


def leaves_of(batch: DecryptedBatch) -> list[Leaf]:
    """One leaf per ordered transaction, in tree order."""
    return tree_order(
        Leaf(namespace=tx.namespace, digest=tx.digest, plaintext=tx.plaintext) for tx in batch.txs
    )


def header_of(chain_id: str, batch: DecryptedBatch, parent_batch_hash: bytes) -> BatchHeader:
    """The header of an opened batch, naming the batch before it."""
    leaves = leaves_of(batch)
    return BatchHeader(
        chain_id=chain_id,
        height=batch.height,
        block_hash=batch.block_hash,
        namespace_root=namespace_root(leaves),
        leaf_count=len(leaves),
        parent_batch_hash=parent_batch_hash,
    )


def certified_leaves(store: Store, height: int) -> tuple[BatchCertificate, list[Leaf]] | None:
    """The certificate of ``height`` and its leaves in tree order; None until it is certified."""
    cert = store.batch_certificate(height)
    batch = store.batch(height) if cert is not None else None
    if cert is None or batch is None:
        return None
    return cert, leaves_of(batch)


def namespace_batch(store: Store, height: int, namespace: str) -> NamespaceBatch | None:
    """A namespace's certified slice of ``height``; None until that height is certified here."""
    found = certified_leaves(store, height)
    return None if found is None else build_namespace_batch(*found, namespace)
