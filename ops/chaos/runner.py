"""One chaos run: a scenario against a running cluster, from a healthy start to a verdict.

1. Every node must be committing (else the run is refused: a setup error,
   not a finding); a scenario whose faults go through the admin endpoint
   needs a test network. Each node's status and metrics are taken as the
   baseline.
2. The rollup follower starts and must deliver every namespace; the load's
   generator fills its queue.
3. The load starts (time 0 of the scenario) and runs ``Scenario.run_s``;
   the nodes are watched throughout; each fault is applied at its ``at_s``
   and healed at its ``until_s``.
4. Drain: up to ``DRAIN_S`` for every acknowledged transaction to reach the
   rollup and every node to be back. Then each node's final status, the
   heights not read yet, a last metrics scrape.
5. The checkers judge the history.

Whatever happens, every fault still applied is healed before returning, so
an interrupted run leaves the cluster whole.
"""

from __future__ import annotations

import dataclasses
import http.client
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops import health
from ops.chaos import checkers
from ops.chaos.faults import FaultError, Nodes, cut_off, resolve, resolve_groups
from ops.chaos.history import History, Submission, Window
from ops.chaos.load import Load
from ops.chaos.observe import Observer
from ops.chaos.scenario import Fault, FaultKind, Scenario
from sequencer_net.node.genesis import Genesis, load_genesis
from sequencer_net.node.network import Member, members

READY_S = 60.0  # the cluster must be committing within this before a run starts
FOLLOW_S = 30.0  # the rollup follower must deliver every namespace within this
DRAIN_S = 30.0  # after the load, wait at most this long for the last deliveries
STUCK_S = 10.0  # ... and no longer than this once every node commits and none arrives


class SetupError(RuntimeError):
    """The run could not start or could not apply a fault: no verdict on the cluster."""


@dataclass
class Outcome:
    """A finished run: its history, each checker's verdict, figures for the report."""

    scenario: Scenario
    history: History
    verdicts: list[checkers.Verdict]
    latency: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    directory: str = ""

    def verdict(self, name: str) -> checkers.Verdict:
        return next(v for v in self.verdicts if v.checker == name)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def safe(self) -> bool:
        return self.verdict("agreement").ok and self.verdict("no duplicates").ok

    @property
    def live(self) -> bool:
        return self.verdict("liveness").ok

    @property
    def nothing_lost(self) -> bool:
        return self.verdict("no loss").ok

    def words(self) -> str:
        """``safe, live, nothing lost`` or what is not."""
        words = [
            "safe" if self.safe else "NOT SAFE",
            "live" if self.live else "NOT LIVE",
            "nothing lost" if self.nothing_lost else "LOST TRANSACTIONS",
            "metrics agree" if self.verdict("metrics").ok else "METRICS DISAGREE",
        ]
        found = {v.checker: v.ok for v in self.verdicts}
        if "censorship" in found:
            words.append("censored delivered" if found["censorship"] else "CENSORED LATE")
        if "blame" in found:
            words.append("culprits named" if found["blame"] else "CULPRITS NOT NAMED")
        return ", ".join(words)


def run(
    scenario: Scenario,
    directory: Path,
    nodes: Nodes,
    say: Callable[[str], None] = print,
) -> Outcome:
    """Run ``scenario`` on the cluster in ``directory``; SetupError if it cannot."""
    cluster = members(directory)
    if len(cluster) != scenario.nodes:
        raise SetupError(
            f"{scenario.name} needs {scenario.nodes} nodes; {directory} has {len(cluster)}"
        )
    genesis_path = directory / "genesis.json"
    genesis = load_genesis(genesis_path)
    check_test_network(scenario, directory, genesis, cluster)
    namespaces = genesis.namespaces
    wait_ready(cluster)
    observer = Observer(cluster, genesis_path, namespaces)
    observer.take_baseline()
    observer.follow(follow_order(scenario))
    load: Load | None = None
    notes: list[str] = []
    finished = False
    try:
        if not observer.following(FOLLOW_S):
            raise SetupError(f"the rollup follower delivered nothing within {FOLLOW_S:g} s")
        load = Load(
            cluster, genesis_path, namespaces, scenario.load.rate, scenario.load.tx_bytes,
            time.monotonic,
        )  # fmt: skip
        if not load.prime():
            notes.append("the load generator did not fill its queue in time; started anyway")
        observer.start()
        origin = time.monotonic()
        load.start(scenario.run_s)
        say(
            f"{scenario.name}: {scenario.load.rate} tx/s for {scenario.run_s:g} s on "
            f"{scenario.nodes} nodes; faults: "
            + ("; ".join(f.describe() for f in scenario.faults) or "none")
        )
        windows = _schedule(scenario, nodes, observer, origin, say)
        _sleep_until(origin + scenario.run_s)
        load_end = time.monotonic() - origin
        load.stop()
        _drain(observer, load, cluster, windows, origin, say)
        finished = True
    finally:
        problems = nodes.heal_all()  # nothing left to heal unless the run was cut short
        for problem in problems:
            say(f"could not heal: {problem}")
        if load is not None:
            load.stop()
        if finished and load is not None:
            observer.finish()
            delivered = observer.delivered()
            observer.locate([x.digest for x in load.submissions
                             if x.acked is not None and x.digest not in delivered])  # fmt: skip
        else:
            observer.stop()
    if problems:
        raise SetupError("could not heal: " + "; ".join(problems))
    history = observer.history(
        origin,
        scenario=scenario.name,
        n=scenario.nodes,
        f=scenario.f,
        quorum=scenario.quorum,
        liveness_bound_s=scenario.liveness_bound_s,
        load_end=load_end,
        end=time.monotonic() - origin,
        submissions=[_rebased(s, origin) for s in load.submissions],
        windows=windows,
    )
    notes += _load_notes(load)
    return Outcome(
        scenario,
        history,
        checkers.check_all(history),
        checkers.latency_by_phase(history),
        notes,
        str(directory),
    )


def check_test_network(
    scenario: Scenario, directory: Path, genesis: Genesis, cluster: Sequence[Member]
) -> None:
    """SetupError unless the cluster can take the scenario's admin faults, and each
    censored namespace is one of the genesis's."""
    needing = [f for f in scenario.faults if not f.kind.on_processes]
    if needing and (not genesis.is_test_network or not all(m.admin for m in cluster)):
        first = needing[0]
        raise SetupError(
            f"{first.kind.value} faults ({first.describe()}) go through each validator's "
            f"admin endpoint, and {directory / 'genesis.json'} is not a test network: start "
            f"one with `seqnet cluster up --test-network --detach --dir DIR` (a new DIR, or "
            "--fresh), or write one with `seqnet keygen --test-network`; or run with --cluster"
        )
    for fault in scenario.faults:
        if fault.namespace is not None and fault.namespace not in genesis.namespaces:
            raise SetupError(
                f"{fault.describe()}: no namespace {fault.namespace!r} in this network "
                f"(it has {', '.join(genesis.namespaces)})"
            )


def wait_ready(cluster: Sequence[Member], timeout_s: float = READY_S) -> None:
    """Until every node commits; SetupError naming those that do not."""
    deadline = time.monotonic() + timeout_s
    while True:
        late = [m.index for m in cluster if not _committing(m, len(cluster))]
        if not late:
            return
        if time.monotonic() > deadline:
            raise SetupError(
                f"node(s) {', '.join(map(str, late))} not committing after {timeout_s:g} s "
                "(is the cluster up? `seqnet cluster status`)"
            )
        time.sleep(0.25)


def follow_order(scenario: Scenario) -> list[int]:
    """Nodes for the rollup follower: those no fault (nor a broken build) names explicitly
    first, lowest first.

    Symbolic targets take the highest-numbered nodes, so node 0 is usually safe; the
    follower fails over to the next node anyway when one goes.
    """
    named = {
        t
        for fault in scenario.faults
        for t in (*fault.targets, *(t for g in fault.groups for t in g))
        if isinstance(t, int)
    }
    if scenario.broken is not None:
        named.add(scenario.broken.node)
    spared = [i for i in range(scenario.nodes) if i not in named]
    return spared + [i for i in range(scenario.nodes) if i in named]


def _schedule(
    scenario: Scenario,
    nodes: Nodes,
    observer: Observer,
    origin: float,
    say: Callable[[str], None],
) -> list[Window]:
    """Apply and heal each fault at its time; the windows as they happened.

    Around a Byzantine fault the nodes' metrics are scraped once what was in
    flight at its start has landed, and again just before its heal: what the
    blame checker compares.
    """
    events = sorted(
        [(f.until_s, 0, k) for k, f in enumerate(scenario.faults)]
        + [(f.at_s, 1, k) for k, f in enumerate(scenario.faults)]
    )
    taken: dict[int, tuple[tuple[int, ...], float, str]] = {}
    windows: list[Window] = []
    for at, heal, k in events:
        fault = scenario.faults[k]
        _sleep_until(origin + at)
        try:
            if heal == 0:
                chosen, start, detail = taken.pop(k)
                if fault.kind is FaultKind.BYZANTINE:
                    observer.scrape_all()
                now = time.monotonic() - origin
                nodes.heal(fault, chosen)
                windows.append(_window(k, fault, chosen, start, now, detail))
                say(f"{now:6.1f} s  healed fault {k + 1}: {_verb(fault, True)} {_list(chosen)}")
            else:
                unavailable = _unavailable(scenario, k, nodes)
                statuses = _statuses(observer, nodes)
                groups: tuple[tuple[int, ...], ...] = ()
                if fault.kind is FaultKind.PARTITION:
                    groups = resolve_groups(fault, scenario.nodes, unavailable, statuses)
                    chosen = cut_off(groups)
                else:
                    chosen = resolve(fault, scenario.nodes, unavailable, statuses)
                now = time.monotonic() - origin
                nodes.apply(fault, chosen, groups)
                if fault.kind is FaultKind.BYZANTINE:
                    observer.scrape_in(checkers.BLAME_GRACE_S)
                detail = _detail(fault, groups)
                taken[k] = (chosen, now, detail)
                what = f" ({detail})" if detail else ""
                say(f"{now:6.1f} s  fault {k + 1}: {_verb(fault, False)} {_list(chosen)}{what}")
        except FaultError as exc:
            raise SetupError(f"fault {k + 1} ({fault.describe()}): {exc}") from None
    return sorted(windows, key=lambda w: w.index)


def _detail(fault: Fault, groups: Sequence[Sequence[int]]) -> str:
    """What the fault did, for people: the sides of a partition, loss and delay, a behaviour."""
    if fault.kind is FaultKind.PARTITION:
        return "sides " + " | ".join(",".join(map(str, g)) for g in groups)
    return fault.what()


def _window(
    k: int, fault: Fault, chosen: tuple[int, ...], start: float, end: float, detail: str = ""
) -> Window:
    targets = ",".join(str(t) for t in fault.targets) or "all"
    if fault.kind is FaultKind.PARTITION:
        targets = fault.who()
    return Window(
        k + 1,
        fault.kind.value,
        chosen,
        start,
        end,
        targets,
        behaviour=fault.behaviour,
        namespace=fault.namespace or "",
        detail=detail,
    )


def _unavailable(scenario: Scenario, k: int, nodes: Nodes) -> set[int]:
    """Down now, or named explicitly by another fault whose window overlaps fault ``k``'s."""
    me = scenario.faults[k]
    named = {
        t
        for j, other in enumerate(scenario.faults)
        if j != k and other.overlaps(me)
        for t in (*other.targets, *(t for g in other.groups for t in g))
        if isinstance(t, int)
    }
    return nodes.down | named


def _statuses(observer: Observer, nodes: Nodes) -> list[dict[str, Any] | None]:
    """Live nodes' status now (for the leader), asked afresh."""
    out: list[dict[str, Any] | None] = []
    for m in observer.members:
        try:
            out.append(None if m.index in nodes.down else health.node_status(m))
        except http.client.HTTPException:
            out.append(None)
    return out


def _verb(fault: Fault, healed: bool) -> str:
    verbs = {
        FaultKind.PAUSE: ("SIGSTOP", "SIGCONT"),
        FaultKind.PARTITION: ("cut off", "links healed for"),
        FaultKind.DELAY_LOSS: ("slowed the links of", "links healed for"),
        FaultKind.BYZANTINE: ("made Byzantine", "honest again:"),
    }
    return verbs.get(fault.kind, ("SIGKILL", "restarted"))[healed]


def _list(nodes: Sequence[int]) -> str:
    return (
        "node " + ",".join(map(str, nodes))
        if len(nodes) == 1
        else "nodes " + ",".join(map(str, nodes))
    )


def _drain(
    observer: Observer,
    load: Load,
    cluster: Sequence[Member],
    windows: Sequence[Window],
    origin: float,
    say: Callable[[str], None],
) -> None:
    """Until every acknowledged transaction reached the rollup and every node commits.

    Transactions the no-loss checker would call at risk (acknowledged just before
    their node was killed) or may call stranded (acknowledged by a node while a link
    fault dropped what it sent) are not waited for; nor, for longer than ``STUCK_S``,
    are any others once every node commits and none of them arrives.
    """
    n = len(cluster)
    acked = {
        s.digest
        for s in load.submissions
        if s.acked is not None
        and checkers.at_risk(_rebased(s, origin), windows, n) is None
        and checkers.link_risk(_rebased(s, origin), windows) is None
    }
    deadline = time.monotonic() + DRAIN_S
    last_missing, since = len(acked), time.monotonic()
    while True:
        missing = len(acked - observer.delivered())
        late = [m.index for m in cluster if not _committing(m, n)]
        if not missing and not late:
            return
        if missing != last_missing or late:
            last_missing, since = missing, time.monotonic()
        if time.monotonic() > min(deadline, since + STUCK_S):
            say(f"drain: gave up: {missing} acknowledged not delivered, node(s) {late} not "
                "committing")  # fmt: skip
            return
        time.sleep(0.25)


def _committing(member: Member, n: int) -> bool:
    try:
        return health.is_committing(health.node_status(member), n)
    except http.client.HTTPException:  # a node dying mid-answer
        return False


def _sleep_until(deadline: float) -> None:
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))


def _rebased(s: Submission, origin: float) -> Submission:
    acked = None if s.acked is None else s.acked - origin
    return dataclasses.replace(s, sent=s.sent - origin, acked=acked)


def _load_notes(load: Load) -> list[str]:
    notes = []
    if load.failed_requests:
        notes.append(
            f"{load.failed_requests} submission request(s) unanswered and sent to another node"
        )
    if load.refused:
        refused = ", ".join(f"{reason} {count}" for reason, count in load.refused.items())
        notes.append(f"refused by the nodes: {refused}")
    if load.starved:
        notes.append(f"the generator fell up to {load.starved} transactions behind the rate")
    return notes
