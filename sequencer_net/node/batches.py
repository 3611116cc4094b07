"""A decrypted batch as rollup delivery sees it: its leaves, its header, a namespace's slice.

The opened batch of a committed block (:class:`~sequencer_net.node.wire.DecryptedBatch`)
becomes one leaf per ordered transaction — namespace, digest, plaintext (None
where it opened to nothing) — in tree order (``delivery.nmt.tree_order``: by
namespace, block order within one). The header validators sign commits to those
leaves through their namespace root; a rollup's slice of a certified height is
built from the certificate and the same leaves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import trio

from delivery.batch import NamespaceBatch, build_namespace_batch
from delivery.header import BatchCertificate, BatchHeader
from delivery.nmt import Leaf, namespace_root, tree_order
from sequencer_net.base import codec
from sequencer_net.node.storage import Store
from sequencer_net.node.wire import DecryptedBatch

CACHED_HEIGHTS = 64  # recent heights' trees, shared by every reader
CACHED_BATCHES = 256  # recent (height, namespace) batches, proved and encoded


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


class CertifiedBatches:
    """Namespace batches of certified heights, built off the event loop and cached.

    Every subscriber of a namespace reads the same recent heights, so each
    (height, namespace) batch is proved and encoded once, in a worker thread
    (a proof over a large batch takes a good fraction of a second), and the
    tree of a height (its leaves in tree order) is shared by its namespaces.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._trees: OrderedDict[int, tuple[BatchCertificate, list[Leaf]]] = OrderedDict()
        self._served: OrderedDict[tuple[int, str], tuple[NamespaceBatch, bytes]] = OrderedDict()
        self._lock = threading.Lock()  # the caches are shared by worker threads

    async def get(self, height: int, namespace: str) -> tuple[NamespaceBatch, bytes] | None:
        """The namespace's batch at ``height`` and its bytes; None until it is certified."""
        with self._lock:
            found = self._served.get((height, namespace))
        if found is None:
            found = await trio.to_thread.run_sync(self._build, height, namespace)
        return found

    def _build(self, height: int, namespace: str) -> tuple[NamespaceBatch, bytes] | None:
        tree = self.tree(height)
        if tree is None:
            return None
        batch = build_namespace_batch(tree[0], tree[1], namespace)
        found = batch, codec.encode(batch)
        with self._lock:
            remember(self._served, (height, namespace), found, CACHED_BATCHES)
        return found

    def tree(self, height: int) -> tuple[BatchCertificate, list[Leaf]] | None:
        with self._lock:
            tree = self._trees.get(height)
        if tree is not None:
            return tree
        tree = certified_leaves(self._store, height)
        if tree is None:
            return None
        with self._lock:
            remember(self._trees, height, tree, CACHED_HEIGHTS)
        return tree


def remember(cache: OrderedDict[Any, Any], key: Any, value: Any, size: int) -> None:
    """Put ``key`` in a cache kept to its ``size`` newest entries."""
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)
