"""A local multi-node cluster: N `seqnet node` processes on 127.0.0.1, and a client.

Theory of operation
-------------------
``up`` writes a genesis, keys and one config per validator into a directory
(unless they exist), starts one process per validator (logs in
``node-<i>.log``), records their pids in ``cluster.json`` and polls every
node's ``/v1/status`` until all see their peers and commit. ``status`` asks
the same endpoints; ``down`` sends SIGTERM to the recorded pids. ``submit``
encrypts a transaction with the genesis key, posts it to a node's API and
polls until the transaction is decrypted. Everything here talks HTTP to the
nodes, exactly as an operator's script would.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sequencer_net.config import ConfigError, NodeConfig
from sequencer_net.genesis import Genesis, GenesisError, load_genesis

STATE_FILE = "cluster.json"
COMMITTING_WITHIN_S = 5.0  # a node whose last commit is older is not "committing"
SIGNALLED_GRACE_S = 3.0  # nodes that got Ctrl-C stop within a second; then we send SIGTERM


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
    configs = sorted(directory.glob("node-*.toml"), key=lambda p: int(p.stem.split("-")[1]))
    if not configs:
        raise ClusterError(f"{directory}: no node-<i>.toml (run `seqnet cluster up` first)")
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


def node_status(member: Member) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = get_json(member.api, "/v1/status", timeout=1.0)
    except ClusterError:
        return None
    return status


def is_committing(status: dict[str, Any] | None, n: int) -> bool:
    if status is None or status.get("syncing"):
        return False
    age = status.get("last_commit_age_s")
    return status.get("peers", 0) >= n - 1 and age is not None and age < COMMITTING_WITHIN_S


def status_lines(directory: pathlib.Path) -> tuple[bool, list[str]]:
    """(every node up and committing, one line per node)."""
    nodes = members(directory)
    ok, lines = True, []
    for m in nodes:
        s = node_status(m)
        healthy = is_committing(s, len(nodes))
        ok &= healthy
        if s is None:
            lines.append(f"node {m.index}  DOWN        api http://{m.api}")
            continue
        age = s["last_commit_age_s"]
        lines.append(
            f"node {m.index}  {'ok  ' if healthy else 'LATE'}  height {s['height']:>6}  "
            f"decrypted {s['decrypted_height']:>6}  view {s['view']:>6}  peers {s['peers']}  "
            f"last commit {'-' if age is None else f'{age:.1f}s'} ago  "
            f"mempool {s['mempool']}  api http://{m.api}  metrics http://{m.metrics}/metrics"
        )
    return ok, lines


# ---------------------------------------------------------------- up / down


def start(directory: pathlib.Path, log_level: str = "info") -> list[subprocess.Popen[bytes]]:
    """Start one process per validator; refuse if a recorded cluster still runs."""
    state = directory / STATE_FILE
    if state.exists() and any(_alive(pid) for pid in _pids(state)):
        raise ClusterError(f"a cluster from {directory} is running: `seqnet cluster down` first")
    nodes = members(directory)
    _check_ports_free(nodes)
    procs = []
    for m in nodes:
        log = open(directory / f"node-{m.index}.log", "ab")  # noqa: SIM115 - owned by the child
        cmd = [sys.executable, "-m", "sequencer_net.cli", "--log-level", log_level]
        cmd += ["node", "--config", str(m.config)]
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    state.write_text(json.dumps({"pids": [p.pid for p in procs]}))
    return procs


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


def stop(directory: pathlib.Path, timeout_s: float = 15.0) -> int:
    """SIGTERM every recorded node, wait, SIGKILL leftovers; the number stopped."""
    state = directory / STATE_FILE
    if not state.exists():
        raise ClusterError(f"{directory}: no running cluster recorded ({STATE_FILE} missing)")
    pids = [pid for pid in _pids(state) if _alive(pid)]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    state.unlink()
    return len(pids)


def stop_procs(
    procs: list[subprocess.Popen[bytes]], timeout_s: float = 15.0, *, signalled: bool = False
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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


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
    from sequencer_net import codec

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
