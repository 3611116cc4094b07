"""Threshold encryption: TDH2 ciphertexts, batched shares, optimistic combine, the API guard."""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mev import group, kem
from mev.combine import NotEnoughShares, open_batch, open_with_keys
from mev.committed import CommittedBatch, EncryptedBatch, NotCommitted
from mev.decryptor import Decryptor
from mev.kem import Ciphertext, InvalidCiphertext
from mev.keys import deal
from mev.shares import ShareBatch, make_share_batch, verify_share_batch
from ordering.validation import MessageValidator
from sequencer_net.base import codec
from tests.factory import Net, commit_of

NET = Net(4)
CHAIN = NET.chain_id
PUBLIC, KEYS = deal(4, 2, group.seeded_random_bytes(b"threshold-tests"))
RNG = group.seeded_random_bytes(b"encryptions")


def encrypt(payload: bytes, namespace: str = "rollup-a") -> Ciphertext:
    return kem.encrypt(PUBLIC, CHAIN, namespace, payload, RNG)


def committed(cts: list[Ciphertext]) -> CommittedBatch:
    payload = codec.encode(EncryptedBatch(tuple(cts)))
    return CommittedBatch.from_commit(commit_of(NET, payload), MessageValidator(NET.committee))


def shares_for(batch: CommittedBatch, nodes: list[int]) -> dict[int, ShareBatch]:
    return {i: make_share_batch(KEYS[i], PUBLIC, batch) for i in nodes}


def reason(ct: Ciphertext, chain_id: str = CHAIN) -> str:
    with pytest.raises(InvalidCiphertext) as info:
        kem.check(chain_id, ct)
    return info.value.reason


# ------------------------------------------------------------ ciphertexts


def test_ciphertext_checks_and_round_trips_on_the_wire() -> None:
    ct = encrypt(b"transfer 5 to bob")
    kem.check(CHAIN, ct)
    assert codec.decode(Ciphertext, codec.encode(ct)) == ct


def test_tampered_sealed_payload_is_rejected() -> None:
    ct = encrypt(b"payload")
    sealed = bytearray(ct.sealed)
    sealed[0] ^= 1
    assert reason(replace(ct, sealed=bytes(sealed))) == "bad-proof"


def test_ciphertext_cannot_be_moved_to_another_namespace_or_chain() -> None:
    ct = encrypt(b"payload", "rollup-a")
    assert reason(replace(ct, namespace="rollup-b")) == "bad-proof"
    assert reason(ct, chain_id="other-chain") == "bad-proof"


def test_forged_proof_is_rejected() -> None:
    ct = encrypt(b"payload")
    forged = replace(ct, e=group.scalar_bytes(12345), f=group.scalar_bytes(67890))
    assert reason(forged) == "bad-proof"
    assert reason(replace(ct, e=bytes(32))) == "bad-scalar"


@pytest.mark.parametrize(
    "point",
    [
        bytes([1]) + bytes(31),  # the identity
        bytes.fromhex(
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
        ),  # order 2
        bytes.fromhex(
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"
        ),  # order 8
        bytes(32),  # order 4
    ],
)
def test_points_of_small_order_are_rejected(point: bytes) -> None:
    ct = encrypt(b"payload")
    assert reason(replace(ct, u=point)) == "bad-point"
    assert reason(replace(ct, u_bar=point)) == "bad-point"


# ------------------------------------------------------------ shares and combine


def test_t_shares_decrypt_and_t_minus_one_do_not() -> None:
    cts = [encrypt(b"tx-%d" % i) for i in range(5)]
    batch = committed(cts)
    opening = open_batch(PUBLIC, CHAIN, batch.batch_id, cts, shares_for(batch, [1, 3]))
    assert opening.plaintexts == [b"tx-%d" % i for i in range(5)]
    assert opening.verified_proofs == 0  # the optimistic path checked no proof
    with pytest.raises(NotEnoughShares):
        open_batch(PUBLIC, CHAIN, batch.batch_id, cts, shares_for(batch, [2]))
    one = shares_for(batch, [2])[2]
    lonely = group.mul(group.lagrange_at_zero([3])[0], one.shares[0])
    assert not kem.key_matches(cts[0], lonely)  # one share alone is not the key


def test_a_bad_share_is_detected_its_sender_named_and_others_used() -> None:
    cts = [encrypt(b"tx-%d" % i) for i in range(3)]
    batch = committed(cts)
    shares = shares_for(batch, [0, 1, 2])
    wrong = list(shares[0].shares)
    wrong[1] = group.base_mul(99)
    shares[0] = replace(shares[0], shares=tuple(wrong))
    assert not verify_share_batch(PUBLIC, batch.batch_id, [c.u for c in cts], shares[0])
    opening = open_batch(PUBLIC, CHAIN, batch.batch_id, cts, shares)
    assert opening.plaintexts == [b"tx-0", b"tx-1", b"tx-2"]
    assert opening.blamed == [0]


def test_a_share_from_a_non_member_is_blamed() -> None:
    cts = [encrypt(b"tx")]
    batch = committed(cts)
    shares = shares_for(batch, [1, 2])
    outsider = replace(shares[1], node=9)
    opening = open_batch(PUBLIC, CHAIN, batch.batch_id, cts, {9: outsider, **shares})
    assert opening.plaintexts == [b"tx"]
    opening = open_batch(
        PUBLIC,
        CHAIN,
        batch.batch_id,
        cts,
        {0: outsider, 2: shares[2], 3: shares_for(batch, [3])[3]},
    )
    assert opening.blamed == [0] and opening.plaintexts == [b"tx"]


def test_shares_for_another_batch_do_not_count() -> None:
    cts = [encrypt(b"tx")]
    batch, other = committed(cts), committed([encrypt(b"other")])
    shares = {i: make_share_batch(KEYS[i], PUBLIC, other) for i in (0, 1)}
    with pytest.raises(NotEnoughShares):
        open_batch(PUBLIC, CHAIN, batch.batch_id, cts, shares)


def _garbage_payload_ciphertext() -> Ciphertext:
    """A ciphertext with a valid proof whose sealed bytes open under no key."""
    r, s = group.random_scalar(os.urandom), group.random_scalar(os.urandom)
    u, u_bar = group.base_mul(r), group.mul(r, group.G_BAR)
    _, key_check = kem.derive_keys(group.mul(r, PUBLIC.public_key), u)
    sealed = os.urandom(40)
    w, w_bar = group.base_mul(s), group.mul(s, group.G_BAR)
    e = kem._challenge(kem.label(CHAIN, "rollup-a"), key_check, sealed, u, w, u_bar, w_bar)
    f = (s + r * e) % group.L
    return Ciphertext(
        "rollup-a", u, u_bar, group.scalar_bytes(e), group.scalar_bytes(f), key_check, sealed
    )


def test_a_payload_that_does_not_open_is_invalid_on_every_node_alike() -> None:
    cts = [encrypt(b"good"), _garbage_payload_ciphertext()]
    kem.check(CHAIN, cts[1])  # the proof is fine: only the payload is bad
    batch = committed(cts)
    verdicts = [
        open_batch(PUBLIC, CHAIN, batch.batch_id, cts, shares_for(batch, subset)).plaintexts
        for subset in ([0, 1], [2, 3], [1, 3])
    ]
    assert verdicts == [[b"good", None]] * 3


def test_invalid_ciphertexts_keep_their_place_but_get_no_share() -> None:
    bad = replace(encrypt(b"x"), sealed=b"\x00" * 20)
    good = encrypt(b"y")
    batch = committed([bad, good])
    assert batch.valid == [False, True] and batch.decryptable == [good]
    decryptors = [Decryptor(KEYS[i], PUBLIC, CHAIN) for i in (0, 1)]
    shares = {d._key.index: d.share(batch) for d in decryptors}
    assert len(shares[0].shares) == 1
    assert decryptors[0].open(batch, shares).plaintexts == [b"y"]


# ------------------------------------------------------------ the API guard


def test_no_share_without_a_committed_batch() -> None:
    with pytest.raises(NotCommitted):
        make_share_batch(KEYS[0], PUBLIC, [encrypt(b"x").u])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CommittedBatch(1, b"\x00" * 32, [], [], object())


def test_a_commit_without_a_valid_quorum_certificate_is_refused() -> None:
    payload = codec.encode(EncryptedBatch((encrypt(b"x"),)))
    commit = commit_of(NET, payload)
    validator = MessageValidator(NET.committee)
    forged_qc = replace(commit.certificate, signatures=commit.certificate.signatures[:2])
    with pytest.raises(NotCommitted):
        CommittedBatch.from_commit(replace(commit, certificate=forged_qc), validator)
    other = commit_of(NET, codec.encode(EncryptedBatch(())))
    with pytest.raises(NotCommitted):
        CommittedBatch.from_commit(replace(commit, certificate=other.certificate), validator)
    with pytest.raises(NotCommitted):
        CommittedBatch.from_commit(commit_of(NET, b"not a batch"), validator)


# ------------------------------------------------------------ properties


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=2000), st.sets(st.integers(0, 3), min_size=2, max_size=4))
def test_encrypt_then_decrypt_with_any_t_subset(payload: bytes, subset: set[int]) -> None:
    ct = encrypt(payload)
    batch = committed([ct])
    shares = shares_for(batch, sorted(subset))
    assert open_batch(PUBLIC, CHAIN, batch.batch_id, [ct], shares).plaintexts == [payload]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([Ciphertext, ShareBatch, EncryptedBatch]))
def test_decoders_reject_arbitrary_bytes_with_the_typed_error(data: bytes, cls: type) -> None:
    with contextlib.suppress(codec.DecodeError):
        codec.decode(cls, data)


def test_keys_published_by_one_combiner_open_the_batch_for_everyone() -> None:
    cts = [encrypt(b"tx-%d" % i) for i in range(3)]
    batch = committed(cts)
    opening = open_batch(PUBLIC, CHAIN, batch.batch_id, cts, shares_for(batch, [0, 2]))
    keys = [k for k in opening.keys if k is not None]
    assert open_with_keys(CHAIN, cts, keys) == [b"tx-0", b"tx-1", b"tx-2"]
    forged = [keys[0], group.base_mul(5), keys[2]]
    assert open_with_keys(CHAIN, cts, forged) is None  # caught by the key check: combine yourself
