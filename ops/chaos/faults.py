"""Faults on real validator processes: SIGKILL and restart, SIGSTOP and SIGCONT.

Processes are found the way ``seqnet cluster down`` finds them, by the config
on their command line (``ops.processes.node_processes``), so this works on a
cluster from ``seqnet cluster up --detach`` as well as on one started here; a
killed node is started again by ``ops.processes.start_node``, the same command,
config and data as ``cluster up`` gives it. Signals go to pids, never to a
process name.

Whatever happens to the run, :meth:`Nodes.heal_all` puts every node back
(SIGCONT, restart), so a cluster is never left half broken by an interrupted
scenario.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from ops import processes
from ops.chaos.scenario import F_PLUS_1, LEADER, F, Fault, FaultKind
from ordering.leader import leader_of
from sequencer_net.base.committee import max_faulty

GONE_WITHIN_S = 10.0  # a SIGKILLed process is gone (its ports free) within this


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

    def apply(self, fault: Fault, nodes: Collection[int]) -> None:
        if fault.kind is FaultKind.PAUSE:
            self.pause(nodes)
        elif fault.kind in (FaultKind.KILL, FaultKind.RESTART_ALL):
            self.kill(nodes)
        else:  # the scenario refuses them; this is the hook's place
            raise FaultError(f"fault kind {fault.kind.value} is not supported yet")

    def heal(self, fault: Fault, nodes: Collection[int]) -> None:
        if fault.kind is FaultKind.PAUSE:
            self.resume(nodes)
        else:
            self.restart(nodes)

    def heal_all(self) -> list[str]:
        """Resume every paused node and restart every killed one; what could not be done."""
        problems = []
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


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise FaultError(f"not allowed to signal pid {pid} (another user's node?)") from None


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
    is not. Every node for ``restart_all``.
    """
    if fault.kind is FaultKind.RESTART_ALL:
        return tuple(range(n))
    chosen = [t for t in fault.targets if isinstance(t, int)]
    f = max_faulty(n)

    def free() -> list[int]:
        return [i for i in reversed(range(n)) if i not in unavailable and i not in chosen]

    for target in fault.targets:
        if target == LEADER:
            now = current_leader(statuses)
            if now is None:
                raise FaultError("no node answered /v1/status: cannot tell the leader")
            round_, leader = now
            candidates = [leader] + [leader_of(round_ + k, n) for k in range(1, n + 1)]
            pick = next((c for c in candidates if c in free()), None)
            if pick is None:
                raise FaultError("every node is down or taken: no leader left to fault")
            chosen.append(pick)
        elif target in (F, F_PLUS_1):
            count = f if target == F else f + 1
            pool = free()
            if len(pool) < count:
                raise FaultError(f"{target!r} needs {count} nodes up and free, {len(pool)} are")
            chosen += pool[:count]
    return tuple(sorted(chosen))
