"""Faults on real validator processes: signals, and the admin endpoint of a test network.

Processes are found the way ``seqnet cluster down`` finds them, by the config
on their command line (``ops.processes.node_processes``), so this works on a
cluster from ``seqnet cluster up --detach`` as well as on one started here; a
killed node is started again by ``ops.processes.start_node``, the same command,
config and data as ``cluster up`` gives it. Signals go to pids, never to a
process name.

Partitions, delay and loss, and Byzantine behaviour go through each
validator's admin endpoint (``sequencer_net/node/admin.py``), which only a
test network has: ``PUT /admin/faults`` replaces the rules on the frames a
node sends (a partition puts a cut on every node, towards every node of the
other sides), ``DELETE /admin/faults`` heals them, ``PUT /admin/misbehaviour``
switches behaviours on (and, with an empty object, off).

Whatever happens to the run, :meth:`Nodes.heal_all` puts every node back
(SIGCONT, restart, links healed, honest again), so a cluster is never left
half broken by an interrupted scenario.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from ops import processes
from ops.chaos.scenario import F_PLUS_1, LEADER, F, Fault, FaultKind
from ordering.leader import leader_of
from sequencer_net.base.committee import max_faulty
from sequencer_net.node.network import ADMIN_TOKEN_FILE, Member, members

GONE_WITHIN_S = 10.0  # a SIGKILLed process is gone (its ports free) within this
ADMIN_TIMEOUT_S = 5.0  # an admin request answered within this (a loopback call, normally ms)


class FaultError(RuntimeError):
    """A fault that cannot be applied or healed (a node not running, not ours to signal)."""


class Nodes:
    """The validator processes of a cluster directory, to break and to heal.

    ``detach``: restarted nodes get their own session (as ``cluster up --detach``
    gives them), so they outlive this process; otherwise they die with it.
    ``children``: processes this one started, reaped after a kill.
    """

    def __init__(
        self,
        directory: pathlib.Path,
        n: int,
        *,
        detach: bool,
        log_level: str = "warning",
        children: Sequence[subprocess.Popen[bytes]] = (),
    ) -> None:
        if not processes.HAVE_PROCFS:
            raise FaultError("finding node processes needs /proc (Linux)")
        self.directory, self.n, self.detach, self.log_level = directory, n, detach, log_level
        self.children: dict[int, subprocess.Popen[bytes]] = dict(enumerate(children))
        self.killed: set[int] = set()
        self.paused: set[int] = set()
        self.ruled: set[int] = set()  # nodes holding link rules
        self.byzantine: set[int] = set()  # nodes told to misbehave
        self._admin: Admin | None = None

    @property
    def admin(self) -> Admin:
        if self._admin is None:
            self._admin = Admin(self.directory)
        return self._admin

    @property
    def down(self) -> set[int]:
        return self.killed | self.paused

    def pids(self, node: int) -> list[int]:
        return processes.node_processes(self.directory).get(node, [])

    def kill(self, nodes: Collection[int]) -> None:
        """SIGKILL every process of ``nodes`` at once, then wait until they are gone."""
        doomed = {node: self.pids(node) for node in nodes}
        for node, pids in doomed.items():
            if not pids:
                raise FaultError(f"node {node} is not running: nothing to kill")
        for pids in doomed.values():
            for pid in pids:
                _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + GONE_WITHIN_S
        for node, pids in doomed.items():
            self.killed.add(node)
            child = self.children.pop(node, None)
            if child is not None:
                child.wait(timeout=GONE_WITHIN_S)  # reap it: no zombie holding the pid
            while any(processes.alive(pid) for pid in pids):
                if time.monotonic() > deadline:
                    raise FaultError(f"node {node} (pids {pids}) survived SIGKILL")
                time.sleep(0.02)

    def restart(self, nodes: Collection[int]) -> None:
        """Start ``nodes`` again with their config and data, as ``cluster up`` would."""
        for node in sorted(nodes):
            try:
                proc = processes.start_node(
                    self.directory, node, self.log_level, detach=self.detach
                )
            except processes.ClusterError as exc:
                raise FaultError(f"cannot restart node {node}: {exc}") from None
            self.children[node] = proc
            self.killed.discard(node)

    def pause(self, nodes: Collection[int]) -> None:
        """SIGSTOP: the process holds its memory and sockets but runs nothing."""
        for node in nodes:
            pids = self.pids(node)
            if not pids:
                raise FaultError(f"node {node} is not running: nothing to pause")
            for pid in pids:
                _signal(pid, signal.SIGSTOP)
            self.paused.add(node)

    def resume(self, nodes: Collection[int]) -> None:
        for node in nodes:
            for pid in self.pids(node):
                _signal(pid, signal.SIGCONT)
            self.paused.discard(node)

    def set_links(self, rules: dict[int, list[dict[str, Any]]]) -> None:
        """Replace each node's link rules (``rules[node]``: ``p2p.faults.LinkFault`` objects)."""
        for node, mine in sorted(rules.items()):
            self.ruled.add(node)  # before the call: a half-done request is healed too
            self.admin.call(node, "PUT", "/admin/faults", {"faults": mine})

    def heal_links(self, nodes: Collection[int]) -> None:
        for node in sorted(nodes):
            self.admin.call(node, "DELETE", "/admin/faults")
            self.ruled.discard(node)

    def misbehave(self, nodes: Collection[int], mode: dict[str, Any]) -> None:
        """Switch ``mode`` on (``sequencer_net.node.byzantine.Misbehaviour`` fields)."""
        for node in sorted(nodes):
            self.byzantine.add(node)
            self.admin.call(node, "PUT", "/admin/misbehaviour", mode)

    def behave(self, nodes: Collection[int]) -> None:
        """Every behaviour off (a broken build's ``reorder_batches`` stays: it is fixed)."""
        for node in sorted(nodes):
            self.admin.call(node, "PUT", "/admin/misbehaviour", {})
            self.byzantine.discard(node)

    def apply(
        self, fault: Fault, nodes: Collection[int], groups: Sequence[Sequence[int]] = ()
    ) -> None:
        """Apply ``fault`` to ``nodes`` (a partition: between ``groups``, on every node)."""
        if fault.kind is FaultKind.PAUSE:
            self.pause(nodes)
        elif fault.kind in (FaultKind.KILL, FaultKind.RESTART_ALL):
            self.kill(nodes)
        elif fault.kind is FaultKind.PARTITION:
            self.set_links(partition_rules(groups))
        elif fault.kind is FaultKind.DELAY_LOSS:
            self.set_links({node: [link_rule(fault)] for node in nodes})
        else:
            self.misbehave(nodes, misbehaviour(fault))

    def heal(self, fault: Fault, nodes: Collection[int]) -> None:
        if fault.kind is FaultKind.PAUSE:
            self.resume(nodes)
        elif fault.kind.on_processes:
            self.restart(nodes)
        elif fault.kind.on_links:  # one such fault at a time: every rule is its
            self.heal_links(set(self.ruled))
        else:
            self.behave(nodes)

    def heal_all(self) -> list[str]:
        """Resume every paused node and restart every killed one, heal every link, make
        every node honest again; what could not be done."""
        problems = []
        for node in sorted(self.ruled):
            try:
                self.heal_links([node])
            except FaultError as exc:
                problems.append(str(exc))
        for node in sorted(self.byzantine):
            try:
                self.behave([node])
            except FaultError as exc:
                problems.append(str(exc))
        for node in sorted(self.paused):
            try:
                self.resume([node])
            except FaultError as exc:
                problems.append(str(exc))
        for node in sorted(self.killed):
            try:
                self.restart([node])
            except FaultError as exc:
                problems.append(str(exc))
        return problems


class Admin:
    """The admin endpoints of a test network's validators, with the directory's token."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.members: list[Member] = members(directory)
        missing = [m.index for m in self.members if not m.admin]
        token = directory / ADMIN_TOKEN_FILE
        if missing or not token.is_file():
            raise FaultError(
                f"{directory} is not a test network (no admin endpoint for node(s) "
                f"{', '.join(map(str, missing)) or '-'}, or no {ADMIN_TOKEN_FILE}): start one "
                "with `seqnet cluster up --test-network`"
            )
        self.token = token.read_text(encoding="utf-8").strip()

    def call(self, node: int, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of node ``node``'s admin endpoint; FaultError if it refuses."""
        request = urllib.request.Request(
            f"http://{self.members[node].admin}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=ADMIN_TIMEOUT_S) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise FaultError(
                f"node {node}: {method} {path} refused: HTTP {exc.code} {_error_of(exc)}"
            ) from None
        except (OSError, ValueError) as exc:
            raise FaultError(f"node {node}: {method} {path}: {exc}") from None


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def partition_rules(groups: Sequence[Sequence[int]]) -> dict[int, list[dict[str, Any]]]:
    """Per node, a cut towards every node of the other groups (both directions, then)."""
    rules: dict[int, list[dict[str, Any]]] = {}
    for k, group in enumerate(groups):
        others = sorted(node for j, g in enumerate(groups) if j != k for node in g)
        for node in group:
            rules[node] = [{"peer": peer, "cut": True} for peer in others]
    return rules


def link_rule(fault: Fault) -> dict[str, Any]:
    """A delay_loss fault as one rule for every peer."""
    return {"protocol": fault.protocol, "loss": fault.loss, "delay_ms": fault.delay_ms}


def misbehaviour(fault: Fault) -> dict[str, Any]:
    """A byzantine fault as the admin endpoint's misbehaviour object."""
    if fault.behaviour == "censor":
        return {"censor": fault.namespace}
    return {fault.behaviour: True}


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        processes.send_signal(pid, signum, doing="signal")
    except processes.ClusterError as exc:
        raise FaultError(str(exc)) from None


# ------------------------------------------------------------ whom a fault takes


def current_leader(statuses: Sequence[dict[str, Any] | None]) -> tuple[int, int] | None:
    """(round, leader) as most live nodes report it for the highest round they are in.

    ``/v1/status`` carries ``round`` and ``leader`` (round-robin, round mod n);
    nodes a round behind are outvoted by the round itself.
    """
    answers = [(int(s["round"]), int(s["leader"])) for s in statuses if s and "leader" in s]
    if not answers:
        return None
    top = max(r for r, _ in answers)
    votes = Counter(leader for r, leader in answers if r == top)
    return top, votes.most_common(1)[0][0]


def resolve(
    fault: Fault,
    n: int,
    unavailable: Collection[int],
    statuses: Sequence[dict[str, Any] | None],
) -> tuple[int, ...]:
    """The nodes ``fault`` takes now.

    Explicit indices as written; ``"f"`` and ``"f+1"``: that many of the
    highest-numbered nodes not in ``unavailable`` (down already, or named by
    another fault overlapping this one); ``"leader"``: the current round's
    leader, or if it is unavailable the leader of the first later round who
    is not. Every node for ``restart_all`` and for a ``delay_loss`` that names
    none; for a partition, the nodes cut off from the largest side
    (:func:`resolve_groups`, :func:`cut_off`).
    """
    if fault.kind is FaultKind.RESTART_ALL or (
        fault.kind is FaultKind.DELAY_LOSS and not fault.targets
    ):
        return tuple(range(n))
    if fault.kind is FaultKind.PARTITION:
        return cut_off(resolve_groups(fault, n, unavailable, statuses))
    chosen = [t for t in fault.targets if isinstance(t, int)]
    f = max_faulty(n)

    def free() -> list[int]:
        return [i for i in reversed(range(n)) if i not in unavailable and i not in chosen]

    for target in fault.targets:
        if target == LEADER:
            chosen.append(_leader(statuses, n, free()))
        elif target in (F, F_PLUS_1):
            count = f if target == F else f + 1
            pool = free()
            if len(pool) < count:
                raise FaultError(f"{target!r} needs {count} nodes up and free, {len(pool)} are")
            chosen += pool[:count]
    return tuple(sorted(chosen))


def resolve_groups(
    fault: Fault,
    n: int,
    unavailable: Collection[int],
    statuses: Sequence[dict[str, Any] | None],
) -> tuple[tuple[int, ...], ...]:
    """A partition's sides now: ``"leader"`` resolved (a node no group names explicitly),
    the nodes no group names as the last side."""
    named = {t for g in fault.groups for t in g if isinstance(t, int)}
    groups: list[tuple[int, ...]] = []
    for group in fault.groups:
        nodes = [t for t in group if isinstance(t, int)]
        if LEADER in group:
            free = [i for i in range(n) if i not in unavailable and i not in named]
            leader = _leader(statuses, n, free)
            named.add(leader)
            nodes.append(leader)
        groups.append(tuple(sorted(nodes)))
    rest = tuple(i for i in range(n) if i not in named)
    return (*groups, rest) if rest else tuple(groups)


def cut_off(groups: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The nodes outside the largest side (the first, if two are as large): those that
    count as down for the quorum."""
    largest = max(range(len(groups)), key=lambda k: len(groups[k]))
    return tuple(sorted(node for k, g in enumerate(groups) if k != largest for node in g))


def _leader(statuses: Sequence[dict[str, Any] | None], n: int, free: Collection[int]) -> int:
    """The current round's leader if it is in ``free``, else the first later one who is."""
    now = current_leader(statuses)
    if now is None:
        raise FaultError("no node answered /v1/status: cannot tell the leader")
    round_, leader = now
    candidates = [leader] + [leader_of(round_ + k, n) for k in range(1, n + 1)]
    pick = next((c for c in candidates if c in free), None)
    if pick is None:
        raise FaultError("every node is down or taken: no leader left to fault")
    return pick
