"""What the consensus core reacts to (events, past tense) and asks for (actions).

The driver — the trio node or the simulator — turns network input and timers into
events and carries out actions in order. Order matters: a ``Persist`` comes
before the ``Send``/``Broadcast`` whose signature it guards, and the driver must
finish it before sending.
"""

from __future__ import annotations

from dataclasses import dataclass

from ordering.messages import (
    Block,
    BlockRequest,
    BlockResponse,
    ConsensusMessage,
    ProposalData,
    QuorumCert,
    TimeoutCert,
    TimeoutData,
    VoteData,
)
from ordering.safety import SafetyState
from sequencer_net.base.signing import Signed, Verified

# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class VerifiedProposal:
    """A proposal whose signature, leader and certificates were checked."""

    block: Block
    block_hash: bytes
    last_round_tc: TimeoutCert | None
    signed: Signed[ProposalData]


@dataclass(frozen=True, slots=True)
class VerifiedTimeout:
    """A timeout whose signature and attached certificates were checked."""

    timeout: Verified[TimeoutData]
    high_qc: QuorumCert
    last_round_tc: TimeoutCert | None
    vote: Verified[VoteData] | None = None
    report: bytes = b""


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    sender: int
    proposal: VerifiedProposal


@dataclass(frozen=True, slots=True)
class VoteReceived:
    sender: int
    vote: Verified[VoteData]
    report: bytes = b""


@dataclass(frozen=True, slots=True)
class TimeoutReceived:
    sender: int
    timeout: VerifiedTimeout


@dataclass(frozen=True, slots=True)
class BlocksRequested:
    sender: int
    request: BlockRequest


@dataclass(frozen=True, slots=True)
class BlocksReceived:
    sender: int
    response: BlockResponse


@dataclass(frozen=True, slots=True)
class TimerFired:
    round: int


@dataclass(frozen=True, slots=True)
class Wakeup:
    """The driver's nudge (new work, heartbeat): a leader asks its app again for a payload."""


Event = (
    ProposalReceived
    | VoteReceived
    | TimeoutReceived
    | BlocksRequested
    | BlocksReceived
    | TimerFired
    | Wakeup
)

# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    to: int
    message: ConsensusMessage


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send to every other validator."""

    message: ConsensusMessage


@dataclass(frozen=True, slots=True)
class Persist:
    """Durably store the safety state (and the block voted for); complete it before sending.

    Storing the block matters when every validator restarts at once: a
    certified block that is not committed yet lives only in memory, and the
    next leader must extend it. Its 2f+1 voters stored it, so peers can serve it.
    """

    state: SafetyState
    blocks: tuple[tuple[bytes, Block], ...] = ()


@dataclass(frozen=True, slots=True)
class ResetTimer:
    """Cancel the round timer and fire ``TimerFired(round)`` after ``duration_ms``."""

    round: int
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Commit:
    """Deliver a committed block, in height order, with the QC that certifies it."""

    block: Block
    block_hash: bytes
    certificate: QuorumCert


@dataclass(frozen=True, slots=True)
class CommitWitness:
    """The block, not yet committed, whose QC made the last :class:`Commit` final.

    With that QC it is the last commit's commit proof (two-chain rule: a child
    certified in the round right after its parent's). A node keeps it so that
    it can prove a commit at once rather than when the child itself commits.
    """

    block: Block
    block_hash: bytes
    certificate: QuorumCert


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input that passed signature checks but broke a protocol rule."""

    sender: int
    reason: str  # short and stable, e.g. "vote-equivocation": a metric label
    detail: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """An input not acted on though its sender may be honest (late, or ahead of us).

    Unlike :class:`Rejected` it proves nothing against the sender, so it must
    never count against it (the ``[IGNORE]`` of the Ethereum consensus specs).
    """

    sender: int
    reason: str  # short and stable, e.g. "proposal-future-round": a metric label
    detail: str


Action = Send | Broadcast | Persist | ResetTimer | Commit | CommitWitness | Rejected | Ignored
