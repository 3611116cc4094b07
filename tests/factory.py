"""Builders for committees, keys, blocks and certificates used across tests."""

from __future__ import annotations

from ops.sim.node import LabelPayload
from ordering.core import ConsensusCore, CoreConfig, Restored
from ordering.events import Commit, VerifiedProposal
from ordering.leader import leader_of
from ordering.messages import (
    Block,
    Proposal,
    ProposalData,
    QuorumCert,
    TimeoutCert,
    TimeoutData,
    VoteData,
    block_hash,
    genesis_qc,
)
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import SigningKey, sign_bytes

CHAIN = "test-chain"


class Net:
    """A committee of n validators with deterministic keys."""

    def __init__(self, n: int = 4, chain_id: str = CHAIN) -> None:
        self.keys = [SigningKey.derive(f"{chain_id}/{i}") for i in range(n)]
        self.committee = Committee.of(chain_id, [k.public_key for k in self.keys])
        self.chain_id = chain_id

    @property
    def genesis_qc(self) -> QuorumCert:
        return genesis_qc(self.chain_id)

    def core(self, me: int, restored: Restored | None = None) -> ConsensusCore:
        return ConsensusCore(
            self.committee, me, self.keys[me], LabelPayload(str(me)), CoreConfig(), restored
        )

    def block(self, round_: int, parent: QuorumCert, payload: bytes = b"p") -> Block:
        return Block(
            parent.height + 1, round_, leader_of(round_, self.committee.n), parent, payload
        )

    def proposal(self, block: Block, tc: TimeoutCert | None = None) -> Proposal:
        leader = block.proposer
        signed = self.keys[leader].sign(
            ProposalData(block.round, block_hash(block)), self.chain_id, leader
        )
        return Proposal(block, tc, signed)

    def verified(self, block: Block, tc: TimeoutCert | None = None) -> VerifiedProposal:
        p = self.proposal(block, tc)
        return VerifiedProposal(block, block_hash(block), tc, p.signed)

    def qc(self, block: Block, signers: list[int] | None = None) -> QuorumCert:
        signers = signers if signers is not None else list(range(self.committee.quorum))
        data = VoteData(block_hash(block), block.round, block.height)
        msg = sign_bytes(data, self.chain_id)
        return QuorumCert(data, tuple((s, self.keys[s].sign_raw(msg)) for s in sorted(signers)))

    def tc(self, round_: int, high_qc: QuorumCert, signers: list[int] | None = None) -> TimeoutCert:
        signers = signers if signers is not None else list(range(self.committee.quorum))
        entries = []
        for s in sorted(signers):
            msg = sign_bytes(TimeoutData(round_, high_qc.round), self.chain_id)
            entries.append((s, high_qc.round, self.keys[s].sign_raw(msg)))
        return TimeoutCert(round_, high_qc, tuple(entries))


def commit_of(net: Net, payload: bytes, round_: int = 1) -> Commit:
    """A Commit action as the core emits it: a block with a real quorum certificate."""
    block = net.block(round_, net.genesis_qc, payload)
    return Commit(block, block_hash(block), net.qc(block))
