"""One consensus core fed crafted, verified events: the protocol rules one by one."""

from __future__ import annotations

import ast
import pathlib
from dataclasses import replace

import pytest

import ordering.core
from delivery.receipt import commit_proof
from ordering.blocktree import CommittedTip
from ordering.core import Restored
from ordering.events import (
    Action,
    BlocksReceived,
    BlocksRequested,
    Broadcast,
    Commit,
    CommitWitness,
    Ignored,
    Persist,
    ProposalReceived,
    Rejected,
    ResetTimer,
    Send,
    TimeoutReceived,
    TimerFired,
    VerifiedTimeout,
    VoteReceived,
)
from ordering.messages import (
    Block,
    BlockRequest,
    BlockResponse,
    Proposal,
    Timeout,
    TimeoutData,
    Vote,
    VoteData,
    block_hash,
    genesis_hash,
)
from ordering.safety import SafetyState
from tests.factory import Net

NET = Net(4)  # f = 1, quorum = 3; the leader of round r is r % 4


def of_type(actions: list[Action], kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


def sent_votes(actions: list[Action]) -> list[VoteData]:
    return [
        a.message.signed.statement for a in of_type(actions, Send) if isinstance(a.message, Vote)
    ]


def vote_event(voter: int, data: VoteData) -> VoteReceived:
    signed = NET.keys[voter].sign(data, NET.chain_id, voter)
    return VoteReceived(voter, signed.verify(NET.committee))


def test_replica_votes_for_a_valid_proposal_and_persists_first() -> None:
    core = NET.core(3)
    core.start()
    block = NET.block(1, NET.genesis_qc)
    actions = core.handle(ProposalReceived(1, NET.verified(block)))
    kinds = [type(a) for a in actions]
    assert kinds.index(Persist) < kinds.index(Send)
    (persist,) = of_type(actions, Persist)
    assert persist.state.highest_voted_round == 1
    (send,) = of_type(actions, Send)
    assert send.to == 2  # the leader of round 2 collects the votes of round 1
    assert send.message.signed.statement == VoteData(block_hash(block), 1, 1)


def test_no_second_vote_in_a_round_for_an_equivocating_leader() -> None:
    core = NET.core(3)
    core.handle(ProposalReceived(1, NET.verified(NET.block(1, NET.genesis_qc, b"a"))))
    second = NET.block(1, NET.genesis_qc, b"b")
    actions = core.handle(ProposalReceived(1, NET.verified(second)))
    assert sent_votes(actions) == []
    assert [a.reason for a in of_type(actions, Rejected)] == ["proposal-equivocation"]
    assert block_hash(second) not in core.tree  # a Byzantine leader cannot fill our memory


def test_no_vote_after_timing_out_in_the_round() -> None:
    core = NET.core(3)
    actions = core.handle(TimerFired(1))
    (persist,) = of_type(actions, Persist)
    assert persist.state.highest_voted_round == 1
    assert isinstance(of_type(actions, Broadcast)[0].message, Timeout)
    actions = core.handle(ProposalReceived(1, NET.verified(NET.block(1, NET.genesis_qc))))
    assert sent_votes(actions) == []


def test_next_leader_forms_a_qc_and_proposes_on_it() -> None:
    core = NET.core(2)  # leader of round 2
    block = NET.block(1, NET.genesis_qc)
    actions = core.handle(ProposalReceived(1, NET.verified(block)))
    data = VoteData(block_hash(block), 1, 1)
    assert of_type(core.handle(vote_event(0, data)), Broadcast) == []  # 2 of 3 votes
    actions = core.handle(vote_event(3, data))
    (broadcast,) = of_type(actions, Broadcast)
    proposal = broadcast.message
    assert isinstance(proposal, Proposal)
    assert proposal.block.round == 2 and proposal.block.parent_qc.block_hash == block_hash(block)
    assert len(proposal.block.parent_qc.signatures) == 3
    assert core.round == 2


def test_duplicate_and_equivocating_votes_count_once() -> None:
    core = NET.core(2)
    block = NET.block(1, NET.genesis_qc)
    data = VoteData(block_hash(block), 1, 1)
    core.handle(vote_event(0, data))
    core.handle(vote_event(0, data))
    actions = core.handle(vote_event(0, replace(data, block_hash=b"\x01" * 32)))
    assert [a.reason for a in of_type(actions, Rejected)] == ["vote-equivocation"]
    assert core.round == 1


def three_rounds() -> tuple[list[Block], list[Action], list[Action]]:
    """Blocks of rounds 1-3 proposed in turn to node 3: the actions of rounds 2 and 3."""
    core = NET.core(3)
    b1 = NET.block(1, NET.genesis_qc)
    b2 = NET.block(2, NET.qc(b1))
    b3 = NET.block(3, NET.qc(b2))
    core.handle(ProposalReceived(1, NET.verified(b1)))
    second = core.handle(ProposalReceived(2, NET.verified(b2)))
    return [b1, b2, b3], second, core.handle(ProposalReceived(3, NET.verified(b3)))


def test_two_chain_commit_needs_consecutive_rounds() -> None:
    (b1, b2, _), second, third = three_rounds()
    assert of_type(second, Commit) == []
    (commit,) = of_type(third, Commit)
    assert commit.block == b1 and commit.certificate == b2.parent_qc


def test_a_commit_comes_with_its_witness_which_proves_it() -> None:
    """The certified child that made the last commit final: a receipt's commit proof at once."""
    (_, b2, b3), second, actions = three_rounds()
    assert of_type(second, CommitWitness) == []
    (commit,) = of_type(actions, Commit)
    (witness,) = of_type(actions, CommitWitness)
    assert actions.index(witness) > actions.index(commit)  # stored after the commit it proves
    assert (witness.block, witness.certificate) == (b2, b3.parent_qc)
    assert witness.block_hash == block_hash(b2) == witness.certificate.block_hash
    proof = commit_proof([(commit.block, commit.certificate), (witness.block, witness.certificate)])
    assert proof == (b2.parent_qc, (b2,), b3.parent_qc)


def test_no_commit_across_a_round_gap() -> None:
    net = Net(7)  # node 6 leads none of rounds 1-5
    core = net.core(6)
    b1 = net.block(1, net.genesis_qc)
    core.handle(ProposalReceived(1, net.verified(b1)))
    qc1 = net.qc(b1)
    b3 = net.block(3, qc1)  # round 2 failed: b3 extends b1 with a TC for round 2
    actions = core.handle(ProposalReceived(3, net.verified(b3, net.tc(2, qc1))))
    assert [v.block_hash for v in sent_votes(actions)] == [block_hash(b3)]
    b4 = net.block(4, net.qc(b3))
    actions = core.handle(ProposalReceived(4, net.verified(b4)))
    assert of_type(actions, Commit) == []  # b1 (round 1) and b3 (round 3) are not consecutive
    b5 = net.block(5, net.qc(b4))
    commits = of_type(core.handle(ProposalReceived(5, net.verified(b5))), Commit)
    assert [c.block for c in commits] == [b1, b3]  # b4 certified in round 4 = 3 + 1


def test_timeouts_form_a_tc_and_the_next_leader_proposes_with_it() -> None:
    core = NET.core(2)  # leader of round 2
    core.handle(TimerFired(1))
    for voter in (0, 1):
        signed = NET.keys[voter].sign(TimeoutData(1, 0), NET.chain_id, voter)
        event = VerifiedTimeout(signed.verify(NET.committee), NET.genesis_qc, None)
        actions = core.handle(TimeoutReceived(voter, event))
    (broadcast,) = [a for a in of_type(actions, Broadcast) if isinstance(a.message, Proposal)]
    assert broadcast.message.last_round_tc.round == 1
    assert core.round == 2


def test_f_plus_one_timeouts_make_a_node_join() -> None:
    core = NET.core(3)
    signed = NET.keys[0].sign(TimeoutData(1, 0), NET.chain_id, 0)
    event = VerifiedTimeout(signed.verify(NET.committee), NET.genesis_qc, None)
    assert of_type(core.handle(TimeoutReceived(0, event)), Broadcast) == []
    signed = NET.keys[1].sign(TimeoutData(1, 0), NET.chain_id, 1)
    event = VerifiedTimeout(signed.verify(NET.committee), NET.genesis_qc, None)
    (broadcast,) = of_type(core.handle(TimeoutReceived(1, event)), Broadcast)
    assert isinstance(broadcast.message, Timeout)


def test_back_off_grows_per_failed_round_and_resets_on_a_qc() -> None:
    core = NET.core(3)
    core.start()
    durations = []
    for r in (1, 2, 3):
        tc = NET.tc(r, NET.genesis_qc)
        signed = NET.keys[0].sign(TimeoutData(r + 1, 0), NET.chain_id, 0)
        event = VerifiedTimeout(signed.verify(NET.committee), NET.genesis_qc, tc)
        timers = of_type(core.handle(TimeoutReceived(0, event)), ResetTimer)
        durations.append(timers[-1].duration_ms)
    assert durations == [1500, 2250, 3375]
    b = NET.block(4, NET.genesis_qc)
    actions = core.handle(ProposalReceived(0, NET.verified(b, NET.tc(3, NET.genesis_qc))))
    b5 = NET.block(5, NET.qc(b))
    timers = of_type(core.handle(ProposalReceived(1, NET.verified(b5))), ResetTimer)
    assert timers[-1].duration_ms == 1000 and sent_votes(actions)


def test_restart_from_persisted_state_never_votes_again_in_that_round() -> None:
    core = NET.core(3)
    block = NET.block(1, NET.genesis_qc, b"a")
    (persist,) = of_type(core.handle(ProposalReceived(1, NET.verified(block))), Persist)
    tip = CommittedTip(genesis_hash(NET.chain_id), 0, 0)
    restarted = NET.core(3, Restored(persist.state, tip))
    other = NET.block(1, NET.genesis_qc, b"b")
    assert sent_votes(restarted.handle(ProposalReceived(1, NET.verified(other)))) == []


def test_missing_ancestors_are_fetched_then_voted_on() -> None:
    core = NET.core(1)  # its vote for round 2 goes to node 3
    b1 = NET.block(1, NET.genesis_qc)
    b2 = NET.block(2, NET.qc(b1))
    actions = core.handle(ProposalReceived(2, NET.verified(b2)))
    (request,) = of_type(actions, Send)
    assert request.message == BlockRequest(block_hash(b1), 64) and request.to == 2
    assert sent_votes(actions) == []
    actions = core.handle(BlocksReceived(2, BlockResponse((b1,))))
    assert sent_votes(actions) == [VoteData(block_hash(b2), 2, 2)]


def test_unrequested_blocks_are_ignored_not_held_against_the_sender() -> None:
    core = NET.core(3)
    b1 = NET.block(1, NET.genesis_qc)
    actions = core.handle(BlocksReceived(2, BlockResponse((b1,))))
    assert [a.reason for a in of_type(actions, Ignored)] == ["blocks-unrequested"]
    assert of_type(actions, Rejected) == []  # a late answer: an honest peer may send it
    assert block_hash(b1) not in core.tree


def test_a_broken_chain_of_blocks_is_rejected_and_its_proved_prefix_kept() -> None:
    core = NET.core(1)
    b1 = NET.block(1, NET.genesis_qc)
    b2 = NET.block(2, NET.qc(b1))
    stranger = NET.block(1, NET.genesis_qc, b"not b2's parent")
    core.handle(ProposalReceived(2, NET.verified(NET.block(3, NET.qc(b2)))))
    actions = core.handle(BlocksReceived(2, BlockResponse((b2, stranger))))
    assert [a.reason for a in of_type(actions, Rejected)] == ["blocks-broken-chain"]
    assert block_hash(b2) in core.tree and block_hash(stranger) not in core.tree


def test_a_proposal_for_a_later_round_is_ignored_not_rejected() -> None:
    core = NET.core(3)
    b5 = NET.block(5, NET.genesis_qc)
    actions = core.handle(ProposalReceived(1, NET.verified(b5)))
    assert [a.reason for a in of_type(actions, Ignored)] == ["proposal-future-round"]
    assert of_type(actions, Rejected) == []


def test_block_requests_are_served_newest_first() -> None:
    core = NET.core(3)
    b1 = NET.block(1, NET.genesis_qc)
    b2 = NET.block(2, NET.qc(b1))
    core.handle(ProposalReceived(1, NET.verified(b1)))
    core.handle(ProposalReceived(2, NET.verified(b2)))
    (send,) = core.handle(BlocksRequested(0, BlockRequest(block_hash(b2), 10)))
    assert send.message == BlockResponse((b2, b1))


def test_restored_core_starts_after_its_highest_qc() -> None:
    b1 = NET.block(1, NET.genesis_qc)
    state = SafetyState(5, NET.qc(b1))
    core = NET.core(3, Restored(state, CommittedTip(genesis_hash(NET.chain_id), 0, 0)))
    assert core.round == 2


PURE_PACKAGES = ["ordering"]
FORBIDDEN = {"trio", "socket", "time", "random", "asyncio", "threading", "os", "datetime"}


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_cores_import_no_io_clock_or_randomness(package: str) -> None:
    root = pathlib.Path(__file__).parent.parent / package
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path} imports {name}"


def _time_out_round_1(core: ordering.core.ConsensusCore) -> None:
    """Node ``core`` times out in round 1 and hears two others do so: a TC for round 1."""
    core.handle(TimerFired(1))
    for voter in (0, 1):
        signed = NET.keys[voter].sign(TimeoutData(1, 0), NET.chain_id, voter)
        event = VerifiedTimeout(signed.verify(NET.committee), NET.genesis_qc, None)
        core.handle(TimeoutReceived(voter, event))
    assert core.last_tc is not None and core.last_tc.round == 1


@pytest.mark.parametrize(
    ("proposal", "cause"),
    [
        ("none", "no-proposal"),  # the leader of round 1 never reached us
        ("before", "no-quorum"),  # we voted for it; the round failed anyway
        ("after-timeout", "not-voted"),  # it came after we gave up on the round
        ("invalid", "not-voted"),  # it came, and we refused it
    ],
)
def test_a_failed_round_is_told_by_what_this_node_saw_of_it(proposal: str, cause: str) -> None:
    core = NET.core(3)
    core.start()
    block = NET.block(1, NET.genesis_qc)
    if proposal == "before":
        assert sent_votes(core.handle(ProposalReceived(1, NET.verified(block))))
    if proposal == "invalid":
        bad = NET.block(1, NET.genesis_qc, b"invalid")  # a payload the app refuses
        assert not sent_votes(core.handle(ProposalReceived(1, NET.verified(bad))))
    if proposal == "after-timeout":
        core.handle(TimerFired(1))
        assert not sent_votes(core.handle(ProposalReceived(1, NET.verified(block))))
    _time_out_round_1(core)
    assert core.last_tc_cause == cause
