"""What a simulated run looks like: committee size, faults, attacks, timings.

A scenario is drawn from ``(spec, seed)`` so the same seed always gives the same
run. The fault spec is a comma list of network faults and Byzantine behaviours,
e.g. ``drop,partition,crash,equivocate,twins`` or ``all``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ordering.fair.policies import DEFAULT_POLICY
from sequencer_net.base.committee import max_faulty

NETWORK_FAULTS = ("drop", "dup", "delay", "partition", "crash", "restart-all")
APP_ATTACKS = ("front-run", "front-run-naive", "censor", "lie-report", "withhold-report")
ATTACKS = (
    "equivocate",
    "double-vote",
    "withhold",
    "bad-signature",
    "replay",
    "garbage",
    "stale-timeout",
    "twins",
    *APP_ATTACKS,
)


class SpecError(ValueError):
    """A fault spec naming something the simulator does not know."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    network: frozenset[str]
    attacks: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        words = [w.strip() for w in text.split(",") if w.strip()]
        if words in ([], ["none"]):
            return cls(frozenset(), ATTACKS)
        if "all" in words:
            words = [w for w in words if w != "all"] + list(NETWORK_FAULTS + ATTACKS)
        unknown = sorted(set(words) - set(NETWORK_FAULTS) - set(ATTACKS))
        if unknown:
            known = ", ".join(NETWORK_FAULTS + ATTACKS)
            raise SpecError(f"unknown fault(s) {', '.join(unknown)}; known: {known}, all, none")
        attacks = tuple(a for a in ATTACKS if a in words) or ATTACKS
        return cls(frozenset(w for w in words if w in NETWORK_FAULTS), attacks)


@dataclass(frozen=True, slots=True)
class Partition:
    start_ms: int
    end_ms: int
    side: frozenset[int]  # nodes on one side; the rest are on the other


@dataclass(frozen=True, slots=True)
class CrashPlan:
    node: int
    at_ms: int
    restart_ms: int | None  # None: stays down


@dataclass(frozen=True, slots=True)
class Scenario:
    """One fully determined run."""

    seed: int
    n: int
    byzantine: dict[int, str]  # node index -> attack
    gst_ms: int
    drop: float
    dup: float
    long_delay: float
    partitions: tuple[Partition, ...]
    crashes: tuple[CrashPlan, ...]
    target_commits: int = 20
    liveness_bound_ms: int = 60_000
    base_timeout_ms: int = 1000
    latency_ms: float = 10.0
    labels: tuple[str, ...] = field(default=())
    policy: str | None = DEFAULT_POLICY  # None: opaque labels instead of fair ordering
    tx_per_s: float = 20.0  # client transactions, each sent to every validator
    clock_skew_ms: float = 5.0  # each validator's clock is off by up to this much
    duration_ms: int | None = None  # run exactly this long (fairness runs) instead of to liveness
    geography: bool = False  # latency from positions on a map instead of i.i.d. per message

    @property
    def f(self) -> int:
        return max_faulty(self.n)


def draw(
    seed: int,
    n: int,
    byzantine: int,
    spec: FaultSpec,
    *,
    gst_ms: int = 3000,
    permanent_crashes: int = 0,
) -> Scenario:
    """Draw a scenario: which nodes misbehave, how and when the network fails."""
    rng = random.Random(f"scenario/{seed}/{n}")
    nodes = list(range(n))
    bad = sorted(rng.sample(nodes, byzantine))
    attacks = {i: rng.choice(spec.attacks) for i in bad}
    honest = [i for i in nodes if i not in attacks]
    partitions = _draw_partitions(rng, n, gst_ms) if "partition" in spec.network else ()
    crashes = list(_draw_crashes(rng, honest, gst_ms)) if "crash" in spec.network else []
    down = rng.sample(honest, permanent_crashes) if permanent_crashes else []
    crashes += [CrashPlan(i, rng.randrange(0, gst_ms), None) for i in sorted(down)]
    if "restart-all" in spec.network:
        crashes += _draw_restart_all(rng, honest, gst_ms)
    return Scenario(
        seed=seed,
        n=n,
        byzantine=attacks,
        gst_ms=gst_ms,
        drop=rng.uniform(0.01, 0.2) if "drop" in spec.network else 0.0,
        dup=rng.uniform(0.01, 0.1) if "dup" in spec.network else 0.0,
        long_delay=rng.uniform(0.01, 0.1) if "delay" in spec.network else 0.0,
        partitions=partitions,
        crashes=tuple(crashes),
        labels=tuple(sorted(spec.network)) + tuple(sorted(set(attacks.values()))),
    )


def _draw_partitions(rng: random.Random, n: int, gst_ms: int) -> tuple[Partition, ...]:
    out = []
    for _ in range(rng.randint(1, 3)):
        start = rng.randrange(0, gst_ms)
        end = min(gst_ms, start + rng.randrange(200, gst_ms))
        side = frozenset(rng.sample(range(n), rng.randint(1, n // 2)))
        out.append(Partition(start, end, side))
    return tuple(out)


def _draw_restart_all(rng: random.Random, honest: list[int], gst_ms: int) -> list[CrashPlan]:
    """Every honest node crashes at the same moment; each restarts from its disk later.

    Certified blocks that were not committed yet survive only on disk (the
    blocks voted for): the committee must extend them after the restart.
    """
    at = rng.randrange(0, gst_ms)
    return [CrashPlan(node, at, rng.randrange(at + 1, gst_ms + 1)) for node in honest]


def _draw_crashes(rng: random.Random, honest: list[int], gst_ms: int) -> list[CrashPlan]:
    out = []
    for node in rng.sample(honest, rng.randint(1, max(1, len(honest) // 2))):
        at = rng.randrange(0, gst_ms)
        out.append(CrashPlan(node, at, rng.randrange(at + 1, gst_ms + 1)))
    return out
