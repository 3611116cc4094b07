"""Invariants checked over a whole simulated run.

- agreement: no two honest nodes commit different blocks at one height, and each
  honest node commits heights 1, 2, 3, ... once each, across restarts;
- no honest double vote: an honest key never signs two different votes (or two
  different proposals) for one round, across crashes and restarts;
- liveness after GST: checked by the engine from the commit times recorded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ordering.events import Commit
from ordering.messages import ProposalData, VoteData


@dataclass
class SafetyChecker:
    honest: frozenset[int]
    violations: list[str] = field(default_factory=list)
    committed: dict[int, bytes] = field(default_factory=dict)  # height -> hash
    last_height: dict[int, int] = field(default_factory=dict)  # node -> height
    commit_times: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    _signed: dict[tuple[str, int, int], bytes] = field(default_factory=dict)

    def on_sign(self, node: int, statement: object) -> None:
        if node not in self.honest:
            return
        if isinstance(statement, VoteData):
            self._check_once(("vote", node, statement.round), statement.block_hash)
        elif isinstance(statement, ProposalData):
            self._check_once(("proposal", node, statement.round), statement.block_hash)

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
