"""Simulated DKG runs with Byzantine dealers, checked for agreement and usability.

Posts go through an ordered channel (as on the consensus log): every node sees
the same posts in the same order before the same phase marker. Private shares
travel point to point with random delays. Byzantine validators run the honest
state machine behind an interceptor that corrupts, withholds or duplicates.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field, replace
from typing import Any

from mev import group
from mev.dkg import (
    Complaint,
    Dealing,
    Dkg,
    DkgAction,
    DkgResult,
    Failed,
    Finished,
    Justification,
    Phase,
    PhaseEnded,
    Posted,
    PostMessage,
    PrivatelyReceived,
    SendPrivately,
)
from mev.group import lagrange_at_zero, scalar_bytes, scalar_from_bytes
from mev.keys import evaluation_point
from sequencer_net.base.committee import max_faulty

BEHAVIOURS = (
    "wrong-shares",
    "withhold-shares",
    "inconsistent-commitments",
    "false-complaints",
    "silent",
)
PHASE_MS = 200
BLOCK_MS = 10


@dataclass
class DkgRun:
    seed: int
    n: int
    byzantine: dict[int, str]
    results: dict[int, DkgResult] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


class Adversary:
    """Rewrites a Byzantine node's actions according to its behaviour."""

    def __init__(self, behaviour: str, me: int, n: int, rng: random.Random) -> None:
        self.behaviour, self.me, self.n, self.rng = behaviour, me, n, rng
        self.victims = set(rng.sample([j for j in range(n) if j != me], k=max(1, (n - 1) // 2)))
        self.answers = rng.random() < 0.5  # answer complaints correctly, or not at all/wrongly

    def rewrite(self, actions: list[DkgAction]) -> list[DkgAction]:
        out: list[DkgAction] = []
        for a in actions:
            out.extend(self._one(a))
        return out

    def _one(self, a: DkgAction) -> list[DkgAction]:
        match self.behaviour, a:
            case "silent", _:
                return []
            case "withhold-shares", SendPrivately(to) if to in self.victims:
                return []
            case "wrong-shares", SendPrivately(to, message) if to in self.victims:
                wrong = scalar_bytes(scalar_from_bytes(message.share) + 1)
                return [replace(a, message=replace(message, share=wrong))]
            case (("wrong-shares" | "withhold-shares"), PostMessage(Justification() as j)):
                return [a] if self.answers else self._bad_answer(j)
            case "inconsistent-commitments", PostMessage(Dealing() as d):
                return self._inconsistent(a, d)
        return [a]

    def _bad_answer(self, j: Justification) -> list[DkgAction]:
        """No answer at all, or a share that does not match the commitments."""
        return [] if self.rng.random() < 0.5 else [PostMessage(replace(j, share=scalar_bytes(7)))]

    def _inconsistent(self, original: DkgAction, d: Dealing) -> list[DkgAction]:
        """A second, different dealing after the first, or commitments of the wrong degree."""
        points = tuple(group.base_mul(self.rng.randrange(1, group.ORDER)) for _ in d.commitments)
        if self.rng.random() < 0.5:
            return [original, PostMessage(Dealing(self.me, points))]
        return [PostMessage(Dealing(self.me, points[:1]))]

    def extra_posts(self, honest_dealers: list[int]) -> list[DkgAction]:
        if self.behaviour != "false-complaints":
            return []
        return [PostMessage(Complaint(self.me, d)) for d in honest_dealers]


def run_dkg(
    seed: int, n: int, byzantine_count: int | None = None, behaviours: tuple[str, ...] = BEHAVIOURS
) -> DkgRun:
    """One seeded DKG among ``n`` validators with up to f Byzantine dealers."""
    rng = random.Random(f"dkg/{seed}/{n}")
    f = max_faulty(n)
    bad = sorted(rng.sample(range(n), f if byzantine_count is None else byzantine_count))
    run = DkgRun(seed, n, {i: rng.choice(behaviours) for i in bad})
    nodes = {i: Dkg(n, f + 1, i) for i in range(n)}
    adversaries = {i: Adversary(b, i, n, rng) for i, b in run.byzantine.items()}
    heap: list[tuple[float, int, str, Any]] = []
    seq = 0

    def at(time: float, kind: str, payload: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (time, seq, kind, payload))

    pending_posts: list[tuple[int, Any]] = []

    def execute(i: int, actions: list[DkgAction], now: float) -> None:
        if i in adversaries:
            actions = adversaries[i].rewrite(actions)
        for a in actions:
            if isinstance(a, PostMessage):
                pending_posts.append((i, a.message))
            elif isinstance(a, SendPrivately):
                at(now + rng.uniform(1, PHASE_MS / 2), "private", (a.to, i, a.message))
            elif isinstance(a, Finished):
                run.results[i] = a.result
            elif isinstance(a, Failed) and i not in run.byzantine:
                run.violations.append(f"node {i} failed: {a.reason}")

    for i, node in nodes.items():
        execute(i, node.start(group.seeded_random_bytes(f"dkg/{seed}/{i}".encode())), 0.0)
    honest = [i for i in range(n) if i not in run.byzantine]
    for i, adversary in adversaries.items():
        at(PHASE_MS + 1, "extra", (i, adversary.extra_posts(honest)))
    for k in range(1, 3 * PHASE_MS // BLOCK_MS + 1):
        at(k * BLOCK_MS, "block", None)
    for p in (Phase.DEAL, Phase.COMPLAIN, Phase.JUSTIFY):
        at(p * PHASE_MS + 0.5, "phase", p)
    while heap:
        now, _, kind, payload = heapq.heappop(heap)
        if kind == "private":
            to, sender, message = payload
            execute(to, nodes[to].handle(PrivatelyReceived(sender, message)), now)
        elif kind == "extra":
            execute(payload[0], payload[1], now)
        elif kind == "block":  # the ordered channel: same posts, same order, for everyone
            block, pending_posts[:] = list(pending_posts), []
            for sender, message in block:
                for i, node in nodes.items():
                    execute(i, node.handle(Posted(sender, message)), now)
        else:
            for i, node in nodes.items():
                execute(i, node.handle(PhaseEnded(payload)), now)
    _check(run, honest)
    return run


def _check(run: DkgRun, honest: list[int]) -> None:
    results = [run.results.get(i) for i in honest]
    if any(r is None for r in results):
        run.violations.append("an honest node did not finish")
        return
    first = results[0]
    assert first is not None
    for r in results[1:]:
        assert r is not None
        if (r.public, r.qualified) != (first.public, first.qualified):
            run.violations.append("honest nodes disagree on the key or the qualified set")
    missing = [i for i in honest if i not in first.qualified]
    if missing:
        run.violations.append(f"honest dealers {missing} were disqualified")
    for i in honest:
        r = run.results[i]
        if group.base_mul(r.share.secret) != first.public.verification_keys[i]:
            run.violations.append(f"node {i}'s share does not match its verification key")
    _check_decryption(run, honest, first)


def _check_decryption(run: DkgRun, honest: list[int], result: DkgResult) -> None:
    """Any t honest shares recover r·h for a fresh r."""
    t = result.public.threshold
    r = group.random_scalar(group.seeded_random_bytes(f"dkg-check/{run.seed}".encode()))
    u, expected = group.base_mul(r), group.mul(r, result.public.public_key)
    for start in range(len(honest) - t + 1):
        subset = honest[start : start + t]
        lambdas = lagrange_at_zero([evaluation_point(i) for i in subset])
        k = group.linear_combination(
            (lam, group.mul(run.results[i].share.secret, u))
            for lam, i in zip(lambdas, subset, strict=True)
        )
        if k != expected:
            run.violations.append(f"honest shares {subset} do not decrypt")


@dataclass
class DkgSummary:
    runs: int = 0
    behaviours: dict[str, int] = field(default_factory=dict)
    disqualified: int = 0
    failures: list[DkgRun] = field(default_factory=list)


def sweep_dkg(
    nodes: tuple[int, ...], seeds: int, start_seed: int, on_run: Any = None
) -> DkgSummary:
    """``seeds`` DKG runs, committee sizes in turn, f Byzantine dealers each."""
    summary = DkgSummary()
    for k in range(seeds):
        run = run_dkg(start_seed + k, nodes[k % len(nodes)])
        summary.runs += 1
        for b in run.byzantine.values():
            summary.behaviours[b] = summary.behaviours.get(b, 0) + 1
        if run.results:
            summary.disqualified += len(next(iter(run.results.values())).disqualified)
        if not run.ok:
            summary.failures.append(run)
        if on_run is not None:
            on_run(run)
    return summary
