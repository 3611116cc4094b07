"""The node processes of a cluster directory: start them, find them, stop them.

A local cluster is one ``seqnet node`` process per validator config that
``seqnet keygen`` (or ``cluster up``) wrote into a directory. ``start`` refuses
while nodes of the directory still run or their ports are taken, starts one
process per validator (logs in ``node-<i>.log``) and records their pids in
``cluster.json``. Nodes started in the foreground die with their starter even
when it is killed by SIGKILL (Linux ``PR_SET_PDEATHSIG``); detached ones get
their own session and outlive it.

Processes are found by the config on their command line (``node --config
<dir>/node-<i>.toml``, paths resolved), not by recorded pid, so ``stop`` also
stops nodes restarted by hand, and leaves alone a recorded pid that now
belongs to another program; it sends SIGTERM, then SIGKILL after a grace
period. Whether the nodes are healthy is ``ops.health``'s business.
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sequencer_net.node.network import Member, config_paths, members

STATE_FILE = "cluster.json"
PORT_OFFSETS = (0, 1000, 2000, 3000)  # libp2p, API, metrics, admin (test networks)
SIGNALLED_GRACE_S = 3.0  # nodes that got Ctrl-C stop within a second; then we send SIGTERM
STOP_GRACE_S = 15.0  # SIGTERM lets a node close its database; SIGKILL after this long
HAVE_PROCFS = os.path.exists("/proc/self/cmdline")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ClusterError(Exception):
    """A cluster that cannot start or be stopped, or whose nodes do not come up in time."""


# ---------------------------------------------------------------- finding them


def node_processes(directory: pathlib.Path) -> dict[int, list[int]]:
    """Pids per validator index of every ``node --config <directory>/node-<i>.toml`` here.

    Found by command line, not by recorded pid, so nodes restarted by hand count and a
    recorded pid reused by another program does not. Linux only (empty without /proc).
    """
    wanted = {path.resolve(): i for i, path in enumerate(config_paths(directory))}
    found: dict[int, list[int]] = {}
    for pid in _proc_pids():
        config = _node_config_of(pid)
        if config in wanted:
            found.setdefault(wanted[config], []).append(pid)
    return found


def running_pids(directory: pathlib.Path) -> list[int]:
    """Node processes of ``directory``: by config where /proc exists, else as recorded."""
    if HAVE_PROCFS:
        return sorted(pid for pids in node_processes(directory).values() for pid in pids)
    return [pid for pid in _pids(directory / STATE_FILE) if alive(pid)]


def config_argument(argv: list[str]) -> str | None:
    """The ``--config`` of a ``seqnet ... node --config PATH`` command line, as written."""
    if "node" not in argv:
        return None
    rest = argv[argv.index("node") + 1 :]
    for k, arg in enumerate(rest):
        if arg == "--config" and k + 1 < len(rest):
            return rest[k + 1]
        if arg.startswith("--config="):
            return arg.partition("=")[2]
    return None


def _proc_pids() -> list[int]:
    if not HAVE_PROCFS:
        return []
    me = os.getpid()
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != me]


def _node_config_of(pid: int) -> pathlib.Path | None:
    """The resolved config path of node process ``pid``; None if it is not one (or is gone)."""
    try:
        raw = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        arg = config_argument([os.fsdecode(a) for a in raw.split(b"\0")[:-1]])
        if arg is None:
            return None
        if not os.path.isabs(arg):  # relative to the node's working directory, not ours
            arg = os.path.join(os.readlink(f"/proc/{pid}/cwd"), arg)
        return pathlib.Path(arg).resolve()
    except (OSError, RuntimeError):
        return None


# ---------------------------------------------------------------- starting and stopping


def start(
    directory: pathlib.Path, log_level: str = "info", *, detach: bool = False
) -> list[subprocess.Popen[bytes]]:
    """Start one process per validator; refuse if nodes of this directory still run.

    Foreground nodes get SIGTERM when this process dies, however it dies; ``detach``ed
    ones run in their own session, so neither that nor the terminal's Ctrl-C reaches them.
    """
    running = running_pids(directory)
    if running:
        raise ClusterError(
            f"{len(running)} node(s) of {directory} are running (pids {running}): "
            "`seqnet cluster down` first"
        )
    nodes = members(directory)
    _check_ports_free(nodes)
    preexec = None if detach else die_with_parent()
    procs = [_spawn(directory, m, log_level, detach, preexec) for m in nodes]
    (directory / STATE_FILE).write_text(json.dumps({"pids": [p.pid for p in procs]}))
    return procs


def start_node(
    directory: pathlib.Path, index: int, log_level: str = "info", *, detach: bool = False
) -> subprocess.Popen[bytes]:
    """Start validator ``index`` of ``directory`` alone, exactly as `start` starts each one.

    For bringing one node back (after a crash, or a chaos run's SIGKILL) with its
    config and data as they are; refuses while a process of that node still runs.
    """
    running = node_processes(directory).get(index, []) if HAVE_PROCFS else []
    if running:
        raise ClusterError(f"node {index} of {directory} is running (pids {running})")
    nodes = members(directory)
    if not 0 <= index < len(nodes):
        raise ClusterError(f"{directory} has no node {index} (nodes 0..{len(nodes) - 1})")
    _check_ports_free([nodes[index]])
    preexec = None if detach else die_with_parent()
    return _spawn(directory, nodes[index], log_level, detach, preexec)


def _spawn(
    directory: pathlib.Path,
    m: Member,
    log_level: str,
    detach: bool,
    preexec: Callable[[], None] | None,
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "sequencer_net.cli", "--log-level", log_level]
    cmd += ["node", "--config", str(m.config.resolve())]
    with open(directory / f"node-{m.index}.log", "ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=detach, preexec_fn=preexec
        )


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when this process dies (None elsewhere).

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only the main thread,
    which lives as long as the process, may start nodes this way.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        raise ClusterError("foreground nodes must be started from the main thread")
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec
        if prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os._exit(1)

    return preexec


@dataclass(frozen=True, slots=True)
class Stopped:
    """What `stop` did: processes stopped, of which ``killed`` ignored SIGTERM."""

    count: int
    killed: int


def stop(directory: pathlib.Path, grace_s: float = STOP_GRACE_S) -> Stopped:
    """Stop every node process of ``directory``, however it was started."""
    pids = running_pids(directory)
    killed = terminate(pids, grace_s)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return Stopped(len(pids), len(killed))


def terminate(pids: list[int], grace_s: float) -> list[int]:
    """SIGTERM ``pids``, wait up to ``grace_s``, SIGKILL the rest; the pids that needed it."""
    for pid in pids:
        send_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    stubborn = [pid for pid in pids if alive(pid)]
    for pid in stubborn:
        send_signal(pid, signal.SIGKILL)
    return stubborn


def send_signal(pid: int, signum: signal.Signals, doing: str = "stop") -> None:
    """Signal a node process; one already gone is fine, another user's is refused."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise ClusterError(f"not allowed to {doing} pid {pid} (another user's node?)") from None


def stop_procs(
    procs: list[subprocess.Popen[bytes]],
    timeout_s: float = STOP_GRACE_S,
    *,
    signalled: bool = False,
) -> list[int]:
    """Stop our own children (SIGTERM, then SIGKILL after ``timeout_s``); their exit codes.

    ``signalled``: they already got the terminal's Ctrl-C (same process group),
    so give them a moment to stop on their own before sending anything.
    """
    if signalled:
        deadline = time.monotonic() + SIGNALLED_GRACE_S
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=timeout_s) if timeout_s > 0 else _kill(p))
        except subprocess.TimeoutExpired:
            codes.append(_kill(p))
    return codes


def _kill(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.kill()
    return proc.wait()


def _pids(state: pathlib.Path) -> list[int]:
    try:
        return [int(pid) for pid in json.loads(state.read_text())["pids"]]
    except (ValueError, KeyError, TypeError, OSError):
        return []


def alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped by its parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: cannot tell a zombie
    return stat.rpartition(")")[2].split()[0] != "Z"


def free_base_port(n: int, low: int = 20_000, high: int = 29_000) -> int:
    """A base port whose libp2p, API, metrics and (on a test network) admin ports (``+ i``,
    ``+ 1000 + i``, ``+ 2000 + i``, ``+ 3000 + i``) are free for ``n`` validators; from
    [low, high), so that all of them stay below the ephemeral range (32768 on)."""
    for _ in range(200):
        base = random.randrange(low, high)
        ports = [base + offset + i for offset in PORT_OFFSETS for i in range(n)]
        if all(_port_free("127.0.0.1", port) for port in ports):
            return base
    raise ClusterError(f"no {n} free ports at base + 0, 1000, 2000 and 3000 in [{low}, {high})")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _check_ports_free(nodes: list[Member]) -> None:
    for m in nodes:
        parts = m.listen.split("/")
        addresses = [(parts[2], int(parts[4]))] if len(parts) > 4 else []
        for address in (m.api, m.metrics, m.admin):
            if address:
                name, _, number = address.rpartition(":")
                addresses.append((name, int(number)))
        for host, port in addresses:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError:
                    raise ClusterError(
                        f"port {host}:{port} (node {m.index}) is in use: stop what holds it, "
                        "or use another --dir with --base-port"
                    ) from None
