"""Throughput and submit-to-decrypted latency of a real 4-process cluster on this machine.

    seqnet bench [--rates 25,50,100,200] [--seconds 10] [--backlog 3000]

Starts N `seqnet node` processes on 127.0.0.1 (fresh keys in a temp dir), waits
until they commit, then:

1. steady load: for each rate, transactions (pre-encrypted, so the client's
   own crypto is not in the loop) are submitted in batches every 50 ms, spread
   over the nodes; latency is from the submit request to the moment a client
   polling node 0's ``/v1/batches`` sees the transaction decrypted (p50/p99);
2. saturation: a backlog submitted at once, and the time until all of it is
   decrypted.

Baseline, measured in the same run: the per-transaction crypto every node must
do (ciphertext check + share + combine) on one core. ``ceiling`` = cores /
(n x that cost) is what the cluster could reach if it did nothing but crypto;
throughput is reported against it.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ops import health, processes
from ops.load import Tx, Watcher, make_txs, submit_batch
from sequencer_net.base.committee import decryption_threshold
from sequencer_net.node import network
from sequencer_net.node.genesis import load_genesis

TICK_S = 0.05


def crypto_cost_per_tx_s(n: int, m: int = 200) -> float:
    """One node's crypto per transaction (check + own share + combine), measured now."""
    from mev import kem
    from mev.combine import open_batch
    from mev.keys import deal
    from mev.shares import _make_shares

    public, shares = deal(n, decryption_threshold(n), os.urandom)
    cts = [kem.encrypt(public, "bench", "ns", b"x" * 100, os.urandom) for _ in range(m)]
    us, batch_id = [ct.u for ct in cts], bytes(32)
    start = time.perf_counter()
    for ct in cts:
        kem.check("bench", ct)
    own = _make_shares(shares[0], public, batch_id, us)
    mine = time.perf_counter() - start
    others = {s.index: _make_shares(s, public, batch_id, us) for s in shares[1 : public.threshold]}
    start = time.perf_counter()
    open_batch(public, "bench", batch_id, cts, {0: own, **others})
    return (mine + time.perf_counter() - start) / m


class Poller:
    """Polls node 0's decrypted batches every 5 ms in a thread (latency resolution)."""

    def __init__(self, member: network.Member) -> None:
        self.watcher = Watcher(member.api)
        self.watcher.next_height = _decrypted(member) + 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.watcher.poll()
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def node_histogram(member: network.Member) -> dict[float, float]:
    """Cumulative bucket counts of seqnet_submit_to_decrypt_seconds (all namespaces)."""
    text = urllib.request.urlopen(f"http://{member.metrics}/metrics", timeout=5).read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "seqnet_submit_to_decrypt_seconds_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile of what was observed between two scrapes (linear within a bucket)."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    total = counts[-1]
    if total <= 0:
        return float("nan")
    target, lower, below = q * total, 0.0, 0.0
    for edge, count in zip(edges, counts, strict=True):
        if count >= target:
            if edge == float("inf"):
                return lower
            return lower + (edge - lower) * (target - below) / max(count - below, 1e-9)
        lower, below = edge, count
    return lower


def steady(
    members: list[network.Member], txs: list[Tx], rate: int, seconds: float
) -> dict[str, float]:
    per_tick = max(1, round(rate * TICK_S))
    poller = Poller(members[0])
    hist_before = node_histogram(members[0])
    sent_at: dict[bytes, float] = {}
    start = time.monotonic()
    k, tick = 0, 0
    while time.monotonic() - start < seconds and k < len(txs):
        batch = txs[k : k + per_tick]
        node = members[tick % len(members)]
        sent = time.monotonic()
        statuses = submit_batch(node.api, batch)
        for tx, status in zip(batch, statuses, strict=True):
            if status == "pending":
                sent_at[tx.digest] = sent
        k += len(batch)
        tick += 1
        time.sleep(max(0.0, start + tick * TICK_S - time.monotonic()))
    submitted_for = time.monotonic() - start
    deadline = time.monotonic() + 60
    seen = poller.watcher.seen
    while any(d not in seen for d in sent_at) and time.monotonic() < deadline:
        time.sleep(0.05)
    poller.stop()
    hist_after = node_histogram(members[0])
    latencies = sorted(seen[d][0] - t for d, t in sent_at.items() if d in seen)
    return {
        "rate": rate,
        "offered": len(sent_at) / submitted_for,
        "decrypted": len(latencies),
        "lost": len(sent_at) - len(latencies),
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "node_p50_ms": 1000 * quantile(hist_before, hist_after, 0.5),
        "node_p99_ms": 1000 * quantile(hist_before, hist_after, 0.99),
    }


def saturation(members: list[network.Member], txs: list[Tx]) -> dict[str, float]:
    poller = Poller(members[0])
    watcher = poller.watcher
    start = time.monotonic()
    for k in range(0, len(txs), 250):
        submit_batch(members[(k // 250) % len(members)].api, txs[k : k + 250])
    submitted = time.monotonic() - start
    digests = {tx.digest for tx in txs}
    deadline = time.monotonic() + 300
    while not digests <= watcher.seen.keys() and time.monotonic() < deadline:
        time.sleep(0.02)
    poller.stop()
    took = time.monotonic() - start
    done = len(digests & watcher.seen.keys())
    return {"backlog": len(txs), "decrypted": done, "seconds": took, "submit_s": submitted}


def _decrypted(member: network.Member) -> int:
    status = health.node_status(member)
    return 0 if status is None else int(status["decrypted_height"])


@dataclass(frozen=True, slots=True)
class BenchConfig:
    nodes: int = 4
    rates: tuple[int, ...] = (25, 50, 100, 200)
    seconds: float = 10.0
    backlog: int = 3000
    base_port: int = 27100  # below the ephemeral port range


def run(config: BenchConfig) -> None:
    """Start a cluster in a temp dir, measure, print a Markdown table, stop it."""
    per_tx = crypto_cost_per_tx_s(config.nodes)
    cores = os.cpu_count() or 1
    ceiling = cores / (config.nodes * per_tx)
    print(
        f"baseline: {per_tx * 1e6:.0f} us crypto per tx per node on one core; "
        f"crypto-only ceiling for n={config.nodes} on {cores} cores: {ceiling:.0f} tx/s",
        flush=True,
    )
    directory = Path(tempfile.mkdtemp(prefix="seqnet-bench-"))
    network.write_network(directory, config.nodes, base_port=config.base_port)
    procs = processes.start(directory, "warning")
    try:
        health.wait_until_committing(directory, procs, 60)
        members = network.members(directory)
        genesis = load_genesis(directory / "genesis.json")
        sizes = [int(r * config.seconds) + 10 for r in config.rates]
        print(f"encrypting {sum(sizes) + config.backlog} transactions ...", flush=True)
        pool = make_txs(genesis, sum(sizes) + config.backlog, genesis.namespaces)
        print("| offered tx/s | decrypted | lost | client p50 ms | client p99 ms "
              "| node 0 p50 ms | node 0 p99 ms |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for rate, size in zip(config.rates, sizes, strict=True):
            txs, pool = pool[:size], pool[size:]
            r = steady(members, txs, rate, config.seconds)
            print(f"| {r['offered']:.0f} | {r['decrypted']} | {r['lost']} | "
                  f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['node_p50_ms']:.0f} | "
                  f"{r['node_p99_ms']:.0f} |", flush=True)  # fmt: skip
        s = saturation(members, pool[: config.backlog])
        tps = s["decrypted"] / s["seconds"]
        print(f"saturation: {s['decrypted']}/{s['backlog']} decrypted in {s['seconds']:.1f} s "
              f"(submitted in {s['submit_s']:.1f} s): {tps:.0f} tx/s = "
              f"{tps / ceiling:.2f} x the crypto-only ceiling")  # fmt: skip
    finally:
        codes = processes.stop_procs(procs)
        print(f"nodes stopped (exit codes {codes}); logs in {directory}")
