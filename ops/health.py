"""Is a cluster healthy: every node answers as itself, commits, and keeps decrypting.

``check`` samples every node's ``/v1/status`` twice, ``window_s`` apart, and
fails a node that does not answer, answers for another cluster (chain id,
genesis fingerprint, validator index, or no process of this directory behind
it), does not commit, or whose decrypted height lags its committed height by
more than ``max_lag`` blocks or stands still while blocks commit. It talks
HTTP to the nodes, exactly as an operator's script would; ``seqnet cluster
status`` prints its verdict and ``cluster up`` waits for it.
"""

from __future__ import annotations

import pathlib
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ops.processes import HAVE_PROCFS, ClusterError, node_processes
from sequencer_net.client.http import ClientError, get_json
from sequencer_net.node.genesis import Genesis, fingerprint
from sequencer_net.node.network import Member, members, read_genesis

COMMITTING_WITHIN_S = 5.0  # a node whose last commit is older is not "committing"
MAX_DECRYPTION_LAG = 50  # blocks committed but not yet decrypted before `status` fails
STALL_WINDOW_S = 1.0  # `status` samples twice this far apart (an idle leader proposes at 4 Hz)


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
    except ClientError:
        return None
    return status if isinstance(status, dict) else {}


def metric_samples(member: Member, name: str) -> list[Sample]:
    """Every sample called ``name`` on the node's ``/metrics`` (raises OSError, HTTPException)."""
    return metric_page(member).get(name, [])


def metric_page(member: Member, timeout: float = 5.0) -> dict[str, list[Sample]]:
    """One scrape of the node's ``/metrics``: every sample by its name (``..._total`` for a
    counter's value); raises OSError, HTTPException."""
    url = f"http://{member.metrics}/metrics"
    text = urllib.request.urlopen(url, timeout=timeout).read().decode()
    page: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            page.setdefault(sample.name, []).append(sample)
    return page


def is_committing(status: dict[str, Any] | None, n: int) -> bool:
    return status is not None and _commit_problem(status, n) is None


def compute_decryption_lag(status: dict[str, Any]) -> int:
    """Blocks the node has committed but not yet decrypted."""
    return int(status["height"]) - int(status["decrypted_height"])


def check(directory: pathlib.Path, limits: Limits = Limits()) -> list[NodeHealth]:
    """Every node's health: two status samples ``limits.window_s`` apart, judged by `assess`."""
    nodes = members(directory)
    ours = Identity.of(read_genesis(directory))
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
        f"round {s['round']:>6}  peers {s['peers']}  "
        f"last commit {'-' if age is None else f'{age:.1f}s'} ago  "
        f"mempool {s['mempool']}  api http://{m.api}  metrics http://{m.metrics}/metrics"
    )


# ---------------------------------------------------------------- waiting for a new cluster


def wait_until_committing(
    directory: pathlib.Path,
    procs: list[subprocess.Popen[bytes]],
    timeout_s: float,
    on_progress: Callable[[int, int], None] = lambda ready, total: None,
) -> None:
    """Until every node of ``directory`` commits; ClusterError if one of ``procs`` exits first."""
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


def _tail(path: pathlib.Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
