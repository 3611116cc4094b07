"""Stateless checks that turn decoded consensus messages into verified events.

Theory of operation: everything here depends only on the message and the
committee — signatures, quorum sizes, who leads a round, how a block must point
at its certificates — so a message that fails is invalid for every honest node
and the sender can be blamed. Checks that depend on the node's state (round,
known blocks, safety) live in the core. Each rule raises :class:`Invalid` with a
short reason that drivers count in metrics.

Certificates repeat (the same QC rides in many proposals and timeouts), so a
verified certificate is remembered in a small bounded cache.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence

from ordering.events import (
    BlocksReceived,
    BlocksRequested,
    Event,
    ProposalReceived,
    TimeoutReceived,
    VerifiedProposal,
    VerifiedTimeout,
    VoteReceived,
)
from ordering.leader import leader_of
from ordering.messages import (
    BlockRequest,
    BlockResponse,
    ConsensusMessage,
    Proposal,
    QuorumCert,
    Timeout,
    TimeoutCert,
    TimeoutData,
    Vote,
    genesis_qc,
)
from ordering.messages import block_hash as compute_block_hash
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import BadSignature, S, Signed, Verified, sign_bytes

CACHE_SIZE = 512


class Invalid(ValueError):
    """A message that breaks a stateless protocol rule; ``reason`` is metric-friendly."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class MessageValidator:
    """Verifies consensus messages for one committee."""

    def __init__(self, committee: Committee) -> None:
        self.committee = committee
        self._genesis_qc = genesis_qc(committee.chain_id)
        self._verified: OrderedDict[QuorumCert | TimeoutCert, None] = OrderedDict()

    # ------------------------------------------------------------ entry point

    def to_event(self, sender: int, message: ConsensusMessage) -> Event:
        """The verified event for ``message`` from ``sender``, or raise :class:`Invalid`."""
        match message:
            case Proposal():
                return ProposalReceived(sender, self.check_proposal(message))
            case Vote():
                # [REJECT] nobody votes for the genesis: it is certified by definition
                if message.signed.statement.round == 0 or message.signed.statement.height == 0:
                    raise Invalid("bad-vote", "vote for round or height 0")
                return VoteReceived(sender, self._check_signed(message.signed), message.report)
            case Timeout():
                return TimeoutReceived(sender, self.check_timeout(message))
            case BlockRequest():
                return BlocksRequested(sender, message)
            case BlockResponse():
                return BlocksReceived(sender, message)
        raise Invalid("unknown-message", type(message).__name__)

    # ------------------------------------------------------------ messages

    def check_proposal(self, msg: Proposal) -> VerifiedProposal:
        block, statement = msg.block, msg.signed.statement
        digest = compute_block_hash(block)
        # [REJECT] the signature names this block and its round
        if statement.block_hash != digest or statement.round != block.round:
            raise Invalid("proposal-mismatch", "signed (round, hash) differs from the block")
        # [REJECT] only the round's leader proposes, and signs as itself
        leader = leader_of(block.round, self.committee.n)
        if msg.signed.signer != leader or block.proposer != leader:
            raise Invalid("wrong-leader", f"round {block.round} leader is {leader}")
        # [REJECT] the block sits right above its parent certificate
        if block.height != block.parent_qc.height + 1 or block.round <= block.parent_qc.round:
            raise Invalid("bad-block-position", "height/round do not follow parent QC")
        self._check_justification(block.round, block.parent_qc, msg.last_round_tc)
        self.check_qc(block.parent_qc)
        if msg.last_round_tc is not None:
            self.check_tc(msg.last_round_tc)
        self._check_signed(msg.signed)
        return VerifiedProposal(block, digest, msg.last_round_tc, msg.signed)

    def _check_justification(self, round_: int, qc: QuorumCert, tc: TimeoutCert | None) -> None:
        # [REJECT] a round is entered by a QC or a TC of the round before it
        if tc is None:
            if qc.round + 1 != round_:
                raise Invalid("unjustified-round", f"QC round {qc.round}, no TC")
            return
        if tc.round + 1 != round_:
            raise Invalid("unjustified-round", f"TC round {tc.round} for round {round_}")
        # [REJECT] after a TC the block extends the highest QC the TC reports
        if qc.round < tc.high_qc.round:
            raise Invalid("stale-parent", "parent QC older than the TC's highest QC")

    def check_timeout(self, msg: Timeout) -> VerifiedTimeout:
        statement = msg.signed.statement
        # [REJECT] the signed highest-QC round is the QC carried
        if statement.high_qc_round != msg.high_qc.round or statement.round <= msg.high_qc.round:
            raise Invalid("timeout-mismatch", "high_qc does not match the signed round")
        # [REJECT] a vote riding on a timeout is the sender's own, in the same round
        vote = msg.vote
        if vote is not None and (
            vote.signer != msg.signed.signer or vote.statement.round != statement.round
        ):
            raise Invalid("timeout-mismatch", "attached vote is not the sender's in this round")
        self.check_qc(msg.high_qc)
        if msg.last_round_tc is not None:
            self.check_tc(msg.last_round_tc)
        verified_vote = None if vote is None else self._check_signed(vote)
        return VerifiedTimeout(
            self._check_signed(msg.signed),
            msg.high_qc,
            msg.last_round_tc,
            verified_vote,
            msg.report,
        )

    # ------------------------------------------------------------ certificates

    def check_qc(self, qc: QuorumCert) -> None:
        """Raise :class:`Invalid` unless ``qc`` is the genesis QC or has a quorum of votes."""
        if qc == self._genesis_qc or qc in self._verified:
            return
        if qc.round == 0 or qc.height == 0:
            raise Invalid("bad-qc", "only the genesis QC has round or height 0")
        signers = [s for s, _ in qc.signatures]
        self._check_signers(signers, "bad-qc")
        message = sign_bytes(qc.vote, self.committee.chain_id)
        for signer, signature in qc.signatures:
            if not self.committee.verify(signer, message, signature):
                raise Invalid("bad-qc", f"bad vote signature from {signer}")
        self._remember(qc)

    def check_tc(self, tc: TimeoutCert) -> None:
        """Raise :class:`Invalid` unless ``tc`` holds a quorum of timeouts for its round."""
        if tc in self._verified:
            return
        self._check_signers([s for s, _, _ in tc.entries], "bad-tc")
        reported = [hqr for _, hqr, _ in tc.entries]
        if max(reported) != tc.high_qc.round or any(r >= tc.round for r in reported):
            raise Invalid("bad-tc", "reported QC rounds do not match the TC")
        self.check_qc(tc.high_qc)
        chain_id = self.committee.chain_id
        for signer, hqr, signature in tc.entries:
            message = sign_bytes(TimeoutData(tc.round, hqr), chain_id)
            if not self.committee.verify(signer, message, signature):
                raise Invalid("bad-tc", f"bad timeout signature from {signer}")
        self._remember(tc)

    def _check_signers(self, signers: Sequence[int], reason: str) -> None:
        if len(signers) < self.committee.quorum:
            raise Invalid(reason, f"{len(signers)} signers < quorum {self.committee.quorum}")
        if any(b <= a for a, b in itertools.pairwise(signers)):
            raise Invalid(reason, "signers not strictly increasing")
        if not self.committee.is_member(signers[-1]):
            raise Invalid(reason, f"signer {signers[-1]} not in committee")

    def _check_signed(self, signed: Signed[S]) -> Verified[S]:
        try:
            return signed.verify(self.committee)
        except BadSignature as exc:
            raise Invalid("bad-signature", str(exc)) from None

    def _remember(self, cert: QuorumCert | TimeoutCert) -> None:
        self._verified[cert] = None
        if len(self._verified) > CACHE_SIZE:
            self._verified.popitem(last=False)
