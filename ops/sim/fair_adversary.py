"""Byzantine behaviours of the fair-ordering layer: front-running, censoring, lying.

Each is a ``FairOrderingApp`` that breaks the rules where a real attacker would:
its own reports, the reports it picks as leader, the order it proposes. The
engine injects the front-runner's own transactions into the network.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from typing import Any

from ordering.blocktree import BlockLookup
from ordering.fair.app import Branch, FairOrderingApp, FairPayload
from ordering.fair.reports import OrderReport
from sequencer_net.base import codec
from sequencer_net.base.signing import Signed

LIE_MS = 10_000


def front_run_digest(victim: bytes) -> bytes:
    return hashlib.sha256(b"front-run" + victim).digest()


class FrontRunner(FairOrderingApp):
    """Sees a victim's transaction, sends its own, and reports its own as seen first
    and the victim as seen 10 s late (the strongest lie a report can tell).

    As leader it picks, among all admissible sets of reports, the one whose order
    puts the most of its transactions ahead of their victims.
    """

    victim_lie_ms = LIE_MS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attacks: dict[bytes, bytes] = {}  # attacker's digest -> victim's digest

    def attack(self, victim: bytes) -> bytes | None:
        """Called by the engine when a victim arrives; returns the digest to inject."""
        seen = self.pending.get(victim)
        if seen is None:
            return None
        mine = front_run_digest(victim)
        self.attacks[mine] = victim
        self.pending[mine] = max(0, seen - 1)  # the lie: "I saw mine first"...
        self.pending[victim] = seen + self.victim_lie_ms  # ...and the victim later
        self.pending.move_to_end(mine)
        return mine

    def on_transaction(self, digest: bytes, local_time_ms: int) -> None:
        if digest not in self.attacks:
            super().on_transaction(digest, local_time_ms)

    def select_reports(self, branch: Branch, round_: int) -> list[Signed[OrderReport]] | None:
        need = self.committee.n - self.committee.f
        fresh = self.fresh_reports(branch, round_)
        if len(fresh) < need:
            return None
        best, best_score = None, -1
        for subset in itertools.combinations(fresh, need):
            order = self.policy.order([s.statement for s in subset], self.me, branch)
            score = self._wins(order)
            if score > best_score:
                best, best_score = list(subset), score
        return best

    def _wins(self, order: list[bytes]) -> int:
        position = {d: i for i, d in enumerate(order)}
        return sum(
            1
            for mine, victim in self.attacks.items()
            if mine in position and (victim not in position or position[mine] < position[victim])
        )


class NaiveFrontRunner(FrontRunner):
    """Like :class:`FrontRunner`, but reports the victim's true time."""

    victim_lie_ms = 0


def is_censored(digest: bytes) -> bool:
    """The censor's targets: about a quarter of all transactions."""
    return digest[0] < 64


class Censor(FairOrderingApp):
    """As leader, leaves its targets out of the order (honest replicas refuse the block)."""

    def propose_payload(
        self, parent_hash: bytes, height: int, round_: int, ancestors: BlockLookup
    ) -> bytes | None:
        honest = super().propose_payload(parent_hash, height, round_, ancestors)
        if honest is None:
            return None
        payload: FairPayload = codec.decode(FairPayload, honest)
        kept = tuple(d for d in payload.order if not is_censored(d))
        return codec.encode(FairPayload(payload.reports, kept, ()))


class LieReport(FairOrderingApp):
    """Reports random times for what it saw."""

    rng = random.Random(0)

    def _own_report(self, round_: int, kind: int) -> Signed[OrderReport]:
        saved = self.pending
        self.pending = type(saved)((d, self.rng.randrange(0, 10**7)) for d in saved)
        try:
            return super()._own_report(round_, kind)
        finally:
            self.pending = saved


class WithholdReport(FairOrderingApp):
    """Sends no report with its votes and timeouts."""

    def make_report(self, round_: int, timeout: bool) -> bytes:
        return b""


FAIR_ADVERSARIES: dict[str, type[FairOrderingApp]] = {
    "front-run": FrontRunner,
    "front-run-naive": NaiveFrontRunner,
    "censor": Censor,
    "lie-report": LieReport,
    "withhold-report": WithholdReport,
}
