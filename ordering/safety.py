"""Safety rules: when a validator may sign a vote or a timeout (Jolteon / DiemBFT v4).

Theory of operation: a validator votes at most once per round, only for a block
that directly extends the previous round's QC, or — after a timeout certificate
for the previous round — one that extends a QC at least as high as every
highest-QC reported in that TC. Signing a timeout for a round forbids voting in
it afterwards. Both rules read and raise ``SafetyState``, which the node must
write to disk before the signature leaves it; that is what makes a crashed and
restarted node unable to equivocate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ordering.messages import QuorumCert, TimeoutCert


@dataclass(frozen=True, slots=True)
class SafetyState:
    """What a validator must remember across crashes to never contradict itself."""

    highest_voted_round: int
    high_qc: QuorumCert


def is_safe_to_vote(
    state: SafetyState, block_round: int, qc: QuorumCert, tc: TimeoutCert | None
) -> bool:
    """Vote rule: a fresh round, directly after a QC, or after a TC without going back."""
    if block_round <= state.highest_voted_round:
        return False
    if block_round == qc.round + 1:
        return True
    return tc is not None and block_round == tc.round + 1 and qc.round >= tc.high_qc.round


def after_vote(state: SafetyState, block_round: int) -> SafetyState:
    return replace(state, highest_voted_round=max(state.highest_voted_round, block_round))


def after_timeout(state: SafetyState, round_: int) -> SafetyState:
    """Signing a timeout for ``round_`` forbids any later vote in it."""
    return replace(state, highest_voted_round=max(state.highest_voted_round, round_))


def with_high_qc(state: SafetyState, qc: QuorumCert) -> SafetyState:
    if qc.round <= state.high_qc.round:
        return state
    return replace(state, high_qc=qc)
