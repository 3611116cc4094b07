"""Certified namespace batches: a rollup verifies its slice from the committee alone.

A fixed vector (another implementation must produce exactly these bytes), the
strict decoding, and one test per lie a node could serve, each with the reason
the rollup's verifier must give. The inputs of the vector are the documented
test committee and its block at height 1 (``docs/wire-format.md``).
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.batch import (
    NamespaceBatch,
    VerifiedBatch,
    build_namespace_batch,
    decode_namespace_batch,
    verify_namespace_batch,
)
from delivery.header import (
    BatchCertificate,
    BatchHeader,
    Unverified,
    batch_hash,
    genesis_batch_hash,
)
from delivery.nmt import Leaf, leaf_node, namespace_root, prove_range, tree_order
from ordering.messages import block_hash
from sequencer_net.base import codec
from tests.factory import Net
from tests.fuzz import decodes_canonically_or_rejects, mutations
from tests.test_codec import BLOCK_HASH_HEX

NET = Net(4)
BLOCK = NET.block(1, NET.genesis_qc, b"hello")
BLOCK_HASH = block_hash(BLOCK)

# Consensus order: rollup-b's transaction first; the tree puts rollup-a first.
CONSENSUS = (
    Leaf("rollup-b", b"\x33" * 32, b"hi"),
    Leaf("rollup-a", b"\x44" * 32, None),  # did not open
    Leaf("rollup-a", b"\x55" * 32, b"yo"),
)
LEAVES = tree_order(CONSENSUS)

LEAF_HEX = [  # SHA-256(0x00 || cbor(leaf)), tree order
    "86dc07bcdda0e424f263cc1579d395e57c59b8780796f38e71e222f085f52209",
    "d22fc93b4e9295f4d067b259570561edc7c5b26a0480747a7fe03ecc20760cde",
    "b806fabdfbff0778fd7b584000cc154c3c95449db5a0639a144d1d8c915bd85c",
]
INNER_HEX = "2bf61e720cc3102a4a9cf7a8ff5235ace87c815d1d2fb599e360d21c8c0ccbb6"  # rollup-a, both
ROOT_NODE_HEX = "93bd2c1f136cf01ad2d48f89740846765b87145f9cc3903e603a0245791493a8"
ROOT_HEX = "6d21e5ba5a4590b8056c3c3bb739dc5b422aa73e225edeb2e8274b08868ef3ff"
BATCH_HASH_HEX = "8cefdb17812fa812115433da2030d87926a875e210e7feae5d73f3b4e5cadf19"
NAMESPACE_BATCH_HEX = (
    "a401a201a6016a746573742d636861696e0201035820a7fbdb6f635d265d8b19d0bf0668312c6beb"
    "7b8a1ac7b8060449b76ccfad73a70458206d21e5ba5a4590b8056c3c3bb739dc5b422aa73e225ede"
    "b2e8274b08868ef3ff0503065820f38553eaab6619730559db8e4d54832a9af421331a6b8eec8dfe"
    "8e2e3686ec060283820058401e5800a5da9a795cc937e420e6133ceba2f8b1929f76cf7272534613"
    "adb157abdb21d4117dda5dc29f2bc4deb298b76d37c574ae946d2dfefe9938e484bb420e82015840"
    "3d66ca15357407839e23fadcefa48b19b4a891f7ba83e0b9a5bfa16a15052898f761f427f9f7eaa9"
    "cb8ab233b81d78ad0530aaf496bd6fb0d7332767554dd208820258406147764a33b67e3284d41713"
    "ac3802e33abaf8a518cb21564df17ac9707888f873ac3f712a308c4128e54a43a2f80f65b7760a32"
    "5a2e12886707c79812fbc6010268726f6c6c75702d610382a30168726f6c6c75702d610258204444"
    "44444444444444444444444444444444444444444444444444444444444403f6a30168726f6c6c75"
    "702d6102582055555555555555555555555555555555555555555555555555555555555555550342"
    "796f04a201000281a30168726f6c6c75702d620268726f6c6c75702d62035820b806fabdfbff0778"
    "fd7b584000cc154c3c95449db5a0639a144d1d8c915bd85c"
)


def header_of(leaves: list[Leaf]) -> BatchHeader:
    """Height 1's header over ``leaves`` (in tree order), on the test block."""
    return BatchHeader(
        NET.chain_id,
        1,
        BLOCK_HASH,
        namespace_root(leaves),
        len(leaves),
        genesis_batch_hash(NET.chain_id),
    )


def certify(
    header: BatchHeader, signers: list[int] | None = None, net: Net = NET
) -> BatchCertificate:
    """A certificate as validators make it: their signatures, sorted by signer."""
    signers = signers if signers is not None else list(range(net.committee.quorum))
    signed = [net.keys[i].sign(header, net.chain_id, i) for i in sorted(signers)]
    return BatchCertificate(header, tuple((s.signer, s.signature) for s in signed))


CERT = certify(header_of(LEAVES))


def rejected(batch: NamespaceBatch, namespace: str, height: int | None = None) -> str:
    """The reason the rollup's verifier refuses ``batch`` (the test fails if it accepts)."""
    with pytest.raises(Unverified) as exc:
        verify_namespace_batch(NET.committee, batch, namespace, height)
    return exc.value.reason


# --- the fixed vector -----------------------------------------------------------------------


def test_fixed_vector() -> None:
    assert BLOCK_HASH.hex() == BLOCK_HASH_HEX  # the inputs are the consensus vectors' inputs
    assert [leaf.namespace for leaf in LEAVES] == ["rollup-a", "rollup-a", "rollup-b"]
    assert [leaf_node(leaf).digest.hex() for leaf in LEAVES] == LEAF_HEX
    assert namespace_root(LEAVES).hex() == ROOT_HEX
    # rollup-b's proof holds the rollup-a subtree; an absence proof past the end, the root node.
    (inner,) = build_namespace_batch(CERT, LEAVES, "rollup-b").proof.siblings
    assert (inner.min_namespace, inner.max_namespace, inner.digest.hex()) == (
        "rollup-a",
        "rollup-a",
        INNER_HEX,
    )
    (whole,) = build_namespace_batch(CERT, LEAVES, "rollup-c").proof.siblings
    assert (whole.min_namespace, whole.max_namespace, whole.digest.hex()) == (
        "rollup-a",
        "rollup-b",
        ROOT_NODE_HEX,
    )
    assert batch_hash(CERT.header).hex() == BATCH_HASH_HEX
    # {1: certificate by 0, 1, 2, 2: "rollup-a", 3: both rollup-a leaves, 4: {1: start 0,
    # 2: [rollup-b's leaf node]}}
    batch = build_namespace_batch(CERT, LEAVES, "rollup-a")
    assert codec.encode(batch).hex() == NAMESPACE_BATCH_HEX
    assert decode_namespace_batch(bytes.fromhex(NAMESPACE_BATCH_HEX)) == batch
    verified = verify_namespace_batch(NET.committee, batch, "rollup-a", height=1)
    header = CERT.header
    assert verified == VerifiedBatch(1, "rollup-a", batch_hash(header), header, CONSENSUS[1:])


def test_round_trip_is_byte_identical() -> None:
    for ns in ("rollup-a", "rollup-b", "rollup-c", ""):
        batch = build_namespace_batch(CERT, LEAVES, ns)
        data = codec.encode(batch)
        again: NamespaceBatch = codec.decode(NamespaceBatch, data)
        assert again == batch and codec.encode(again) == data
        assert decode_namespace_batch(data) == batch


def test_every_namespace_verifies_with_its_leaves_in_consensus_order() -> None:
    for ns, expected in [("rollup-a", CONSENSUS[1:]), ("rollup-b", CONSENSUS[:1])]:
        batch = build_namespace_batch(CERT, LEAVES, ns)
        assert verify_namespace_batch(NET.committee, batch, ns).leaves == expected


def test_an_empty_namespace_proves_absent() -> None:
    for ns in ("rollup-c", "", "rollup-", "rollup-ab", "\U0001f600"):
        batch = build_namespace_batch(CERT, LEAVES, ns)
        assert batch.leaves == ()
        assert verify_namespace_batch(NET.committee, batch, ns, height=1).leaves == ()


def test_an_empty_batch_proves_every_namespace_absent() -> None:
    cert = certify(header_of([]))
    batch = build_namespace_batch(cert, [], "rollup-a")
    assert verify_namespace_batch(NET.committee, batch, "rollup-a").leaves == ()


def test_build_refuses_leaves_the_certificate_does_not_commit_to() -> None:
    with pytest.raises(ValueError, match="leaves"):
        build_namespace_batch(CERT, LEAVES[:2], "rollup-a")
    other = [LEAVES[0], LEAVES[1], dataclasses.replace(LEAVES[2], plaintext=b"ho")]
    with pytest.raises(ValueError, match="namespace_root"):
        build_namespace_batch(CERT, other, "rollup-a")
    with pytest.raises(ValueError, match="tree order"):
        build_namespace_batch(CERT, list(CONSENSUS), "rollup-a")


# --- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xa0",
        bytes.fromhex(NAMESPACE_BATCH_HEX)[:-1],
        bytes.fromhex(NAMESPACE_BATCH_HEX) + b"\x00",
        bytes.fromhex("a4" + "19" + "0001" + NAMESPACE_BATCH_HEX[4:]),  # key 1 in 3 bytes
    ],
    ids=["empty", "empty-map", "truncated", "trailing", "non-canonical"],
)
def test_anything_but_one_canonical_batch_is_refused(data: bytes) -> None:
    with pytest.raises(Unverified) as exc:
        decode_namespace_batch(data)
    assert exc.value.reason == "decode"


def test_too_many_siblings_or_leaves_are_refused_by_the_decoder() -> None:
    batch = build_namespace_batch(CERT, LEAVES, "rollup-a")
    node = batch.proof.siblings[0]
    long_proof = dataclasses.replace(batch.proof, siblings=(node,) * 65)
    with pytest.raises(Unverified, match="siblings"):
        decode_namespace_batch(codec.encode(dataclasses.replace(batch, proof=long_proof)))
    many = dataclasses.replace(batch, leaves=(LEAVES[0],) * 16_385)
    with pytest.raises(Unverified, match="leaves"):
        decode_namespace_batch(codec.encode(many))


DECODE = functools.partial(codec.decode, NamespaceBatch)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_batches_are_refused_or_canonical(data: st.DataObject) -> None:
    original = bytes.fromhex(NAMESPACE_BATCH_HEX)
    mutant = data.draw(mutations(original))
    if decodes_canonically_or_rejects(DECODE, codec.encode, mutant):
        batch = decode_namespace_batch(mutant)
        if batch != codec.decode(NamespaceBatch, original):
            with pytest.raises(Unverified):
                verify_namespace_batch(NET.committee, batch, batch.namespace)
    else:
        with pytest.raises(Unverified):
            decode_namespace_batch(mutant)


# --- what a node could lie about ------------------------------------------------------------

BATCH_A = build_namespace_batch(CERT, LEAVES, "rollup-a")
BATCH_B = build_namespace_batch(CERT, LEAVES, "rollup-b")
BATCH_C = build_namespace_batch(CERT, LEAVES, "rollup-c")  # absent, after all leaves
BATCH_0 = build_namespace_batch(CERT, LEAVES, "rollup-0")  # absent, before all leaves


def test_a_flipped_plaintext_byte_fails() -> None:
    leaf = BATCH_A.leaves[1]
    assert leaf.plaintext == b"yo"
    tampered = (BATCH_A.leaves[0], dataclasses.replace(leaf, plaintext=b"xo"))
    assert rejected(dataclasses.replace(BATCH_A, leaves=tampered), "rollup-a") == "bad-proof"


def test_a_dropped_leaf_fails() -> None:
    dropped = dataclasses.replace(BATCH_A, leaves=BATCH_A.leaves[:1])
    assert rejected(dropped, "rollup-a") == "bad-proof"


def test_a_dropped_leaf_with_an_honest_proof_of_the_rest_is_incomplete() -> None:
    for start, end in [(0, 1), (1, 2)]:
        _, proof = prove_range(LEAVES, start, end)
        lied = NamespaceBatch(CERT, "rollup-a", tuple(LEAVES[start:end]), proof)
        assert rejected(lied, "rollup-a") == "incomplete"


def test_an_added_leaf_fails() -> None:
    extra = Leaf("rollup-a", b"\x66" * 32, b"forged")
    added = dataclasses.replace(BATCH_A, leaves=(*BATCH_A.leaves, extra))
    assert rejected(added, "rollup-a") == "bad-proof"


def test_a_leaf_of_another_namespace_fails() -> None:
    """An authentic range of the whole tree, served as rollup-a's."""
    _, proof = prove_range(LEAVES, 0, 3)
    lied = NamespaceBatch(CERT, "rollup-a", tuple(LEAVES), proof)
    assert rejected(lied, "rollup-a") == "wrong-namespace"


@pytest.mark.parametrize(
    ("batch", "asked"),
    [(BATCH_A, "rollup-b"), (BATCH_B, "rollup-a"), (BATCH_A, "rollup-c"), (BATCH_C, "rollup-a")],
)
def test_a_batch_for_one_namespace_fails_for_another(batch: NamespaceBatch, asked: str) -> None:
    assert rejected(batch, asked) == "wrong-namespace"


@pytest.mark.parametrize(
    ("batch", "asked", "why"),
    [
        (BATCH_A, "rollup-b", "wrong-namespace"),  # its leaves are rollup-a's
        (BATCH_A, "rollup-c", "wrong-namespace"),
        (BATCH_C, "rollup-a", "incomplete"),  # rollup-c's absence, relabelled
        (BATCH_C, "rollup-b", "incomplete"),
        (BATCH_C, "rollup-", "incomplete"),  # absent too, but elsewhere in the tree
        (BATCH_0, "rollup-a", "incomplete"),
        (BATCH_0, "rollup-c", "incomplete"),
    ],
)
def test_a_relabelled_batch_for_one_namespace_fails_for_another(
    batch: NamespaceBatch, asked: str, why: str
) -> None:
    assert rejected(dataclasses.replace(batch, namespace=asked), asked) == why


def test_lying_absent_for_a_present_namespace_fails() -> None:
    for position in range(len(LEAVES) + 1):
        _, proof = prove_range(LEAVES, position, position)
        for ns in ("rollup-a", "rollup-b"):
            assert rejected(NamespaceBatch(CERT, ns, (), proof), ns) == "incomplete"


def test_a_forged_signature_fails() -> None:
    (signer, signature), *rest = CERT.signatures
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    cert = dataclasses.replace(CERT, signatures=((signer, forged), *rest))
    assert rejected(dataclasses.replace(BATCH_A, certificate=cert), "rollup-a") == "bad-certificate"


def test_a_signature_over_another_header_fails() -> None:
    other = certify(dataclasses.replace(CERT.header, height=2))
    cert = dataclasses.replace(CERT, signatures=(other.signatures[0], *CERT.signatures[1:]))
    assert rejected(dataclasses.replace(BATCH_A, certificate=cert), "rollup-a") == "bad-certificate"


def test_a_short_certificate_fails() -> None:
    short = certify(CERT.header, list(range(NET.committee.quorum - 1)))
    batch = dataclasses.replace(BATCH_A, certificate=short)
    assert rejected(batch, "rollup-a") == "short-certificate"


def test_a_duplicate_signer_fails() -> None:
    first = CERT.signatures[0]
    doubled = dataclasses.replace(CERT, signatures=(first, first, *CERT.signatures[1:-1]))
    assert len(doubled.signatures) == NET.committee.quorum
    batch = dataclasses.replace(BATCH_A, certificate=doubled)
    assert rejected(batch, "rollup-a") == "bad-certificate"


def test_a_signer_outside_the_committee_fails() -> None:
    outsider = Net(5)
    cert = certify(CERT.header, [0, 1, 4], net=outsider)
    batch = dataclasses.replace(BATCH_A, certificate=cert)
    assert rejected(batch, "rollup-a") == "bad-certificate"


def test_a_header_for_another_chain_fails() -> None:
    other = Net(4, "other-chain")
    cert = certify(dataclasses.replace(CERT.header, chain_id=other.chain_id), net=other)
    batch = dataclasses.replace(BATCH_A, certificate=cert)
    assert rejected(batch, "rollup-a") == "wrong-chain"


def test_the_right_header_signed_for_another_chain_fails() -> None:
    """Same chain id in the header, signatures made for another chain's domain."""
    other = Net(4, "other-chain")
    header = CERT.header
    signed = [NET.keys[i].sign(header, other.chain_id, i) for i in range(NET.committee.quorum)]
    cert = BatchCertificate(header, tuple((s.signer, s.signature) for s in signed))
    batch = dataclasses.replace(BATCH_A, certificate=cert)
    assert rejected(batch, "rollup-a") == "bad-certificate"


@pytest.mark.parametrize("delta", [-1, 1, 2])
def test_a_certified_wrong_leaf_count_fails(delta: int) -> None:
    cert = certify(dataclasses.replace(CERT.header, leaf_count=len(LEAVES) + delta))
    for batch in (BATCH_A, BATCH_B, BATCH_C):
        assert (
            rejected(dataclasses.replace(batch, certificate=cert), batch.namespace) == "bad-proof"
        )


def test_a_batch_of_another_height_fails() -> None:
    assert rejected(BATCH_A, "rollup-a", height=2) == "wrong-height"
    assert verify_namespace_batch(NET.committee, BATCH_A, "rollup-a", height=1).height == 1


def test_a_certified_header_over_another_tree_fails() -> None:
    cert = certify(header_of(LEAVES[:2]))
    assert rejected(dataclasses.replace(BATCH_A, certificate=cert), "rollup-a") == "bad-proof"
