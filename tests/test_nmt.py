"""The namespaced Merkle tree: every namespace proves complete or absent, and every lie fails.

The property tests draw leaf lists over a few namespaces (invalid leaves and
the empty tree included) and check every namespace present and some absent
ones, and every leaf. The tamper tests take one fixed tree and each lie a node
could tell, and name the reason the verifier must give.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.header import Unverified
from delivery.nmt import (
    EMPTY_ROOT,
    Leaf,
    Node,
    RangeProof,
    _node_bytes,
    leaf_node,
    namespace_range,
    namespace_root,
    prove_leaf,
    prove_namespace,
    prove_range,
    root_digest,
    tree_order,
    verify_leaf,
    verify_namespace,
)
from sequencer_net.base import codec

# In UTF-8 byte order (the tree's), U+FFFF < U+1F600; in UTF-16 order it would be the reverse.
PRESENT = ("a", "ab", "b", "rollup-a", "é", "\uffff", "\U0001f600")
EMPTY_ROOT_HEX = "8e0279e0c51e0c5af63ffaa4d3fd78e8aaf612e76fc8f5e39c84854c159befd4"
ABSENT = ("", "0", "aa", "b0", "rollup", "rollup-b", "zz", "\U0010ffff")


def make_leaves(spec: list[tuple[str, bytes | None]]) -> list[Leaf]:
    """Leaves in consensus order, each with its own digest."""
    return [
        Leaf(ns, hashlib.sha256(i.to_bytes(4, "big")).digest(), pt)
        for i, (ns, pt) in enumerate(spec)
    ]


leaf_specs = st.lists(
    st.tuples(st.sampled_from(PRESENT), st.none() | st.binary(max_size=6)), max_size=20
)


def reason(exc: pytest.ExceptionInfo[Unverified]) -> str:
    return exc.value.reason


@settings(max_examples=150, deadline=None)
@given(leaf_specs)
def test_every_namespace_proves_exactly_its_leaves_in_consensus_order(
    spec: list[tuple[str, bytes | None]],
) -> None:
    consensus = make_leaves(spec)
    leaves = tree_order(consensus)
    root = namespace_root(leaves)
    proofs = {}
    for ns in PRESENT + ABSENT:
        got, proof = prove_namespace(leaves, ns)
        assert got == tuple(leaf for leaf in consensus if leaf.namespace == ns)
        verify_namespace(root, len(leaves), ns, got, proof)
        proofs[ns] = (got, proof)
    # A proof for A is a proof for B only if both are empty at the same place.
    for a, (got, proof) in proofs.items():
        for b, (other, other_proof) in proofs.items():
            if a == b:
                continue
            same_answer = not got and not other and proof.start == other_proof.start
            if same_answer:
                verify_namespace(root, len(leaves), b, got, proof)
            else:
                with pytest.raises(Unverified):
                    verify_namespace(root, len(leaves), b, got, proof)


@settings(max_examples=100, deadline=None)
@given(leaf_specs)
def test_every_leaf_proves_its_inclusion_and_only_at_its_index(
    spec: list[tuple[str, bytes | None]],
) -> None:
    leaves = tree_order(make_leaves(spec))
    root = namespace_root(leaves)
    for i, leaf in enumerate(leaves):
        proof = prove_leaf(leaves, i)
        assert proof.start == i
        verify_leaf(root, len(leaves), leaf, proof)
        other = leaves[(i + 1) % len(leaves)]
        if other != leaf:
            with pytest.raises(Unverified) as exc:
                verify_leaf(root, len(leaves), other, proof)
            assert reason(exc) == "bad-proof"


@pytest.mark.parametrize("n", range(34))
def test_every_tree_size_up_to_33_proves_every_namespace(n: int) -> None:
    """Around the powers of two the tree's shape changes; each size proves every namespace."""
    leaves = tree_order(make_leaves([(PRESENT[i % 3], b"x") for i in range(n)]))
    root = namespace_root(leaves)
    for ns in PRESENT[:3] + ABSENT:
        got, proof = prove_namespace(leaves, ns)
        assert len(got) == sum(1 for leaf in leaves if leaf.namespace == ns)
        assert len(proof.siblings) <= 2 * max(1, n).bit_length()
        verify_namespace(root, n, ns, got, proof)


def test_tree_order_sorts_by_utf8_bytes_and_keeps_consensus_order_inside_a_namespace() -> None:
    consensus = make_leaves([("\U0001f600", b"1"), ("b", b"2"), ("\uffff", b"3"), ("b", b"4")])
    ordered = tree_order(consensus)
    assert [leaf.plaintext for leaf in ordered] == [b"2", b"4", b"3", b"1"]
    with pytest.raises(ValueError, match="tree order"):
        namespace_root(consensus)
    with pytest.raises(ValueError, match="tree order"):
        prove_namespace(consensus, "b")


def test_the_empty_tree_has_a_fixed_root_and_proves_every_namespace_absent() -> None:
    assert namespace_root([]) == EMPTY_ROOT == root_digest(None, 0)
    # 0x02 || cbor([0, null])
    assert hashlib.sha256(bytes.fromhex("028200f6")).digest() == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == EMPTY_ROOT_HEX
    got, proof = prove_namespace([], "a")
    assert got == () and proof == RangeProof(0, ())
    verify_namespace(EMPTY_ROOT, 0, "a", (), proof)
    with pytest.raises(Unverified) as exc:
        verify_namespace(EMPTY_ROOT, 0, "a", (), RangeProof(1, ()))
    assert reason(exc) == "bad-proof"


def test_hashing_is_as_documented() -> None:
    """Leaf, inner node and root hashes, spelled out with the codec."""
    one, two = make_leaves([("a", b"x"), ("b", None)])
    h1 = hashlib.sha256(b"\x00" + codec.encode(one)).digest()
    h2 = hashlib.sha256(b"\x00" + codec.encode(two)).digest()
    n1, n2 = Node("a", "a", h1), Node("b", "b", h2)
    assert leaf_node(one) == n1 and leaf_node(two) == n2
    inner = Node("a", "b", hashlib.sha256(b"\x01" + codec.encode(n1) + codec.encode(n2)).digest())
    expected = hashlib.sha256(b"\x02" + codec.dumps_plain([2, codec.to_plain(inner)])).digest()
    assert namespace_root([one, two]) == expected


# --- one fixed tree and the lies a node could tell about it -------------------------------

SPEC = [
    ("b", b"b1"),
    ("a", b"a1"),
    ("c", None),
    ("b", b"b2"),
    ("d", b"d1"),
    ("b", b"b3"),
    ("a", b"a2"),
    ("c", b"c2"),
    ("e", b"e1"),
    ("b", b"b4"),
]
LEAVES = tree_order(make_leaves(SPEC))  # a a b b b b c c d e
ROOT = namespace_root(LEAVES)
N = len(LEAVES)


def verify(ns: str, leaves: tuple[Leaf, ...], proof: RangeProof, leaf_count: int = N) -> str:
    """The reason verification fails (the test fails if it passes)."""
    with pytest.raises(Unverified) as exc:
        verify_namespace(ROOT, leaf_count, ns, leaves, proof)
    return reason(exc)


def test_the_fixed_tree_verifies_for_every_namespace() -> None:
    assert namespace_range(LEAVES, "b") == (2, 6)
    for ns in ("a", "b", "c", "d", "e", "", "bb", "f"):
        got, proof = prove_namespace(LEAVES, ns)
        verify_namespace(ROOT, N, ns, got, proof)


def test_a_flipped_plaintext_byte_fails() -> None:
    got, proof = prove_namespace(LEAVES, "b")
    plaintext = got[1].plaintext
    assert plaintext is not None
    flipped = bytes([plaintext[0] ^ 1]) + plaintext[1:]
    tampered = (got[0], dataclasses.replace(got[1], plaintext=flipped), *got[2:])
    assert verify("b", tampered, proof) == "bad-proof"


def test_an_invalid_leaf_cannot_be_passed_off_as_opened() -> None:
    got, proof = prove_namespace(LEAVES, "c")
    assert got[0].plaintext is None
    tampered = (dataclasses.replace(got[0], plaintext=b""), got[1])
    assert verify("c", tampered, proof) == "bad-proof"


@pytest.mark.parametrize("drop", [0, 1, 3])
def test_a_dropped_leaf_with_the_same_proof_fails(drop: int) -> None:
    got, proof = prove_namespace(LEAVES, "b")
    assert verify("b", got[:drop] + got[drop + 1 :], proof) == "bad-proof"


@pytest.mark.parametrize(("start", "end"), [(2, 5), (3, 6), (3, 5), (2, 2), (6, 6)])
def test_a_dropped_leaf_with_an_honest_proof_of_the_rest_is_incomplete(
    start: int, end: int
) -> None:
    """The node proves a true sub-range of "b" (even an empty one): the rest is beside it."""
    _, proof = prove_range(LEAVES, start, end)
    verify_leaves = tuple(LEAVES[start:end])
    assert verify("b", verify_leaves, proof) == "incomplete"


def test_a_dropped_leaf_in_the_middle_cannot_be_proved() -> None:
    """Leaves 2, 3, 5 of "b" are no range: any proof for them fails."""
    got, _ = prove_namespace(LEAVES, "b")
    without_third = (got[0], got[1], got[3])
    for start in range(N - 2):
        _, proof = prove_range(LEAVES, start, start + 3)
        assert verify("b", without_third, proof) == "bad-proof"


def test_an_added_leaf_fails() -> None:
    got, proof = prove_namespace(LEAVES, "b")
    extra = Leaf("b", b"\x99" * 32, b"forged")
    assert verify("b", (*got, extra), proof) == "bad-proof"
    assert verify("b", (extra, *got), proof) == "bad-proof"


def test_a_leaf_of_another_namespace_fails() -> None:
    """An honest proof of a range of "b" plus the first "c": authentic, but not all "b"."""
    _, proof = prove_range(LEAVES, 2, 7)
    assert LEAVES[6].namespace == "c"
    assert verify("b", tuple(LEAVES[2:7]), proof) == "wrong-namespace"
    _, proof = prove_range(LEAVES, 1, 6)
    assert verify("b", tuple(LEAVES[1:6]), proof) == "wrong-namespace"


@pytest.mark.parametrize(("a", "b"), [("a", "b"), ("b", "c"), ("d", "e"), ("e", "d")])
def test_a_proof_for_a_present_namespace_fails_for_another_present_one(a: str, b: str) -> None:
    got, proof = prove_namespace(LEAVES, a)
    assert verify(b, got, proof) == "wrong-namespace"


@pytest.mark.parametrize(("a", "b"), [("b", "bb"), ("e", "f"), ("a", "")])
def test_a_proof_for_a_present_namespace_fails_for_an_absent_one(a: str, b: str) -> None:
    got, proof = prove_namespace(LEAVES, a)
    assert verify(b, got, proof) == "wrong-namespace"
    # Without its leaves the proof is no proof of anything.
    assert verify(b, (), proof) == "bad-proof"


@pytest.mark.parametrize(("a", "b"), [("bb", "b"), ("bb", "c"), ("", "a"), ("f", "e")])
def test_a_proof_of_absence_fails_for_a_present_namespace(a: str, b: str) -> None:
    got, proof = prove_namespace(LEAVES, a)
    assert got == ()
    assert verify(b, (), proof) == "incomplete"


@pytest.mark.parametrize(("a", "b"), [("bb", "cc"), ("", "f"), ("cc", "bb"), ("f", "0")])
def test_a_proof_of_absence_fails_for_an_absent_namespace_elsewhere(a: str, b: str) -> None:
    _, proof = prove_namespace(LEAVES, a)
    _, other = prove_namespace(LEAVES, b)
    assert proof.start != other.start
    assert verify(b, (), proof) == "incomplete"


def test_an_absent_namespace_proves_absent() -> None:
    for ns in ("", "0", "aa", "bb", "cc", "da", "f", "\U0001f600"):
        got, proof = prove_namespace(LEAVES, ns)
        assert got == ()
        verify_namespace(ROOT, N, ns, (), proof)


@pytest.mark.parametrize("ns", ["a", "b", "c", "d", "e"])
def test_lying_absent_for_a_present_namespace_fails(ns: str) -> None:
    """An honest empty range where the namespace begins, or where it ends, or anywhere."""
    start, end = namespace_range(LEAVES, ns)
    for position in range(N + 1):
        _, proof = prove_range(LEAVES, position, position)
        assert verify(ns, (), proof) == "incomplete", (start, end, position)


@pytest.mark.parametrize("delta", [-3, -1, 1, 6])
def test_a_wrong_leaf_count_fails(delta: int) -> None:
    for ns in ("a", "b", "c", "d", "e", "bb", "f"):
        got, proof = prove_namespace(LEAVES, ns)
        assert verify(ns, got, proof, leaf_count=N + delta) == "bad-proof"


def test_a_range_out_of_bounds_fails() -> None:
    got, proof = prove_namespace(LEAVES, "e")
    assert verify("e", got, dataclasses.replace(proof, start=N)) == "bad-proof"
    assert verify("f", (), dataclasses.replace(proof, start=N + 1)) == "bad-proof"


def test_a_range_past_the_end_cannot_smuggle_in_leaves() -> None:
    """Past the end the whole tree is one left sibling; the leaves would never be hashed."""
    _, whole = prove_range(LEAVES, N, N)
    assert len(whole.siblings) == 1  # the root node itself
    forged = Leaf("f", b"\x77" * 32, b"forged")
    assert verify("f", (forged,), whole) == "bad-proof"
    with pytest.raises(Unverified) as exc:
        verify_leaf(ROOT, N, forged, whole)
    assert reason(exc) == "bad-proof"


def test_a_missing_or_extra_sibling_fails() -> None:
    got, proof = prove_namespace(LEAVES, "b")
    assert len(proof.siblings) >= 2
    fewer = dataclasses.replace(proof, siblings=proof.siblings[:-1])
    more = dataclasses.replace(proof, siblings=(*proof.siblings, proof.siblings[-1]))
    assert verify("b", got, fewer) == "bad-proof"
    assert verify("b", got, more) == "bad-proof"


def test_a_sibling_with_a_lying_namespace_range_fails() -> None:
    """Min and max are inside the parent's hash: shrinking them to look complete changes it."""
    _, proof = prove_range(LEAVES, 2, 5)  # the last "b" is in the right sibling
    siblings = list(proof.siblings)
    right = [i for i, s in enumerate(siblings) if s.min_namespace == "b"]
    assert right
    siblings[right[0]] = dataclasses.replace(siblings[right[0]], min_namespace="c")
    lied = RangeProof(proof.start, tuple(siblings))
    assert verify("b", tuple(LEAVES[2:5]), lied) == "bad-proof"


def test_a_root_over_leaves_out_of_order_verifies_nothing() -> None:
    """A root a faulty quorum signed over unsorted leaves: the walk rejects the order."""
    unsorted = make_leaves([("b", b"1"), ("a", b"2")])
    left, right = leaf_node(unsorted[0]), leaf_node(unsorted[1])
    digest = hashlib.sha256(b"\x01" + codec.encode(left) + codec.encode(right)).digest()
    root = root_digest(Node("b", "a", digest), 2)
    with pytest.raises(Unverified) as exc:
        verify_namespace(root, 2, "b", (unsorted[0],), RangeProof(0, (right,)))
    assert reason(exc) == "bad-proof"


def test_the_direct_encodings_equal_the_codec_s() -> None:
    for leaf in (Leaf("a", b"d" * 32, b"x"), Leaf("b", b"e" * 32, None)):
        node = leaf_node(leaf)
        assert node.digest == hashlib.sha256(b"\x00" + codec.encode(leaf)).digest()
        assert _node_bytes(node) == codec.encode(node)
