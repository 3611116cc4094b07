"""Stateless message checks: each [REJECT] rule, with the reason a driver counts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ordering.events import ProposalReceived, TimeoutReceived, VoteReceived
from ordering.messages import Proposal, QuorumCert, Timeout, TimeoutData, Vote, VoteData
from ordering.validation import Invalid, MessageValidator
from tests.factory import Net

NET = Net(4)
B1 = NET.block(1, NET.genesis_qc)
QC1 = NET.qc(B1)
B2 = NET.block(2, QC1)


def check(message: object) -> object:
    return MessageValidator(NET.committee).to_event(0, message)  # type: ignore[arg-type]


def reason_of(message: object) -> str:
    with pytest.raises(Invalid) as info:
        check(message)
    return info.value.reason


def test_valid_messages_become_events() -> None:
    assert isinstance(check(NET.proposal(B2)), ProposalReceived)
    vote = Vote(NET.keys[1].sign(VoteData(b"\x01" * 32, 2, 2), NET.chain_id, 1))
    assert isinstance(check(vote), VoteReceived)
    timeout = Timeout(NET.keys[1].sign(TimeoutData(2, 1), NET.chain_id, 1), QC1, None)
    assert isinstance(check(timeout), TimeoutReceived)


def test_proposal_from_a_non_leader() -> None:
    block = replace(B2, proposer=3)
    p = NET.proposal(replace(B2, proposer=2))
    forged = Proposal(block, None, NET.keys[3].sign(p.signed.statement, NET.chain_id, 3))
    assert reason_of(forged) in {"wrong-leader", "proposal-mismatch"}


def test_proposal_whose_signature_names_another_block() -> None:
    p = NET.proposal(B2)
    assert reason_of(replace(p, block=replace(B2, payload=b"other"))) == "proposal-mismatch"


def test_proposal_with_a_bad_signature() -> None:
    p = NET.proposal(B2)
    bad = replace(p, signed=replace(p.signed, signature=bytes(64)))
    assert reason_of(bad) == "bad-signature"


def test_proposal_must_be_justified_by_the_previous_round() -> None:
    assert reason_of(NET.proposal(NET.block(3, QC1))) == "unjustified-round"


def test_proposal_after_a_tc_must_not_go_below_the_tcs_high_qc() -> None:
    b2 = NET.block(2, QC1)
    qc2 = NET.qc(b2)
    tc3 = NET.tc(3, qc2)
    assert reason_of(NET.proposal(NET.block(4, QC1), tc3)) == "stale-parent"
    assert isinstance(check(NET.proposal(NET.block(4, qc2), tc3)), ProposalReceived)


def test_block_height_must_follow_its_parent() -> None:
    assert reason_of(NET.proposal(replace(B2, height=5))) == "bad-block-position"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda qc: replace(qc, signatures=qc.signatures[:2]),  # below quorum
        lambda qc: replace(qc, signatures=(qc.signatures[0],) * 3),  # duplicate signer
        lambda qc: replace(qc, signatures=tuple(reversed(qc.signatures))),  # unsorted
        lambda qc: replace(qc, signatures=(*qc.signatures[:2], (9, qc.signatures[2][1]))),
        lambda qc: replace(qc, signatures=(*qc.signatures[:2], (2, bytes(64)))),
        lambda qc: replace(qc, vote=replace(qc.vote, round=7)),  # signatures for another vote
    ],
    ids=["few", "duplicate", "unsorted", "non-member", "bad-sig", "other-vote"],
)
def test_bad_quorum_certificates(mutate: object) -> None:
    bad_qc: QuorumCert = mutate(QC1)  # type: ignore[operator]
    block = NET.block(bad_qc.round + 1, bad_qc)
    assert reason_of(NET.proposal(block)) == "bad-qc"


def test_bad_timeout_certificates() -> None:
    tc = NET.tc(2, QC1)
    lying = replace(tc, entries=tuple((s, 0, sig) for s, _, sig in tc.entries))
    assert reason_of(NET.proposal(NET.block(3, QC1), lying)) == "bad-tc"
    few = replace(tc, entries=tc.entries[:2])
    assert reason_of(NET.proposal(NET.block(3, QC1), few)) == "bad-tc"


def test_timeout_must_carry_the_qc_it_signed() -> None:
    timeout = Timeout(NET.keys[1].sign(TimeoutData(2, 0), NET.chain_id, 1), QC1, None)
    assert reason_of(timeout) == "timeout-mismatch"


def test_vote_for_genesis_is_rejected() -> None:
    vote = Vote(NET.keys[1].sign(VoteData(b"\x01" * 32, 0, 0), NET.chain_id, 1))
    assert reason_of(vote) == "bad-vote"
