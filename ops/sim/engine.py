"""The simulation loop: a heap of timed events, one seeded RNG, no wall clock.

Theory of operation: every event — a message arriving, a timer firing, a crash,
a restart — sits in a heap ordered by (virtual time, sequence number). The loop
pops one, hands it to the node instance it targets, and carries out the
returned actions: durable ones on the node's disk, sends through the network
model (which may drop, duplicate or delay them), timers back onto the heap.
A crash can strike between any two actions of an event, which is how the
"persist before you sign" discipline is tested.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ops.sim.adversary import ADVERSARIES, Adversary
from ops.sim.checkers import SafetyChecker
from ops.sim.fair_adversary import FAIR_ADVERSARIES, FrontRunner
from ops.sim.network import Network, Position
from ops.sim.node import Disk, SimNode
from ops.sim.scenario import Scenario
from ops.sim.workload import FairnessStats, Workload
from ordering.events import Action, Broadcast, Commit, Persist, ResetTimer, Send, TimerFired
from ordering.fair.app import FairOrderingApp
from ordering.fair.policies import DEFAULT_POLICY, make_policy
from ordering.messages import ConsensusMessage, Vote
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import SigningKey

CHAIN_ID = "seqnet-sim"


@dataclass
class RunResult:
    scenario: Scenario
    violations: list[str]
    height: int  # highest height committed by an honest node
    rounds_timed_out: int  # rounds that ended in a timeout certificate
    liveness_ms: float | None  # GST -> every honest node committed the target, or None
    max_round_gap: int  # most rounds between consecutive commits, steady state after GST
    events: int
    rejected: Counter[str] = field(default_factory=Counter)
    fairness: FairnessStats | None = None

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass
class Instance:
    """One running copy of a validator (twins have two)."""

    index: int
    label: str
    seed: bytes
    adversary: Adversary
    node: SimNode | None = None
    timer_token: int = 0
    crash_cut: int | None = None  # crash after this many actions of the next event


class Simulation:
    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.rng = random.Random(f"sim/{scenario.seed}/{scenario.n}")
        self.network = Network(scenario, self.rng)
        seeds = [SigningKey.derive(f"{scenario.seed}/{i}").seed for i in range(scenario.n)]
        self.committee = Committee.of(CHAIN_ID, [SigningKey(s).public_key for s in seeds])
        honest = frozenset(i for i in range(scenario.n) if i not in scenario.byzantine)
        self.checker = SafetyChecker(honest)
        self.disks: dict[str, Disk] = {}
        self.instances: list[Instance] = []
        for i, seed in enumerate(seeds):
            attack = scenario.byzantine.get(i, "honest")
            copies = ("a", "b") if attack == "twins" else ("",)
            for c in copies:
                key = SigningKey(seed)
                adversary = ADVERSARIES[attack](i, self.committee, key, self.rng)
                self.instances.append(Instance(i, f"{i}{c}", seed, adversary))
        self.by_index: dict[int, list[Instance]] = {}
        for inst in self.instances:
            self.by_index.setdefault(inst.index, []).append(inst)
        self.now = 0.0
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._tcs: set[int] = set()
        self._gst_height: int | None = None
        self.events = 0
        self.workload = Workload(scenario, self.rng)
        self.skew = {i: self.rng.uniform(-1, 1) * scenario.clock_skew_ms for i in range(scenario.n)}

    # ------------------------------------------------------------ scheduling

    def _at(self, time: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time, self._seq, kind, payload))

    def run(self) -> RunResult:
        for inst in self.instances:
            self._at(self.rng.uniform(0, 5), "start", inst)
        for plan in self.s.crashes:
            self._at(plan.at_ms, "crash", plan.node)
            if plan.restart_ms is not None:
                self._at(plan.restart_ms, "restart", plan.node)
        if self.s.policy is not None and self.s.tx_per_s > 0:
            self._at(self.rng.expovariate(self.s.tx_per_s / 1000), "tx", 0)
        fixed = self.s.duration_ms is not None
        end = self.s.gst_ms + self.s.liveness_bound_ms
        if self.s.duration_ms is not None:
            end = self.s.duration_ms
        while self._heap and self.now <= end:
            self.now, _, kind, payload = heapq.heappop(self._heap)
            self.events += 1
            getattr(self, f"_on_{kind}")(payload)
            if (
                not fixed
                and self.now >= self.s.gst_ms
                and self.events % 64 == 0
                and self._is_live()
            ):
                break
        return self._result()

    # ------------------------------------------------------------ events

    def _on_start(self, inst: Instance) -> None:
        disk = self.disks.setdefault(inst.label, Disk(self.committee.chain_id))
        inst.node = SimNode(
            self.committee,
            inst.index,
            inst.seed,
            inst.label,
            disk,
            self.s.base_timeout_ms,
            None if self.s.policy is None else functools.partial(self._make_app, inst),
        )
        self._execute(inst, inst.node.core.start())

    def _make_app(self, inst: Instance, key: SigningKey) -> FairOrderingApp:
        app_class = FAIR_ADVERSARIES.get(self.s.byzantine.get(inst.index, ""), FairOrderingApp)
        policy = make_policy(self.s.policy or DEFAULT_POLICY, self.s.n, self.s.f)
        return app_class(self.committee, inst.index, key, policy)

    # ------------------------------------------------------------ client transactions

    def _on_tx(self, k: int) -> None:
        digest = hashlib.sha256(f"tx/{self.s.seed}/{k}".encode()).digest()
        honest = [i for i in self.instances if i.index in self.checker.honest]
        self.workload.on_sent(digest, self.now, len(honest))  # a node that is down misses it
        client = self.network.random_position()
        for inst in self.instances:
            self._deliver_tx(inst, digest, client)
        self._at(self.now + self.rng.expovariate(self.s.tx_per_s / 1000), "tx", k + 1)

    def _deliver_tx(self, inst: Instance, digest: bytes, origin: Position) -> None:
        """A transaction from ``origin`` (a client, or a validator's position) reaches ``inst``."""
        if self.now < self.s.gst_ms and self.rng.random() < self.s.drop:
            return
        if self.s.geography:
            delay = self.network.geo_delay(origin, self.network.positions[inst.index])
        else:
            delay = self.network.delay(self.now)
        self._at(self.now + delay, "tx_arrival", (inst, digest))

    def _on_tx_arrival(self, item: tuple[Instance, bytes]) -> None:
        inst, digest = item
        app = inst.node.app if inst.node is not None else None
        if not isinstance(app, FairOrderingApp):
            return
        app.on_transaction(digest, max(0, int(self.now + self.skew[inst.index])))
        if inst.index in self.checker.honest:
            self.workload.on_delivered(digest, self.now)
        elif isinstance(app, FrontRunner) and digest in self.workload.sent:
            mine = app.attack(digest)
            if mine is not None:
                self.workload.attack_pairs[mine] = (inst.index, digest)
                for other in self.instances:
                    if other.index != inst.index:
                        self._deliver_tx(other, mine, self.network.positions[inst.index])

    def _on_crash(self, index: int) -> None:
        for inst in self.by_index[index]:
            if inst.node is not None:
                inst.crash_cut = self.rng.randrange(0, 4)

    def _on_restart(self, index: int) -> None:
        for inst in self.by_index[index]:
            if inst.crash_cut is not None:  # the crash never got an event to strike in
                inst.node, inst.crash_cut = None, None
            if inst.node is None:
                self._on_start(inst)

    def _on_deliver(self, item: tuple[Instance, int, bytes]) -> None:
        inst, sender, data = item
        if inst.node is None:
            return
        self._send_raw(inst, inst.adversary.on_receive(sender, data))
        self._execute(inst, inst.node.receive(sender, data))

    def _on_timer(self, item: tuple[Instance, int, int]) -> None:
        inst, round_, token = item
        if inst.node is not None and token == inst.timer_token:
            self._execute(inst, inst.node.handle(TimerFired(round_)))

    # ------------------------------------------------------------ actions

    def _execute(self, inst: Instance, actions: list[Action]) -> None:
        node = inst.node
        assert node is not None
        for done, action in enumerate(actions):
            if inst.crash_cut is not None and done >= inst.crash_cut:
                break
            match action:
                case Persist() | Commit():
                    node.apply_durable(action)
                    if isinstance(action, Commit):
                        self.checker.on_commit(inst.index, action, self.now)
                case Send(to, message):
                    self._send(inst, [to], message)
                case Broadcast(message):
                    self._send(inst, [i for i in range(self.s.n) if i != inst.index], message)
                case ResetTimer(round_, duration_ms):
                    inst.timer_token += 1
                    self._at(self.now + duration_ms, "timer", (inst, round_, inst.timer_token))
        if inst.crash_cut is not None:
            inst.node, inst.crash_cut = None, None  # crashed: only the disk remains
        elif node.core.last_tc is not None:
            self._tcs.add(node.core.last_tc.round)

    def _send(self, inst: Instance, dests: list[int], message: ConsensusMessage) -> None:
        self.checker.on_outgoing(inst.index, message)
        if isinstance(message, Vote) and inst.index in self.checker.honest:
            self.workload.on_honest_vote(message.signed.statement.height, self.now)
        self._send_raw(inst, inst.adversary.outgoing(dests, message))

    def _send_raw(self, inst: Instance, out: list[tuple[int, bytes]]) -> None:
        for dest, data in out:
            targets = [t for t in self.by_index[dest] if t is not inst]
            if len(targets) == 2:  # twins: one, the other, or both hear it
                targets = self.rng.choice([targets[:1], targets[1:], targets])
            for target in targets:
                for delay in self.network.deliveries(self.now, inst.index, dest):
                    self._at(self.now + delay, "deliver", (target, inst.index, data))

    # ------------------------------------------------------------ verdict

    def _live_nodes(self) -> list[int]:
        down = {c.node for c in self.s.crashes if c.restart_ms is None}
        return sorted(self.checker.honest - down)

    def _goal_height(self) -> int:
        """Height every live honest node must reach: the height at GST plus the target."""
        if self._gst_height is None:
            self._gst_height = self.checker.height_at(self.s.gst_ms)
        return self._gst_height + self.s.target_commits

    def _is_live(self) -> bool:
        goal = self._goal_height()
        return all(self.checker.last_height.get(i, 0) >= goal for i in self._live_nodes())

    def _liveness_ms(self) -> float | None:
        goal = self._goal_height()
        finish = 0.0
        for i in self._live_nodes():
            times = [t for t, h in self.checker.commit_times.get(i, []) if h >= goal]
            if not times:
                return None
            finish = max(finish, min(times))
        return max(0.0, finish - self.s.gst_ms)

    def _max_round_gap(self) -> int:
        """Most rounds between consecutive committed blocks in the steady state.

        Steady state starts one full leader rotation after the round reached at
        GST: the first rotation still shows the recovery from the faults before.
        """
        rounds = sorted(c.block.round for c in self._committed_log() if c.block.round > 0)
        start = self._round_at_gst() + self.s.n
        after = [r for r in rounds if r >= start]
        return max((b - a for a, b in itertools.pairwise(after)), default=0)

    def _committed_log(self) -> list[Commit]:
        honest = [
            d for label, d in self.disks.items() if int(label.rstrip("ab")) in self._live_nodes()
        ]
        return max((d.log for d in honest), key=len, default=[])

    def _round_at_gst(self) -> int:
        base = self._goal_height() - self.s.target_commits
        log = self._committed_log()
        return log[base - 1].block.round if 0 < base <= len(log) else 0

    def _result(self) -> RunResult:
        violations = list(self.checker.violations)
        liveness = self._liveness_ms()
        fixed = self.s.duration_ms is not None
        if liveness is None and not fixed:
            violations.append(
                f"liveness: not every honest node committed {self.s.target_commits} blocks "
                f"within {self.s.liveness_bound_ms} ms after GST"
            )
        rejected: Counter[str] = Counter()
        for inst in self.instances:
            if inst.node is not None and inst.index in self.checker.honest:
                rejected.update(inst.node.rejected)
        return RunResult(
            scenario=self.s,
            violations=violations,
            height=max(self.checker.last_height.values(), default=0),
            rounds_timed_out=len(self._tcs),
            liveness_ms=liveness,
            max_round_gap=self._max_round_gap(),
            events=self.events,
            rejected=rejected,
            fairness=self._fairness(),
        )

    def _fairness(self) -> FairnessStats | None:
        if self.s.policy is None:
            return None
        first_commit: dict[int, float] = {}
        for times in self.checker.commit_times.values():
            for t, h in times:
                first_commit[h] = min(t, first_commit.get(h, t))
        return self.workload.measure(self._committed_log(), first_commit)


def simulate(scenario: Scenario) -> RunResult:
    return Simulation(scenario).run()
