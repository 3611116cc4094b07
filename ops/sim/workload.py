"""Client transactions in the simulator, and the fairness measured on what commits.

Clients send each transaction to every validator (after a network delay, with
the scenario's drops before GST). The ground truth is the send time. After a
run, the committed order is compared with it:

- front-running success: of the attacker's transactions committed with their
  victims, the share ordered ahead of the victim;
- order inversions: of all pairs of honest transactions, the share committed in
  the opposite order to their send times;
- inclusion delay: for a transaction that reached every live honest validator
  at time T, the committed height that holds it minus the highest height any
  honest validator had voted for by T (blocks), and the time from T to its
  first commit (ms) — measured separately for a censor's targets.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field

from ops.sim.fair_adversary import is_censored
from ops.sim.scenario import Scenario
from ordering.events import Commit
from ordering.fair.app import FairPayload
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError


@dataclass
class FairnessStats:
    attacks: int = 0  # attacker/victim pairs that both committed
    attack_wins: int = 0
    led_attacks: int = 0  # ...of which the victim's block was proposed by the attacker
    led_wins: int = 0
    pairs: int = 0
    inversions: int = 0
    inclusion_blocks: list[int] = field(default_factory=list)
    inclusion_ms: list[float] = field(default_factory=list)
    censored_blocks: list[int] = field(default_factory=list)
    censored_ms: list[float] = field(default_factory=list)
    late: int = 0  # delivered to all after GST but ordered more than 2 blocks later


@dataclass
class Workload:
    scenario: Scenario
    rng: random.Random
    sent: dict[bytes, float] = field(default_factory=dict)  # honest client tx -> send time
    expected: dict[bytes, int] = field(default_factory=dict)  # deliveries still to come
    delivered_all: dict[bytes, float] = field(default_factory=dict)
    attack_pairs: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)  # tx -> (by, victim)
    _vote_times: list[float] = field(default_factory=list)
    _vote_heights: list[int] = field(default_factory=list)

    def on_sent(self, digest: bytes, now: float, receivers: int) -> None:
        self.sent[digest] = now
        self.expected[digest] = receivers

    def on_delivered(self, digest: bytes, now: float) -> None:
        left = self.expected.get(digest)
        if left is None:
            return
        if left <= 1:
            del self.expected[digest]
            self.delivered_all[digest] = now
        else:
            self.expected[digest] = left - 1

    def on_honest_vote(self, height: int, now: float) -> None:
        if not self._vote_heights or height > self._vote_heights[-1]:
            self._vote_times.append(now)
            self._vote_heights.append(height)

    def voted_height_at(self, now: float) -> int:
        i = bisect.bisect_right(self._vote_times, now)
        return self._vote_heights[i - 1] if i else 0

    def measure(self, log: list[Commit], commit_time: dict[int, float]) -> FairnessStats:
        """Fairness of the committed log (from the longest honest log)."""
        stats = FairnessStats()
        position: dict[bytes, tuple[int, int]] = {}
        proposer: dict[bytes, int] = {}
        for commit in log:
            for i, digest in enumerate(_order_of(commit)):
                position.setdefault(digest, (commit.block.height, i))
                proposer.setdefault(digest, commit.block.proposer)
        self._front_running(position, proposer, stats)
        self._inversions(position, stats)
        self._inclusion(position, commit_time, stats)
        return stats

    def _front_running(
        self,
        position: dict[bytes, tuple[int, int]],
        proposer: dict[bytes, int],
        stats: FairnessStats,
    ) -> None:
        for mine, (attacker, victim) in self.attack_pairs.items():
            if mine not in position or victim not in position:
                continue
            won = position[mine] < position[victim]
            stats.attacks += 1
            stats.attack_wins += won
            if proposer[victim] == attacker:  # the attacker led the victim's block
                stats.led_attacks += 1
                stats.led_wins += won

    def _inversions(self, position: dict[bytes, tuple[int, int]], stats: FairnessStats) -> None:
        by_send = sorted((t, d) for d, t in self.sent.items() if d in position)
        ranks = [position[d] for _, d in by_send]
        stats.pairs += len(ranks) * (len(ranks) - 1) // 2
        stats.inversions += _count_inversions(ranks)

    def _inclusion(
        self,
        position: dict[bytes, tuple[int, int]],
        commit_time: dict[int, float],
        stats: FairnessStats,
    ) -> None:
        for digest, t_all in self.delivered_all.items():
            if digest not in position:
                continue
            height = position[digest][0]
            blocks = height - self.voted_height_at(t_all)
            ms = max(0.0, commit_time.get(height, t_all) - t_all)
            if is_censored(digest):
                stats.censored_blocks.append(blocks)
                stats.censored_ms.append(ms)
            else:
                stats.inclusion_blocks.append(blocks)
                stats.inclusion_ms.append(ms)
            if t_all >= self.scenario.gst_ms and blocks > 2:
                stats.late += 1


def _order_of(commit: Commit) -> tuple[bytes, ...]:
    try:
        payload: FairPayload = codec.decode(FairPayload, commit.block.payload)
    except DecodeError:
        return ()
    return payload.order


def _count_inversions(values: list[tuple[int, int]]) -> int:
    """Pairs i < j with values[i] > values[j], by merge sort."""
    if len(values) < 2:
        return 0
    mid = len(values) // 2
    left, right = values[:mid], values[mid:]
    count = _count_inversions(left) + _count_inversions(right)
    left.sort()
    right.sort()
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            i += 1
        else:
            count += len(left) - i
            j += 1
    return count
