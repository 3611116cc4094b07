"""Seed sweeps: many simulated runs, spread over processes, folded into one summary.

Run ``k`` of a sweep uses seed ``start_seed + k`` and committee size
``nodes[k % len(nodes)]``; a failing run is replayed exactly by
``seqnet sim --nodes N --start-seed SEED --seeds 1`` with the same faults.
"""

from __future__ import annotations

import multiprocessing
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from ops.sim.engine import RunResult, simulate
from ops.sim.scenario import FaultSpec, Scenario, draw
from ordering.fair.policies import DEFAULT_POLICY
from sequencer_net.base.committee import max_faulty


@dataclass(frozen=True, slots=True)
class SweepConfig:
    nodes: tuple[int, ...] = (4, 7, 10)
    byzantine: int | None = None  # None: f for each committee size
    crashed: int = 0  # honest nodes that crash before GST and never return
    faults: str = "all"
    seeds: int = 100
    start_seed: int = 0
    gst_ms: int = 3000
    liveness_bound_ms: int = 60_000
    target_commits: int = 20
    jobs: int = 1
    policy: str = DEFAULT_POLICY

    def byzantine_for(self, n: int) -> int:
        return max_faulty(n) if self.byzantine is None else self.byzantine

    def scenarios(self) -> Iterator[Scenario]:
        spec = FaultSpec.parse(self.faults)
        for k in range(self.seeds):
            n = self.nodes[k % len(self.nodes)]
            scenario = draw(
                self.start_seed + k,
                n,
                self.byzantine_for(n),
                spec,
                gst_ms=self.gst_ms,
                permanent_crashes=self.crashed,
            )
            yield _with_bounds(scenario, self)


def _with_bounds(scenario: Scenario, config: SweepConfig) -> Scenario:
    return replace(
        scenario,
        liveness_bound_ms=config.liveness_bound_ms,
        target_commits=config.target_commits,
        policy=config.policy,
    )


@dataclass
class Summary:
    runs: int = 0
    by_size: Counter[int] = field(default_factory=Counter)
    commits: int = 0
    rounds_timed_out: int = 0
    events: int = 0
    liveness_ms: list[float] = field(default_factory=list)
    max_round_gap: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    attacks: Counter[str] = field(default_factory=Counter)
    failures: list[RunResult] = field(default_factory=list)

    def add(self, result: RunResult) -> None:
        self.runs += 1
        self.by_size[result.scenario.n] += 1
        self.commits += result.height
        self.rounds_timed_out += result.rounds_timed_out
        self.events += result.events
        self.max_round_gap = max(self.max_round_gap, result.max_round_gap)
        if result.liveness_ms is not None:
            self.liveness_ms.append(result.liveness_ms)
        self.rejected.update(result.rejected)
        self.attacks.update(result.scenario.byzantine.values())
        if not result.ok:
            self.failures.append(result)

    def liveness_quantiles(self) -> tuple[float, float, float] | None:
        if len(self.liveness_ms) < 2:
            return None
        q = statistics.quantiles(self.liveness_ms, n=100, method="inclusive")
        return q[49], q[98], max(self.liveness_ms)


def sweep(config: SweepConfig, on_result: Callable[[RunResult], None] | None = None) -> Summary:
    """Run every scenario of ``config``; ``on_result`` sees each result as it lands."""
    summary = Summary()
    scenarios = list(config.scenarios())
    if config.jobs <= 1:
        results: Iterator[RunResult] = map(simulate, scenarios)
        _fold(results, summary, on_result)
    else:
        with multiprocessing.get_context("spawn").Pool(config.jobs) as pool:
            _fold(pool.imap_unordered(simulate, scenarios, chunksize=4), summary, on_result)
    summary.failures.sort(key=lambda r: (r.scenario.seed, r.scenario.n))
    return summary


def _fold(
    results: Iterator[RunResult],
    summary: Summary,
    on_result: Callable[[RunResult], None] | None,
) -> None:
    for result in results:
        summary.add(result)
        if on_result is not None:
            on_result(result)
