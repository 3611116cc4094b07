"""Invariants checked over a whole simulated run.

- agreement: no two honest nodes commit different blocks at one height, and each
  honest node commits heights 1, 2, 3, ... once each, across restarts;
- no honest double vote: no two different votes (or proposals) signed by one
  honest key for one round ever leave it, across crashes and restarts — whether
  sent as a vote, attached to a timeout or inside a certificate;
- liveness after GST: checked by the engine from the commit times recorded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ordering.events import Commit
from ordering.messages import BlockResponse, ConsensusMessage, Proposal, QuorumCert, Timeout, Vote


@dataclass
class SafetyChecker:
    honest: frozenset[int]
    violations: list[str] = field(default_factory=list)
    committed: dict[int, bytes] = field(default_factory=dict)  # height -> hash
    last_height: dict[int, int] = field(default_factory=dict)  # node -> height
    commit_times: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    _signed: dict[tuple[str, int, int], bytes] = field(default_factory=dict)

    def on_outgoing(self, node: int, message: ConsensusMessage) -> None:
        """Record every signature of ``node`` that leaves it, however it is carried.

        Signatures made but never sent (a crash between signing and persisting)
        are invisible to the world and so are not equivocation.
        """
        if node not in self.honest:
            return
        for kind, round_, digest in _own_statements(node, message):
            self._check_once((kind, node, round_), digest)

    def _check_once(self, key: tuple[str, int, int], digest: bytes) -> None:
        earlier = self._signed.setdefault(key, digest)
        if earlier != digest:
            kind, node, round_ = key
            self.violations.append(f"double {kind}: node {node} signed two in round {round_}")

    def on_commit(self, node: int, commit: Commit, now: float) -> None:
        if node not in self.honest:
            return
        height = commit.block.height
        expected = self.last_height.get(node, 0) + 1
        if height != expected:
            self.violations.append(f"node {node} committed height {height}, expected {expected}")
        self.last_height[node] = max(height, self.last_height.get(node, 0))
        agreed = self.committed.setdefault(height, commit.block_hash)
        if agreed != commit.block_hash:
            self.violations.append(f"agreement: two blocks committed at height {height}")
        self.commit_times.setdefault(node, []).append((now, height))

    def height_at(self, time_ms: float) -> int:
        """Highest height any honest node had committed by ``time_ms``."""
        return max(
            (h for times in self.commit_times.values() for t, h in times if t <= time_ms),
            default=0,
        )


def _own_statements(node: int, message: ConsensusMessage) -> list[tuple[str, int, bytes]]:
    """(kind, round, block hash) of every vote or proposal signed by ``node`` in ``message``."""
    out: list[tuple[str, int, bytes]] = []
    qcs: list[QuorumCert] = []
    match message:
        case Proposal(block, tc, signed):
            out.append(("proposal", signed.statement.round, signed.statement.block_hash))
            qcs += [block.parent_qc] + ([tc.high_qc] if tc else [])
        case Vote(signed):
            out.append(("vote", signed.statement.round, signed.statement.block_hash))
        case Timeout(_, high_qc, tc, vote):
            qcs += [high_qc] + ([tc.high_qc] if tc else [])
            if vote is not None:
                out.append(("vote", vote.statement.round, vote.statement.block_hash))
        case BlockResponse(blocks):
            qcs += [b.parent_qc for b in blocks]
    for qc in qcs:
        if any(signer == node for signer, _ in qc.signatures):
            out.append(("vote", qc.round, qc.block_hash))
    return out
