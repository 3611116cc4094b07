"""Threshold encryption: signed ElGamal ciphertexts, batched shares, optimistic combine."""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mev import group, kem
from mev.combine import NotEnoughShares, open_batch, open_with_keys
from mev.committed import CommittedBatch, EncryptedBatch, NotCommitted, is_well_formed
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
OTHER, _ = deal(4, 2, group.seeded_random_bytes(b"another committee"))  # same chain, other key
RNG = group.seeded_random_bytes(b"encryptions")
ONE_PLUS_P = (1 + group.FIELD_PRIME).to_bytes(32, "big")  # x = 1 is on the curve: not canonical


def encrypt(payload: bytes, namespace: str = "rollup-a") -> Ciphertext:
    return kem.encrypt(PUBLIC, CHAIN, namespace, payload, RNG)


def well_formed(ct: Ciphertext, _digest: bytes) -> bool:
    return is_well_formed(PUBLIC, CHAIN, ct)


def committed(cts: list[Ciphertext]) -> CommittedBatch:
    payload = codec.encode(EncryptedBatch(tuple(cts)))
    return CommittedBatch.from_commit(
        commit_of(NET, payload),
        MessageValidator(NET.committee),
        well_formed,
    )


def shares_for(batch: CommittedBatch, nodes: list[int]) -> dict[int, ShareBatch]:
    return {i: make_share_batch(KEYS[i], PUBLIC, batch) for i in nodes}


def reason(ct: Ciphertext, chain_id: str = CHAIN) -> str:
    with pytest.raises(InvalidCiphertext) as info:
        kem.check(PUBLIC, chain_id, ct)
    return info.value.reason


def signed(namespace: str, r: int, u: bytes, key_check: bytes, sealed: bytes) -> Ciphertext:
    """A ciphertext with ``u`` signed under ``r`` (valid only if ``u`` is ``r``'s)."""
    the_label = kem.label(CHAIN, namespace, PUBLIC.fingerprint)
    message = kem.signed_message(the_label, key_check, sealed)
    return Ciphertext(namespace, u, key_check, sealed, group.schnorr_sign(r, message, bytes(32)))


# ------------------------------------------------------------ ciphertexts


def test_ciphertext_checks_and_round_trips_on_the_wire() -> None:
    ct = encrypt(b"transfer 5 to bob")
    kem.check(PUBLIC, CHAIN, ct)
    assert codec.decode(Ciphertext, codec.encode(ct)) == ct
    assert len(ct.u) == 32 and len(ct.signature) == 64


def test_tampered_sealed_payload_or_key_check_is_rejected() -> None:
    ct = encrypt(b"payload")
    sealed = bytearray(ct.sealed)
    sealed[0] ^= 1
    assert reason(replace(ct, sealed=bytes(sealed))) == "bad-proof"
    assert reason(replace(ct, key_check=bytes(16))) == "bad-proof"


def test_ciphertext_cannot_be_moved_to_another_namespace_or_chain() -> None:
    ct = encrypt(b"payload", "rollup-a")
    assert reason(replace(ct, namespace="rollup-b")) == "bad-proof"
    assert reason(ct, chain_id="other-chain") == "bad-proof"


def test_a_ciphertext_for_another_key_of_the_same_chain_is_refused_at_check() -> None:
    theirs = kem.encrypt(OTHER, CHAIN, "rollup-a", b"payload", RNG)
    kem.check(OTHER, CHAIN, theirs)  # fine for the committee it was made for
    assert reason(theirs) == "bad-proof"  # not ordered here: it could never be opened
    assert not is_well_formed(PUBLIC, CHAIN, theirs)
    assert PUBLIC.fingerprint != OTHER.fingerprint


def test_forged_signatures_are_rejected() -> None:
    ct = encrypt(b"payload")
    for forged in (bytes(64), os.urandom(64), ct.signature[:32] + bytes([0xFF]) * 32):
        assert reason(replace(ct, signature=forged)) == "bad-proof"


def test_tampered_u_is_rejected() -> None:
    ct = encrypt(b"payload")
    assert reason(replace(ct, u=encrypt(b"other").u)) == "bad-proof"  # another valid point
    assert reason(replace(ct, u=bytes(32))) == "bad-point"  # x = 0: no point of secp256k1
    assert reason(replace(ct, u=group.FIELD_PRIME.to_bytes(32, "big"))) == "bad-point"
    assert reason(replace(ct, u=ONE_PLUS_P)) == "bad-point"  # x = 1 + p: not canonical


def test_a_copied_u_cannot_carry_another_label_or_payload() -> None:
    """Without ``r`` nobody can sign for a copied ``u``: not under a new label, not new bytes."""
    victim = encrypt(b"buy 100 at any price", "rollup-a")
    mine, _ = group.even_y(group.random_scalar(os.urandom))
    copied = signed("rollup-b", mine, victim.u, victim.key_check, victim.sealed)
    assert reason(copied) == "bad-proof"  # the victim's u, signed with the attacker's own key
    relabelled = replace(victim, namespace="rollup-b")
    assert reason(relabelled) == "bad-proof"
    resealed = replace(victim, sealed=os.urandom(len(victim.sealed)))
    assert reason(resealed) == "bad-proof"


def test_a_signature_cannot_be_reattached_to_another_ciphertext() -> None:
    first, second = encrypt(b"first"), encrypt(b"second")
    assert reason(replace(second, signature=first.signature)) == "bad-proof"
    assert reason(replace(second, u=first.u, signature=first.signature)) == "bad-proof"
    assert reason(replace(first, sealed=second.sealed, key_check=second.key_check)) == "bad-proof"


def test_u_is_x_only_so_its_point_always_has_even_y() -> None:
    for _ in range(20):
        r, x = group.even_y(group.random_scalar(os.urandom))
        assert group.base_mul(r) == b"\x02" + x
        assert group.encode(group.lift_x(encrypt(b"p").u))[0] == 2


def test_a_sender_that_skips_the_even_y_rule_makes_a_ciphertext_nobody_opens() -> None:
    """With odd y the sender's ``K = r·h`` is ``-x·lift(u)``: the key check fails on every node."""
    r = group.ORDER - group.even_y(group.random_scalar(os.urandom))[0]  # r·G has odd y
    u = group.base_mul(r)[1:]
    key, key_check = kem.derive_keys(group.mul(r, PUBLIC.public_key), u)
    the_label = kem.label(CHAIN, "rollup-a", PUBLIC.fingerprint)
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(b"odd", the_label, kem.NONCE, key)
    careless = signed("rollup-a", r, u, key_check, sealed)
    kem.check(PUBLIC, CHAIN, careless)  # BIP-340 negates the key itself: the signature holds
    cts = [encrypt(b"good"), careless]
    batch = committed(cts)
    for subset in ([0, 1], [2, 3]):
        opening = open_batch(PUBLIC, CHAIN, batch.batch_id, cts, shares_for(batch, subset))
        assert opening.plaintexts == [b"good", None]


@pytest.mark.parametrize(
    "point",
    [
        b"\x02" + ONE_PLUS_P,  # x = 1 + p: the point x = 1, encoded non-canonically
        b"\x03" + ONE_PLUS_P,
        b"\x04"
        + bytes.fromhex(  # G uncompressed: 65 bytes
            "79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"
            "483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8"
        ),
        b"\x06" + group.G[1:],  # a hybrid / unknown prefix
        b"\x00",  # the identity (SEC1's point at infinity)
        bytes(33),
        b"\x02" + bytes(32),  # x = 0: not on the curve
        group.G[:32],  # truncated
    ],
)
def test_non_canonical_and_invalid_point_encodings_are_refused(point: bytes) -> None:
    assert not group.is_point(point)
    with pytest.raises(group.InvalidPoint):
        group.element(point)


def test_canonical_encodings_round_trip() -> None:
    for prefix in (b"\x02", b"\x03"):
        one = prefix + (1).to_bytes(32, "big")  # the two points with x = 1
        assert group.encode(group.element(one)) == one
    assert group.check_point(group.G) == group.G and group.G.hex().startswith("0279be667ef9dcbb")


# ------------------------------------------------------------ the group


scalars = st.integers(1, group.ORDER - 1)


@settings(max_examples=40, deadline=None)
@given(scalars, scalars, st.sampled_from([1, 2, 3, group.ORDER - 1, group.ORDER - 3]))
def test_group_operations_agree_with_scalar_arithmetic(a: int, b: int, small: int) -> None:
    p = group.base_mul(a)
    assert group.mul(b, p) == group.base_mul(a * b % group.ORDER)
    if (a + b) % group.ORDER:
        assert group.add(p, group.base_mul(b)) == group.base_mul((a + b) % group.ORDER)
        assert group.sub(p, group.base_mul(group.ORDER - b)) == group.add(p, group.base_mul(b))
    assert group.neg(p) == group.base_mul(group.ORDER - a)
    terms = [(small, p), (b, group.G)]
    expected = (small * a + b) % group.ORDER
    if expected:
        assert group.linear_combination(terms) == group.base_mul(expected)


def test_identity_results_and_zero_scalars_raise() -> None:
    p = group.base_mul(7)
    with pytest.raises(group.InvalidPoint):
        group.add(p, group.neg(p))
    with pytest.raises(group.InvalidPoint):
        group.linear_combination([(1, p), (group.ORDER - 1, p)])
    for zero in (0, group.ORDER):
        with pytest.raises(ValueError, match="zero"):
            group.mul(zero, p)
        with pytest.raises(ValueError, match="zero"):
            group.base_mul(zero)
    with pytest.raises(group.InvalidPoint):
        group.neg(b"")


def test_scalars_are_32_big_endian_bytes_and_hashes_never_zero() -> None:
    assert group.scalar_bytes(1) == bytes(31) + b"\x01"
    assert group.scalar_from_bytes(group.scalar_bytes(group.ORDER - 1)) == group.ORDER - 1
    assert all(0 < group.hash_to_scalar(b"d", bytes([i])) < group.ORDER for i in range(50))
    lam = group.lagrange_at_zero([1, 2])
    assert lam == [2, group.ORDER - 1]  # small: the combine multiplies cheaply


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
    """A ciphertext with a valid signature and key check whose sealed bytes open under no key."""
    r, u = group.even_y(group.random_scalar(os.urandom))
    _, key_check = kem.derive_keys(group.mul(r, PUBLIC.public_key), u)
    return signed("rollup-a", r, u, key_check, os.urandom(40))


def test_a_payload_that_does_not_open_is_invalid_on_every_node_alike() -> None:
    cts = [encrypt(b"good"), _garbage_payload_ciphertext()]
    kem.check(PUBLIC, CHAIN, cts[1])  # the signature is fine: only the payload is bad
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


def test_a_share_in_a_non_canonical_encoding_is_blamed() -> None:
    cts = [encrypt(b"tx-0"), encrypt(b"tx-1")]
    batch = committed(cts)
    shares = shares_for(batch, [0, 1, 2])
    wrong = (b"\x02" + ONE_PLUS_P, shares[0].shares[1])
    shares[0] = replace(shares[0], shares=wrong)
    assert not verify_share_batch(PUBLIC, batch.batch_id, [c.u for c in cts], shares[0])
    opening = open_batch(PUBLIC, CHAIN, batch.batch_id, cts, shares)
    assert opening.plaintexts == [b"tx-0", b"tx-1"] and opening.blamed == [0]


def test_a_proof_for_other_shares_or_another_sender_does_not_verify() -> None:
    cts = [encrypt(b"tx-0"), encrypt(b"tx-1")]
    batch = committed(cts)
    us = [c.u for c in cts]
    shares = shares_for(batch, [0, 1])
    assert verify_share_batch(PUBLIC, batch.batch_id, us, shares[0])
    swapped = replace(shares[0], shares=tuple(reversed(shares[0].shares)))
    assert not verify_share_batch(PUBLIC, batch.batch_id, us, swapped)
    assert not verify_share_batch(PUBLIC, batch.batch_id, us, replace(shares[0], node=1))
    stolen = replace(shares[1], challenge=shares[0].challenge, response=shares[0].response)
    assert not verify_share_batch(PUBLIC, batch.batch_id, us, stolen)
    zero = replace(shares[0], response=bytes(32))
    assert not verify_share_batch(PUBLIC, batch.batch_id, us, zero)


def test_no_share_without_a_committed_batch() -> None:
    with pytest.raises(NotCommitted):
        make_share_batch(KEYS[0], PUBLIC, [encrypt(b"x").u])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CommittedBatch(1, b"\x00" * 32, [], [], [], object())


def test_a_commit_without_a_valid_quorum_certificate_is_refused() -> None:
    payload = codec.encode(EncryptedBatch((encrypt(b"x"),)))
    commit = commit_of(NET, payload)
    validator = MessageValidator(NET.committee)
    valid = well_formed
    forged_qc = replace(commit.certificate, signatures=commit.certificate.signatures[:2])
    with pytest.raises(NotCommitted):
        CommittedBatch.from_commit(replace(commit, certificate=forged_qc), validator, valid)
    other = commit_of(NET, codec.encode(EncryptedBatch(())))
    with pytest.raises(NotCommitted):
        CommittedBatch.from_commit(replace(commit, certificate=other.certificate), validator, valid)
    with pytest.raises(NotCommitted):
        CommittedBatch.from_commit(commit_of(NET, b"not a batch"), validator, valid)


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
    assert open_with_keys(PUBLIC, CHAIN, cts, keys) == [b"tx-0", b"tx-1", b"tx-2"]
    forged = [keys[0], group.base_mul(5), keys[2]]
    assert open_with_keys(PUBLIC, CHAIN, cts, forged) is None  # the key check: combine yourself
    assert open_with_keys(OTHER, CHAIN, cts, keys) == [None, None, None]  # another label: no AEAD


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_change_to_a_ciphertext_is_refused(data: st.DataObject) -> None:
    """Flip any bit of the encoding: it no longer decodes, or its check fails."""
    encoded = bytearray(codec.encode(CIPHERTEXT))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] ^= 1 << data.draw(st.integers(0, 7))
    try:
        changed = codec.decode(Ciphertext, bytes(encoded))
    except codec.DecodeError:
        return
    assert changed != CIPHERTEXT
    with pytest.raises(InvalidCiphertext):
        kem.check(PUBLIC, CHAIN, changed)


CIPHERTEXT = kem.encrypt(PUBLIC, CHAIN, "rollup-a", b"x" * 40, RNG)
