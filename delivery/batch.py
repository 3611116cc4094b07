"""A certified namespace batch: what a node serves a rollup, and what the rollup checks.

Why: a rollup should trust no single node. What it gets for one height is the
quorum certificate over that height's :class:`~delivery.header.BatchHeader`
and its namespace's leaves with a range proof against the header's
``namespace_root``; from the committee alone (the genesis) it can then tell
that these are exactly all of its namespace's transactions of that batch, in
consensus order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from delivery.header import (
    BatchCertificate,
    BatchHeader,
    Unverified,
    batch_hash,
    verify_certificate,
)
from delivery.nmt import Leaf, Namespace, RangeProof, namespace_range, prove_range, verify_namespace
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError, MaxItems
from sequencer_net.base.committee import Committee

MAX_NAMESPACE_LEAVES = 16_384  # a block orders at most this many transactions


@dataclass(frozen=True, slots=True)
class NamespaceBatch:
    """One namespace's slice of one certified batch, with its proof (wire form)."""

    certificate: BatchCertificate
    namespace: Namespace
    leaves: Annotated[tuple[Leaf, ...], MaxItems(MAX_NAMESPACE_LEAVES)]
    proof: RangeProof


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    """A namespace batch that :func:`verify_namespace_batch` accepted (not a wire type)."""

    height: int
    namespace: str
    batch_hash: bytes
    header: BatchHeader
    leaves: tuple[Leaf, ...]


def build_namespace_batch(
    cert: BatchCertificate, leaves_in_tree_order: Sequence[Leaf], namespace: str
) -> NamespaceBatch:
    """``namespace``'s slice of the batch ``cert`` certifies.

    Raises ValueError if the leaves are not in tree order or are not the tree
    the certified header commits to (root and leaf count).
    """
    header = cert.header
    if len(leaves_in_tree_order) != header.leaf_count:
        raise ValueError(f"{len(leaves_in_tree_order)} leaves, header says {header.leaf_count}")
    start, end = namespace_range(leaves_in_tree_order, namespace)
    root, proof = prove_range(leaves_in_tree_order, start, end)
    if root != header.namespace_root:
        raise ValueError("leaves do not match the certified namespace_root")
    return NamespaceBatch(cert, namespace, tuple(leaves_in_tree_order[start:end]), proof)


def verify_namespace_batch(
    committee: Committee, batch: NamespaceBatch, namespace: str, height: int | None = None
) -> VerifiedBatch:
    """Raise :class:`Unverified` unless ``batch`` is all of ``namespace`` in a certified batch.

    Checks, in order: the certificate (``wrong-chain``, ``bad-certificate``,
    ``short-certificate``), the namespace asked for (``wrong-namespace``), the
    height if given (``wrong-height``), then the proof against the header's
    ``namespace_root`` and ``leaf_count`` (``wrong-namespace``, ``bad-proof``,
    ``incomplete``).
    """
    verify_certificate(committee, batch.certificate)
    header = batch.certificate.header
    if batch.namespace != namespace:
        raise Unverified("wrong-namespace", f"batch for {batch.namespace!r}")
    if height is not None and header.height != height:
        raise Unverified("wrong-height", f"height {header.height}, asked for {height}")
    verify_namespace(header.namespace_root, header.leaf_count, namespace, batch.leaves, batch.proof)
    return VerifiedBatch(header.height, namespace, batch_hash(header), header, batch.leaves)


def decode_namespace_batch(data: bytes) -> NamespaceBatch:
    """Strictly decode canonical CBOR; raise :class:`Unverified` (``decode``) on anything else."""
    try:
        return codec.decode(NamespaceBatch, data)
    except DecodeError as exc:
        raise Unverified("decode", str(exc)) from None
