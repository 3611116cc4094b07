"""The simulated network: latency, drops, duplicates, long delays and partitions.

Before GST anything goes (within the scenario's rates); after GST every message
arrives within a bounded delay, which is what partial synchrony promises.
"""

from __future__ import annotations

import math
import random

from ops.sim.scenario import Scenario

MAX_DELAY_AFTER_GST_MS = 100.0
LONG_DELAY_MS = 3000.0


Position = tuple[float, float]
MS_PER_UNIT = 60.0  # across the whole map: a continent
BASE_MS = 2.0
GEO_JITTER = 0.1


class Network:
    def __init__(self, scenario: Scenario, rng: random.Random) -> None:
        self.s = scenario
        self.rng = rng
        self.positions = [self.random_position() for _ in range(scenario.n)]

    def random_position(self) -> Position:
        return (self.rng.random(), self.rng.random())

    def geo_delay(self, a: Position, b: Position) -> float:
        """Distance on the map plus a little jitter: a geo-distributed network."""
        distance = math.dist(a, b)
        return (BASE_MS + MS_PER_UNIT * distance) * self.rng.lognormvariate(0.0, GEO_JITTER)

    def deliveries(self, now: float, src: int, dst: int) -> list[float]:
        """Delays (ms) after which copies of a message from ``src`` reach ``dst``."""
        before_gst = now < self.s.gst_ms
        if before_gst and (self._is_cut(now, src, dst) or self.rng.random() < self.s.drop):
            return []
        copies = 2 if self.rng.random() < self.s.dup else 1
        if self.s.geography:
            a, b = self.positions[src], self.positions[dst]
            return [self.geo_delay(a, b) for _ in range(copies)]
        return [self.delay(now) for _ in range(copies)]

    def delay(self, now: float) -> float:
        """One message's delay: lognormal latency, long delays before GST, bounded after."""
        delay = self.s.latency_ms * self.rng.lognormvariate(0.0, 0.5)
        if now < self.s.gst_ms:
            if self.rng.random() < self.s.long_delay:
                delay += self.rng.uniform(0, LONG_DELAY_MS)
            return delay
        return min(delay, MAX_DELAY_AFTER_GST_MS)

    def _is_cut(self, now: float, src: int, dst: int) -> bool:
        for p in self.s.partitions:
            if p.start_ms <= now < p.end_ms and (src in p.side) != (dst in p.side):
                return True
        return False
