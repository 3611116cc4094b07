"""A local multi-node cluster: N `seqnet node` processes on 127.0.0.1, and a client.

Theory of operation
-------------------
``up`` writes a genesis, keys and one config per validator into a directory
(unless they exist), starts one process per validator (logs in
``node-<i>.log``), records their pids in ``cluster.json`` and polls every
node's ``/v1/status`` until all see their peers and commit. Nodes started in
the foreground die with ``up`` even when it is killed by SIGKILL (Linux
``PR_SET_PDEATHSIG``); detached ones get their own session and outlive it.

``status`` samples the same endpoints twice, ``window_s`` apart, and fails a
node that does not answer, answers for another cluster (chain id, validator
index, or no process of this directory behind it), does not commit, or whose
decrypted height lags its committed height by more than ``max_lag`` blocks or
stands still while blocks commit.

``down`` finds the node processes by the config on their command line
(``node --config <dir>/node-<i>.toml``, paths resolved), so nodes restarted by
hand are stopped too, and a recorded pid that now belongs to another program
is left alone; it sends SIGTERM, then SIGKILL after a grace period.

``submit`` encrypts a transaction with the genesis key, posts it to a node's
API and polls until the transaction is decrypted. Everything here talks HTTP
to the nodes, exactly as an operator's script would.
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sequencer_net.node.config import ConfigError, NodeConfig
from sequencer_net.node.genesis import Genesis, GenesisError, fingerprint, load_genesis

STATE_FILE = "cluster.json"
COMMITTING_WITHIN_S = 5.0  # a node whose last commit is older is not "committing"
SIGNALLED_GRACE_S = 3.0  # nodes that got Ctrl-C stop within a second; then we send SIGTERM
STOP_GRACE_S = 15.0  # SIGTERM lets a node close its database; SIGKILL after this long
MAX_DECRYPTION_LAG = 50  # blocks committed but not yet decrypted before `status` fails
STALL_WINDOW_S = 1.0  # `status` samples twice this far apart (an idle leader proposes at 4 Hz)
HAVE_PROCFS = os.path.exists("/proc/self/cmdline")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ClusterError(Exception):
    """A cluster that cannot start, is not running, or a node that refuses a request."""


@dataclass(frozen=True, slots=True)
class Member:
    index: int
    config: pathlib.Path
    api: str
    metrics: str
    listen: str


def members(directory: pathlib.Path) -> list[Member]:
    """The validators whose configs ``seqnet keygen`` wrote into ``directory``."""
    configs = config_paths(directory)
    genesis = _genesis(directory)
    out = []
    for i, path in enumerate(configs):
        try:
            config = NodeConfig.load(path)
        except ConfigError as exc:
            raise ClusterError(str(exc)) from None
        if not config.api:
            raise ClusterError(f"{path}: no api address, so the cluster cannot watch it")
        listen = config.listen or genesis.validators[i].address
        out.append(Member(i, path, config.api, config.metrics or "", listen))
    return out


def config_paths(directory: pathlib.Path) -> list[pathlib.Path]:
    """``node-<i>.toml`` in ``directory``, validator i at position i."""
    configs = sorted(directory.glob("node-*.toml"), key=lambda p: int(p.stem.split("-")[1]))
    if not configs:
        raise ClusterError(f"{directory}: no node-<i>.toml (run `seqnet cluster up` first)")
    return configs


def _genesis(directory: pathlib.Path) -> Genesis:
    try:
        return load_genesis(directory / "genesis.json")
    except GenesisError as exc:
        raise ClusterError(str(exc)) from None


# ---------------------------------------------------------------- HTTP client


def get_json(address: str, path: str, timeout: float = 2.0) -> Any:
    """GET http://address/path as JSON; raises ClusterError on any failure."""
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise ClusterError(f"{address}{path}: HTTP {exc.code} {_reason(exc)}") from None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"{address}: {exc}") from None


def post(address: str, path: str, body: bytes, timeout: float = 10.0) -> Any:
    request = urllib.request.Request(
        f"http://{address}{path}",
        data=body,
        headers={"content-type": "application/cbor"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise ClusterError(f"{address} refused the transaction: {_reason(exc)}") from None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"{address}: {exc}") from None


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.load(exc).get("error", exc.reason))
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


# ---------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class Limits:
    """What `status` tolerates: decryption this many blocks behind, sampled this far apart."""

    max_lag: int = MAX_DECRYPTION_LAG
    window_s: float = STALL_WINDOW_S


@dataclass(frozen=True, slots=True)
class Identity:
    """What a node of this directory answers with: its genesis's chain id and fingerprint."""

    chain_id: str
    genesis: str

    @classmethod
    def of(cls, genesis: Genesis) -> Identity:
        return cls(genesis.chain_id, fingerprint(genesis))


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """One node's last status (None: no answer), a one-word verdict, and why, a line each."""

    member: Member
    status: dict[str, Any] | None
    verdict: str  # ok, DOWN, FOREIGN, LATE or LAG
    problems: tuple[str, ...]


def node_status(member: Member) -> dict[str, Any] | None:
    """The node's /v1/status; None if nothing answers, {} if something that is no node does."""
    try:
        status = get_json(member.api, "/v1/status", timeout=1.0)
    except ClusterError:
        return None
    return status if isinstance(status, dict) else {}


def is_committing(status: dict[str, Any] | None, n: int) -> bool:
    return status is not None and _commit_problem(status, n) is None


def compute_decryption_lag(status: dict[str, Any]) -> int:
    """Blocks the node has committed but not yet decrypted."""
    return int(status["height"]) - int(status["decrypted_height"])


def check(directory: pathlib.Path, limits: Limits = Limits()) -> list[NodeHealth]:
    """Every node's health: two status samples ``limits.window_s`` apart, judged by `assess`."""
    nodes = members(directory)
    ours = Identity.of(_genesis(directory))
    before = [node_status(m) for m in nodes]
    if any(before):
        time.sleep(limits.window_s)
    after = [node_status(m) for m in nodes]
    running = node_processes(directory) if HAVE_PROCFS else None
    owned = [None if running is None else m.index in running for m in nodes]
    return [
        assess(m, ours, len(nodes), b, a, o, limits)
        for m, b, a, o in zip(nodes, before, after, owned, strict=True)
    ]


def assess(
    member: Member,
    ours: Identity,
    n: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    owned: bool | None,
    limits: Limits,
) -> NodeHealth:
    """Judge one node from two samples.

    ``owned``: a process of this directory runs the node (None: cannot tell). A node that
    answers for another cluster is judged on nothing else.
    """
    if after is None:
        return NodeHealth(member, None, "DOWN", (f"not answering on http://{member.api}",))
    foreign = _identity_problem(member, ours, after, owned)
    if foreign:
        return NodeHealth(member, after, "FOREIGN", (foreign,))
    late = _commit_problem(after, n)
    lag = _decryption_problem(before, after, limits)
    verdict = "LATE" if late else "LAG" if lag else "ok"
    return NodeHealth(member, after, verdict, tuple(p for p in (late, lag) if p))


def _identity_problem(
    member: Member, ours: Identity, status: dict[str, Any], owned: bool | None
) -> str | None:
    """Whoever answers on this node's port must be this directory's validator ``member.index``.

    Two clusters from `seqnet keygen` share the default chain id, so the genesis fingerprint
    in the node's status is compared too, and the process: one running this directory's
    config must exist (a copy of the directory would share the genesis).
    """
    where = f"http://{member.api}"
    if status.get("chain_id") != ours.chain_id:
        return (
            f"{where} answers for chain {status.get('chain_id')!r}, not this cluster's "
            f"{ours.chain_id!r}: another cluster holds the port"
        )
    if status.get("genesis", ours.genesis) != ours.genesis:
        return (
            f"{where} answers for genesis {status['genesis']}, not this cluster's "
            f"{ours.genesis}: another cluster holds the port"
        )
    if status.get("index") != member.index:
        return f"{where} answers as validator {status.get('index')}, not {member.index}"
    if owned is False:
        return (
            f"{where} answers, but no process runs {member.config}: another cluster holds the port"
        )
    return None


def _commit_problem(status: dict[str, Any], n: int) -> str | None:
    if status.get("syncing"):
        return "still syncing"
    if status.get("peers", 0) < n - 1:
        return f"connected to {status.get('peers', 0)} of {n - 1} peers"
    age = status.get("last_commit_age_s")
    if age is None:
        return "has not committed yet"
    if age >= COMMITTING_WITHIN_S:
        return f"last commit {age:.1f}s ago"
    return None


def _decryption_problem(
    before: dict[str, Any] | None, after: dict[str, Any], limits: Limits
) -> str | None:
    """Decryption too far behind, or not one block further after a whole window behind.

    A block committed during the window may still be waiting for shares, so only a node
    already behind at the first sample counts as standing still.
    """
    height, decrypted = int(after["height"]), int(after["decrypted_height"])
    lag = height - decrypted
    if lag > limits.max_lag:
        return (
            f"decrypted height {decrypted} is {lag} blocks behind committed height {height} "
            f"(bound {limits.max_lag})"
        )
    if before is None or compute_decryption_lag(before) == 0:
        return None
    if decrypted <= int(before["decrypted_height"]):
        return (
            f"decrypted height stuck at {decrypted} for {limits.window_s:g}s "
            f"with committed height {height} ahead"
        )
    return None


def status_lines(directory: pathlib.Path, limits: Limits = Limits()) -> tuple[bool, list[str]]:
    """(every node healthy, one line per node, then one line per problem)."""
    health = check(directory, limits)
    lines = [_status_line(h) for h in health]
    lines += [f"node {h.member.index}: {p}" for h in health for p in h.problems]
    return all(not h.problems for h in health), lines


def _status_line(h: NodeHealth) -> str:
    m, s = h.member, h.status
    if s is None:
        return f"node {m.index}  DOWN     api http://{m.api}"
    if h.verdict == "FOREIGN":
        who = f"chain {s.get('chain_id')!r} validator {s.get('index')}"
        return f"node {m.index}  FOREIGN  {who}  api http://{m.api}"
    age = s["last_commit_age_s"]
    return (
        f"node {m.index}  {h.verdict:<7}  height {s['height']:>6}  "
        f"decrypted {s['decrypted_height']:>6}  lag {compute_decryption_lag(s):>4}  "
        f"view {s['view']:>6}  peers {s['peers']}  "
        f"last commit {'-' if age is None else f'{age:.1f}s'} ago  "
        f"mempool {s['mempool']}  api http://{m.api}  metrics http://{m.metrics}/metrics"
    )


# ---------------------------------------------------------------- node processes


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
    return [pid for pid in _pids(directory / STATE_FILE) if _alive(pid)]


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


# ---------------------------------------------------------------- up / down


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
    preexec = None if detach else _die_with_parent()
    procs = [_spawn(directory, m, log_level, detach, preexec) for m in nodes]
    (directory / STATE_FILE).write_text(json.dumps({"pids": [p.pid for p in procs]}))
    return procs


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


def _die_with_parent() -> Callable[[], None] | None:
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


def wait_until_committing(
    directory: pathlib.Path,
    procs: list[subprocess.Popen[bytes]],
    timeout_s: float,
    on_progress: Callable[[int, int], None] = lambda ready, total: None,
) -> None:
    nodes = members(directory)
    deadline = time.monotonic() + timeout_s
    while True:
        for m, p in zip(nodes, procs, strict=True):
            if p.poll() is not None:
                raise ClusterError(
                    f"node {m.index} exited with status {p.returncode}: "
                    f"{_tail(directory / f'node-{m.index}.log')}"
                )
        ready = sum(is_committing(node_status(m), len(nodes)) for m in nodes)
        on_progress(ready, len(nodes))
        if ready == len(nodes):
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"only {ready} of {len(nodes)} nodes committing after {timeout_s}s")
        time.sleep(0.2)


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
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    stubborn = [pid for pid in pids if _alive(pid)]
    for pid in stubborn:
        _signal(pid, signal.SIGKILL)
    return stubborn


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise ClusterError(f"not allowed to stop pid {pid} (another user's node?)") from None


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


def _alive(pid: int) -> bool:
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


def _check_ports_free(nodes: list[Member]) -> None:
    for m in nodes:
        parts = m.listen.split("/")
        addresses = [(parts[2], int(parts[4]))] if len(parts) > 4 else []
        for address in (m.api, m.metrics):
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


def _tail(path: pathlib.Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- submit


def submit_and_wait(
    address: str, genesis: Genesis, namespace: str, payload: bytes, timeout_s: float
) -> dict[str, Any]:
    """Encrypt, submit, poll until decrypted; the node's final record of the transaction."""
    from mev import kem
    from sequencer_net.base import codec

    if namespace not in genesis.namespaces:
        raise ClusterError(
            f"rollup {namespace!r} is not registered (registered: {', '.join(genesis.namespaces)})"
        )
    ct = kem.encrypt(genesis.threshold_key, genesis.chain_id, namespace, payload, os.urandom)
    digest = post(address, "/v1/transactions", codec.encode(ct))["digest"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record: dict[str, Any] = get_json(address, f"/v1/transactions/{digest}")
        if record["status"] in ("decrypted", "invalid"):
            return record
        time.sleep(0.02)
    raise ClusterError(f"transaction {digest} not decrypted within {timeout_s}s")
