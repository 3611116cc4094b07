"""Fairness sweeps: the same seeded runs under each ordering policy, then a table.

Each run: ``n`` validators on a map (latency from distance, little jitter),
clients sending 50 transactions per second from random places, one Byzantine
validator (a front-runner or a censor), no network faults, a fixed duration.
The committed order is compared with the clients' send times
(``ops.sim.workload``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from ops.sim.engine import RunResult, simulate
from ops.sim.scenario import FaultSpec, Scenario, draw

ATTACKERS = ("front-run", "front-run-naive", "censor")


@dataclass(frozen=True, slots=True)
class FairnessConfig:
    policies: tuple[str, ...] = ("arrival", "median-timestamp")
    nodes: int = 4
    attackers: tuple[str, ...] = ("front-run", "front-run-naive", "censor")
    seeds: int = 100
    start_seed: int = 0
    duration_ms: int = 2000
    tx_per_s: float = 50.0
    geography: bool = True
    jobs: int = 1

    def scenarios(self) -> list[Scenario]:
        out = []
        for attacker in self.attackers:
            for policy in self.policies:
                for k in range(self.seeds):
                    base = draw(
                        self.start_seed + k, self.nodes, 1, FaultSpec.parse(attacker), gst_ms=0
                    )
                    out.append(
                        replace(
                            base,
                            policy=policy,
                            duration_ms=self.duration_ms,
                            tx_per_s=self.tx_per_s,
                            geography=self.geography,
                        )
                    )
        return out


@dataclass
class Row:
    policy: str
    attacker: str
    runs: int = 0
    attacks: int = 0
    wins: int = 0
    led_attacks: int = 0
    led_wins: int = 0
    pairs: int = 0
    inversions: int = 0
    late: int = 0
    violations: int = 0
    blocks: list[int] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    censored_blocks: list[int] = field(default_factory=list)
    censored_ms: list[float] = field(default_factory=list)

    def add(self, r: RunResult) -> None:
        fs = r.fairness
        assert fs is not None
        self.runs += 1
        self.violations += bool(r.violations)
        self.attacks += fs.attacks
        self.wins += fs.attack_wins
        self.led_attacks += fs.led_attacks
        self.led_wins += fs.led_wins
        self.pairs += fs.pairs
        self.inversions += fs.inversions
        self.late += fs.late
        self.blocks += fs.inclusion_blocks
        self.ms += fs.inclusion_ms
        self.censored_blocks += fs.censored_blocks
        self.censored_ms += fs.censored_ms

    @property
    def led_rate(self) -> float:
        return self.led_wins / self.led_attacks if self.led_attacks else 0.0

    @property
    def all_rate(self) -> float:
        return self.wins / self.attacks if self.attacks else 0.0

    @property
    def inversion_rate(self) -> float:
        return self.inversions / self.pairs if self.pairs else 0.0


def sweep_fairness(
    config: FairnessConfig, on_run: Callable[[RunResult], None] | None = None
) -> list[Row]:
    rows = {(a, p): Row(p, a) for a in config.attackers for p in config.policies}
    scenarios = config.scenarios()
    if config.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(config.jobs) as pool:
            results = list(_tracked(pool.imap(simulate, scenarios, chunksize=4), on_run))
    else:
        results = list(_tracked(map(simulate, scenarios), on_run))
    for scenario, result in zip(scenarios, results, strict=True):
        attacker = next(iter(scenario.byzantine.values()))
        rows[(attacker, scenario.policy or "")].add(result)
    return list(rows.values())


def _tracked(
    results: Iterable[RunResult], on_run: Callable[[RunResult], None] | None
) -> Iterator[RunResult]:
    for r in results:
        if on_run is not None:
            on_run(r)
        yield r


def _q(values: list[float] | list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def render(rows: list[Row], config: FairnessConfig) -> str:
    lines = [
        f"fairness: n={config.nodes}, {config.seeds} runs per row, {config.duration_ms} ms each, "
        f"{config.tx_per_s:g} tx/s, {'map latencies' if config.geography else 'i.i.d. latencies'}",
        "",
        "| attacker | policy | front-run success, victim in attacker's block | all attempts "
        "| order inversions | inclusion blocks p50/p99/max | inclusion ms p50/p99 "
        "| runs with violations |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        blocks, ms = (
            (r.censored_blocks, r.censored_ms) if r.attacker == "censor" else (r.blocks, r.ms)
        )
        lines.append(
            f"| {r.attacker} | {r.policy} | {r.led_rate:.1%} ({r.led_wins}/{r.led_attacks}) "
            f"| {r.all_rate:.1%} ({r.wins}/{r.attacks}) | {r.inversion_rate:.3%} "
            f"| {_q(blocks, 0.5):.0f}/{_q(blocks, 0.99):.0f}/{max(blocks, default=0)} "
            f"| {_q(ms, 0.5):.0f}/{_q(ms, 0.99):.0f} | {r.violations} |"
        )
    ratio = _ratio(rows)
    if ratio:
        lines += ["", ratio]
    return "\n".join(lines)


def _ratio(rows: list[Row]) -> str:
    by = {(r.attacker, r.policy): r for r in rows}
    out = []
    for attacker in ATTACKERS:
        base, fair = by.get((attacker, "arrival")), by.get((attacker, "median-timestamp"))
        if base and fair and base.led_rate and attacker != "censor":
            ratio = fair.led_rate / base.led_rate
            out.append(f"{attacker}: median-timestamp / arrival success = {ratio:.3f}")
    return "\n".join(out)
