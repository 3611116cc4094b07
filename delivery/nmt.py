"""The namespaced Merkle tree over one batch's opened transactions, and its proofs.

Why: a rollup wants only its own namespace's transactions of a batch, and it
must be able to tell that a node gave it *all* of them, in consensus order, and
that an empty answer really means "none". Every node of this tree carries the
smallest and largest namespace below it, so a proof shows both what is in a
namespace's range of leaves and that nothing of that namespace lies outside it.

Theory of operation: the leaves are the batch's transactions sorted by
namespace (UTF-8 bytes; consensus order kept inside a namespace, see
:func:`tree_order`). The tree has the RFC 6962 shape: ``n > 1`` leaves split
into the first ``k`` (the largest power of two below ``n``) and the rest.

- leaf node: ``Node(ns, ns, SHA-256(0x00 || cbor(Leaf)))``
- inner node: ``Node(left.min, right.max, SHA-256(0x01 || cbor(left) || cbor(right)))``;
  the children must be in order (``left.max <= right.min``)
- root: ``SHA-256(0x02 || cbor([leaf_count, root Node / null]))``; this binds the
  root node's own min and max (otherwise inside no hash) and the leaf count

A :class:`RangeProof` for the leaves ``[start, end)`` lists, left to right, the
maximal subtrees entirely outside that range. The verifier knows ``leaf_count``
(from the signed header), so it knows the tree's shape: it walks it from the
root, takes each subtree entirely left of ``start`` or at/right of ``end`` from
the proof, recurses into subtrees that straddle a boundary, hashes the given
leaves, and compares the rebuilt root. An empty range (``start == end``) proves
absence the same way. The namespace's range is complete exactly when every
sibling left of it has ``max < namespace`` and every one right of it has
``min > namespace``. See ``docs/delivery.md``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated

from delivery.header import Unverified
from sequencer_net.base import codec
from sequencer_net.base.codec import Digest, IntRange, MaxItems, Size

MAX_NAMESPACE_CHARS = 64
MAX_LEAVES = 2**32  # BatchHeader.leaf_count's bound
MAX_PROOF_NODES = 64  # a tree of <= 2**32 leaves is <= 32 deep: <= 32 siblings on each side
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
ROOT_PREFIX = b"\x02"

Namespace = Annotated[str, Size(max=MAX_NAMESPACE_CHARS)]


@dataclass(frozen=True, slots=True)
class Leaf:
    """One opened transaction: its (public) namespace, its ciphertext digest, what it opened to.

    ``plaintext`` is None when the ciphertext opened to nothing (invalid): it is
    still a leaf, so a rollup sees every transaction ordered for it.
    """

    namespace: Namespace
    digest: Digest
    plaintext: bytes | None


@dataclass(frozen=True, slots=True)
class Node:
    """A subtree: the smallest and largest namespace below it, and its digest."""

    min_namespace: Namespace
    max_namespace: Namespace
    digest: Digest


@dataclass(frozen=True, slots=True)
class RangeProof:
    """Where a range of leaves starts, and the maximal subtrees outside it, left to right."""

    start: Annotated[int, IntRange(0, MAX_LEAVES)]
    siblings: Annotated[tuple[Node, ...], MaxItems(MAX_PROOF_NODES)]


def _key(namespace: str) -> bytes:
    """Namespaces compare by their UTF-8 bytes, everywhere."""
    return namespace.encode()


def leaf_node(leaf: Leaf) -> Node:
    """A leaf as a subtree: min = max = its namespace."""
    plain = {1: leaf.namespace, 2: leaf.digest, 3: leaf.plaintext}
    digest = hashlib.sha256(LEAF_PREFIX + codec.dumps_plain(plain)).digest()
    return Node(leaf.namespace, leaf.namespace, digest)


def _join(left: Node, right: Node) -> Node | None:
    """The parent of two adjacent subtrees, or None if they are out of namespace order."""
    if _key(left.max_namespace) > _key(right.min_namespace):
        return None
    digest = hashlib.sha256(NODE_PREFIX + _node_bytes(left) + _node_bytes(right)).digest()
    return Node(left.min_namespace, right.max_namespace, digest)


def _node_bytes(node: Node) -> bytes:
    """``codec.encode(node)``, built directly: a tree hashes two of these per inner node."""
    return codec.dumps_plain({1: node.min_namespace, 2: node.max_namespace, 3: node.digest})


def _parent(left: Node, right: Node) -> Node:
    """The parent of two adjacent subtrees of leaves already checked to be in tree order."""
    node = _join(left, right)
    if node is None:
        raise ValueError("leaves are not in tree order (sorted by namespace)")
    return node


def root_digest(root: Node | None, leaf_count: int) -> bytes:
    """``SHA-256(0x02 || cbor([leaf_count, root Node / null]))``."""
    plain = [leaf_count, None if root is None else codec.to_plain(root)]
    return hashlib.sha256(ROOT_PREFIX + codec.dumps_plain(plain)).digest()


EMPTY_ROOT = root_digest(None, 0)


def _split(n: int) -> int:
    """The size of the left subtree of ``n > 1`` leaves: the largest power of two below n."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_order(leaves: Iterable[Leaf]) -> list[Leaf]:
    """The leaves sorted by namespace (UTF-8 bytes), consensus order kept inside a namespace."""
    return sorted(leaves, key=lambda leaf: _key(leaf.namespace))  # sorted() is stable


def _check_order(leaves: Sequence[Leaf]) -> None:
    keys = [_key(leaf.namespace) for leaf in leaves]
    if any(b < a for a, b in itertools.pairwise(keys)):
        raise ValueError("leaves are not in tree order (sorted by namespace)")


def _subtree(leaves: Sequence[Leaf], lo: int, hi: int) -> Node:
    """The node over ``leaves[lo:hi]`` (already known to be in tree order)."""
    if hi - lo == 1:
        return leaf_node(leaves[lo])
    mid = lo + _split(hi - lo)
    return _parent(_subtree(leaves, lo, mid), _subtree(leaves, mid, hi))


def prove_range(leaves: Sequence[Leaf], start: int, end: int) -> tuple[bytes, RangeProof]:
    """The root of ``leaves`` (in tree order) and the proof for the range ``[start, end)``."""
    _check_order(leaves)
    if not 0 <= start <= end <= len(leaves):
        raise IndexError(f"range [{start}, {end}) outside {len(leaves)} leaves")
    siblings: list[Node] = []

    def walk(lo: int, hi: int) -> Node:
        if hi <= start or lo >= end:
            node = _subtree(leaves, lo, hi)
            siblings.append(node)
            return node
        if hi - lo == 1:
            return leaf_node(leaves[lo])
        mid = lo + _split(hi - lo)
        return _parent(walk(lo, mid), walk(mid, hi))

    root = walk(0, len(leaves)) if leaves else None
    return root_digest(root, len(leaves)), RangeProof(start, tuple(siblings))


def namespace_root(leaves: Sequence[Leaf]) -> bytes:
    """The root over ``leaves`` in tree order (ValueError if not); ``EMPTY_ROOT`` for none."""
    _check_order(leaves)
    return root_digest(_subtree(leaves, 0, len(leaves)) if leaves else None, len(leaves))


def namespace_range(leaves: Sequence[Leaf], namespace: str) -> tuple[int, int]:
    """``[start, end)``: where ``namespace``'s leaves are in tree order (start == end: none)."""
    _check_order(leaves)
    key = _key(namespace)
    start = sum(1 for leaf in leaves if _key(leaf.namespace) < key)
    end = start + sum(1 for leaf in leaves if leaf.namespace == namespace)
    return start, end


def prove_namespace(leaves: Sequence[Leaf], namespace: str) -> tuple[tuple[Leaf, ...], RangeProof]:
    """All of ``namespace``'s leaves (maybe none) and the proof that they are all of them."""
    start, end = namespace_range(leaves, namespace)
    _, proof = prove_range(leaves, start, end)
    return tuple(leaves[start:end]), proof


def prove_leaf(leaves: Sequence[Leaf], index: int) -> RangeProof:
    """Inclusion of ``leaves[index]`` (leaves in tree order)."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} outside {len(leaves)} leaves")
    _, proof = prove_range(leaves, index, index + 1)
    return proof


@dataclass(frozen=True, slots=True)
class _Rebuilt:
    root: bytes
    left: tuple[Node, ...]  # siblings left of the range
    right: tuple[Node, ...]  # siblings right of it


def _rebuild(leaf_count: int, leaves: Sequence[Leaf], proof: RangeProof) -> _Rebuilt:
    """Walk the tree of ``leaf_count`` leaves: the range's leaves, the proof's siblings."""
    start, end = proof.start, proof.start + len(leaves)
    if not 0 <= start <= end <= leaf_count:
        raise Unverified("bad-proof", f"range [{start}, {end}) outside {leaf_count} leaves")
    siblings: Iterator[Node] = iter(proof.siblings)
    left: list[Node] = []
    right: list[Node] = []

    def walk(lo: int, hi: int) -> Node:
        if hi <= start or lo >= end:
            node = next(siblings, None)
            if node is None:
                raise Unverified("bad-proof", "too few siblings")
            (left if hi <= start else right).append(node)
            return node
        if hi - lo == 1:
            return leaf_node(leaves[lo - start])
        mid = lo + _split(hi - lo)
        joined = _join(walk(lo, mid), walk(mid, hi))
        if joined is None:
            raise Unverified("bad-proof", "subtrees out of namespace order")
        return joined

    root = walk(0, leaf_count) if leaf_count else None
    if next(siblings, None) is not None:
        raise Unverified("bad-proof", "too many siblings")
    return _Rebuilt(root_digest(root, leaf_count), tuple(left), tuple(right))


def verify_namespace(
    root: bytes, leaf_count: int, namespace: str, leaves: Sequence[Leaf], proof: RangeProof
) -> None:
    """Raise :class:`Unverified` unless ``leaves`` are all of ``namespace``'s, in order.

    Reasons: ``wrong-namespace`` (a leaf of another namespace), ``bad-proof``
    (range out of bounds, wrong number of siblings, root mismatch) and
    ``incomplete`` (an authentic range with more of the namespace beside it).
    """
    for leaf in leaves:
        if leaf.namespace != namespace:
            raise Unverified("wrong-namespace", f"a leaf of {leaf.namespace!r}")
    rebuilt = _rebuild(leaf_count, leaves, proof)
    if rebuilt.root != root:
        raise Unverified("bad-proof", "root mismatch")
    key = _key(namespace)
    if any(_key(node.max_namespace) >= key for node in rebuilt.left):
        raise Unverified("incomplete", f"leaves of {namespace!r} left of the range")
    if any(_key(node.min_namespace) <= key for node in rebuilt.right):
        raise Unverified("incomplete", f"leaves of {namespace!r} right of the range")


def verify_leaf(root: bytes, leaf_count: int, leaf: Leaf, proof: RangeProof) -> None:
    """Raise :class:`Unverified` (``bad-proof``) unless ``leaf`` is leaf ``proof.start``."""
    if _rebuild(leaf_count, (leaf,), proof).root != root:
        raise Unverified("bad-proof", "root mismatch")
