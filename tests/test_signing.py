"""Signatures are bound to their domain and chain; Verified only comes from verify()."""

from __future__ import annotations

import pytest

from ordering.messages import ProposalData, VoteData
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import BadSignature, Signed, Verified, sign_bytes
from tests.factory import Net

NET = Net(4)
DIGEST = b"\x11" * 32


def test_signed_statement_verifies_for_its_committee() -> None:
    signed = NET.keys[2].sign(VoteData(DIGEST, 3, 2), NET.chain_id, 2)
    verified = signed.verify(NET.committee)
    assert verified.statement == VoteData(DIGEST, 3, 2) and verified.signer == 2


def test_signature_does_not_carry_over_to_another_chain() -> None:
    other = Committee.of("other-chain", NET.committee.public_keys)
    signed = NET.keys[2].sign(VoteData(DIGEST, 3, 2), NET.chain_id, 2)
    with pytest.raises(BadSignature):
        signed.verify(other)


def test_sign_bytes_are_domain_separated() -> None:
    vote, proposal = VoteData(DIGEST, 3, 2), ProposalData(3, DIGEST)
    assert sign_bytes(vote, NET.chain_id) != sign_bytes(proposal, NET.chain_id)
    sig = NET.keys[0].sign(proposal, NET.chain_id, 0).signature
    with pytest.raises(BadSignature):
        Signed(vote, 0, sig).verify(NET.committee)


@pytest.mark.parametrize("signer", [1, 4, 1000])
def test_wrong_or_unknown_signer_is_rejected(signer: int) -> None:
    sig = NET.keys[0].sign(VoteData(DIGEST, 1, 1), NET.chain_id, 0).signature
    with pytest.raises(BadSignature):
        Signed(VoteData(DIGEST, 1, 1), signer, sig).verify(NET.committee)


def test_verified_cannot_be_forged_by_construction() -> None:
    with pytest.raises(TypeError):
        Verified(VoteData(DIGEST, 1, 1), 0, b"\x00" * 64)


@pytest.mark.parametrize(
    ("n", "f", "quorum"), [(1, 0, 1), (4, 1, 3), (7, 2, 5), (10, 3, 7), (5, 1, 4)]
)
def test_committee_thresholds(n: int, f: int, quorum: int) -> None:
    c = Committee.of("c", [bytes([i]) * 32 for i in range(n)])
    assert (c.f, c.quorum, c.validity) == (f, quorum, f + 1)
    assert 2 * c.quorum - n >= f + 1  # two quorums share an honest validator
