"""The pacemaker: the current round and how long to wait in it.

Rounds advance only on certificates (a QC or TC for the round before), never on
a clock, so the core stays deterministic. Each consecutive round ended by a
timeout certificate multiplies the wait of the next by ``backoff_factor``, up
to ``backoff_factor ** max_backoff_exponent`` times the base, so that after the network heals
honest nodes wait long enough for a slow leader; a QC resets the wait. A timer
that fires again in the same round re-sends the timeout but does not grow the
wait: growth follows failed rounds, not a stuck one, so one partition does not
leave everyone waiting minutes after it heals.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_TIMEOUT_MS = 1000  # a round's first timeout; it backs off from there


@dataclass(frozen=True, slots=True)
class PacemakerConfig:
    base_timeout_ms: int = BASE_TIMEOUT_MS
    backoff_factor: float = 1.5
    max_backoff_exponent: int = 4


@dataclass
class Pacemaker:
    config: PacemakerConfig
    round: int = 1
    exponent: int = 0

    def enter(self, new_round: int, *, after_timeout: bool) -> bool:
        """Move to ``new_round`` if it is ahead; True when the round changed."""
        if new_round <= self.round:
            return False
        self.round = new_round
        self.exponent = self._bumped() if after_timeout else 0
        return True

    def _bumped(self) -> int:
        return min(self.exponent + 1, self.config.max_backoff_exponent)

    @property
    def timeout_ms(self) -> int:
        return int(self.config.base_timeout_ms * self.config.backoff_factor**self.exponent)
